"""A lesion map on its model's operating scale: the model's own cluster threshold moved to one common level.

The fold models of a run are calibrated one by one: each has its own cluster threshold, chosen
on its own validation subjects (0.3 for one fold, 0.98 for another in
``benchmarks/results-lesion-cpu.json``). Averaging their raw maps and cutting the mean at the
mean threshold lets a fold that is sure of everything outvote a careful one. A fold ensemble
(:mod:`FCDDetectLib.detection.ensemble_detect`) therefore first puts each fold's map on its
*operating scale* (:func:`to_operating_scale`): piecewise linear, 0 stays 0, 1 stays 1, and the
fold's threshold becomes ``level`` (0.5). A voxel of the mean is at or above 0.5 when the folds,
on average, put it at or above their own operating points; a voxel that every fold puts above
its threshold is above 0.5 whatever the thresholds. The mapping is monotone, so each fold's own
clusters are unchanged by it.

Chosen on the development cohort of ``docs/lesion-supervision.md`` (seed 13, 20 patients and
20 controls, used for no reported figure), with the four 300-epoch fold models of
``benchmarks/bench_lesion.py``: detection 0.85 against 0.80 for the raw mean at the mean
threshold, Dice 0.58 against 0.53, no false-positive cluster either way, the same lesion-evidence
ROC-AUC (0.925 both). With the four 48^3-patch fold models, measured after: 0.85 with no
false-positive cluster against 0.90 with 0.05 per patient. Over both, as many lesions found and
fewer false clusters.

Example:
    >>> import numpy as np
    >>> to_operating_scale(np.array([0.0, 0.45, 0.9, 0.95, 1.0]), threshold=0.9, level=0.5).round(3).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_operating_scale"]

_INSIDE = 1e-6


def to_operating_scale(lesion_map: np.ndarray, threshold: float, level: float) -> np.ndarray:
    """``lesion_map`` (values in [0, 1]) mapped piecewise linearly so that ``threshold`` becomes ``level``.

    ``threshold`` in [0, 1]; 0 and 1 (which a bundle may hold, and no calibration chooses) are
    moved 1e-6 inside, so the map stays a function. The result is float32, in [0, 1] for a map
    in [0, 1].

    Example:
        >>> import numpy as np
        >>> float(to_operating_scale(np.array([0.3], np.float32), threshold=0.3, level=0.5)[0])
        0.5
    """
    threshold = min(max(float(threshold), _INSIDE), 1.0 - _INSIDE)
    # numpy's interp is the piecewise-linear map through (0, 0), (threshold, level), (1, 1)
    return np.interp(lesion_map, (0.0, threshold, 1.0), (0.0, level, 1.0)).astype(np.float32)
