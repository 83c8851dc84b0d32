"""A lesion model's map of one scan: the lesion head's probability on the input grid, and its outputs.

The map comes back onto the reference image's grid through the same inverse as the heatmap
(linear, 0 outside the model field of view) and is restricted to the head, but not min-max
normalised: its values stay voxel probabilities. :func:`lesion_outputs` adds its clusters,
lesion-level figures and Heat-Score, the ``lesion_*`` fields of a detection result.

Test-time mirroring: a bundle whose ``lesion_mirror_axes`` names axes (a lesion model trained
with left-right flips names axis 0) gets the mean of the map of the scan and the maps of its
mirrored copies, each mirrored back (:func:`mirrored_lesion_probability`), as nnU-Net predicts by
default. Its operating point and lesion evidence were calibrated on that mean, so the map is
always made the way the bundle says.

Example:
    >>> from FCDDetectLib.detection.lesion_map import lesion_map_of
    >>> lesion = lesion_map_of(bundle.model, x, prep, head)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import find_clusters
from FCDDetectLib.maps.heat_score import heat_score_images
from FCDDetectLib.maps.lesion_metrics import subject_lesion_metrics

__all__ = ["lesion_map_of", "lesion_map_on_input_grid", "lesion_outputs", "mirrored_lesion_probability"]


def lesion_map_of(net: Any, x: Any, prep: Any, head: np.ndarray, features: Sequence[Any] | None = None,
                  mirror_axes: Sequence[int] | None = None) -> np.ndarray:
    """The lesion head's probability on the input grid, restricted to ``head`` (float32, not rescaled).

    ``features``: the encoder's feature maps of a pass over ``x`` already made (see
    :func:`~FCDDetectLib.detection.detect.explain_and_classify`); without them the encoder runs again.
    ``mirror_axes``: the bundle's ``lesion_mirror_axes`` (:func:`mirrored_lesion_probability`).

    Example:
        >>> lesion = lesion_map_of(bundle.model, x, prep, head_mask(prep.reference.array))  # doctest: +SKIP
    """
    return np.where(head, lesion_map_on_input_grid(net, x, prep, features, mirror_axes),
                    np.float32(0.0)).astype(np.float32)


def lesion_map_on_input_grid(net: Any, x: Any, prep: Any, features: Sequence[Any] | None = None,
                             mirror_axes: Sequence[int] | None = None) -> np.ndarray:
    """The lesion head's voxel probability for ``x``, mapped onto the input grid.

    The same inverse as the heatmap (:func:`FCDDetectLib.grid.preprocess.to_input_grid`, linear,
    0 outside the model field of view) but no min-max: the values stay probabilities in [0, 1].

    Example:
        >>> lesion_map_on_input_grid(bundle.model, x, prep).max() <= 1.0  # doctest: +SKIP
        True
    """
    from FCDDetectLib.grid.input_grid import to_input_grid

    probability = mirrored_lesion_probability(net, x, features, mirror_axes)[0, 0].float().cpu().numpy()
    return np.clip(to_input_grid(probability, prep), 0.0, 1.0)


def mirrored_lesion_probability(net: Any, x: Any, features: Sequence[Any] | None = None,
                                mirror_axes: Sequence[int] | None = None) -> Any:
    """The lesion head's probability on the model grid (N, 1, X, Y, Z), averaged over mirrored passes.

    With ``mirror_axes`` (model-grid axes, 0 = left-right) the network also sees ``x`` mirrored
    along every non-empty combination of them (one axis: 2 passes; two: 4), each output mirrored
    back, and the passes are averaged (nnU-Net's test-time mirroring). ``features`` (an encoder
    pass over ``x`` already made) serve the unmirrored pass only. Written with ``torch.flip``
    because MONAI's ``TestTimeAugmentation`` draws random transforms for an uncertainty estimate;
    this is a fixed, exact set of passes.

    Example:
        >>> import torch
        >>> class Net:  # a "network" that marks the left half of the grid
        ...     def lesion_probability(self, x):
        ...         out = torch.zeros_like(x[:, :1]); out[:, :, :2] = 1.0; return out
        >>> mirrored_lesion_probability(Net(), torch.zeros(1, 1, 4, 1, 1), mirror_axes=[0]).flatten().tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    import torch

    dims = [int(axis) + 2 for axis in (mirror_axes or ())]  # (N, C, X, Y, Z): axis 0 is tensor dim 2
    with torch.no_grad():
        total = net.lesion_probability_from_features(x, features) if features else net.lesion_probability(x)
        passes = 1
        for count in range(1, len(dims) + 1):
            for flipped in combinations(dims, count):
                total = total + torch.flip(net.lesion_probability(torch.flip(x, flipped)), flipped)
                passes += 1
    return total / passes if passes > 1 else total


def lesion_outputs(net: Any, x: Any, prep: Any, head: np.ndarray, roi_image: Image | None,
                   roi_mask: np.ndarray | None, mask_image: Image | None, roi_name: str,
                   cluster_threshold: float, min_cluster_mm3: float,
                   features: Sequence[Any] | None = None, mirror_axes: Sequence[int] | None = None) -> dict[str, Any]:
    """Lesion map (restricted to the head like the heatmap), its clusters, lesion figures and Heat-Score.

    The ``lesion_*`` fields of :class:`~FCDDetectLib.detection.result.DetectionResult`.

    Example:
        >>> outputs = lesion_outputs(net, x, prep, head, None, None, None, "ROI", 0.5, 50.0)  # doctest: +SKIP
        >>> sorted(outputs)  # doctest: +SKIP
        ['lesion_clusters', 'lesion_map', 'lesion_map_metrics']
    """
    lesion_map = lesion_map_of(net, x, prep, head, features, mirror_axes)
    affine = np.asarray(prep.reference.affine, dtype=np.float64)
    clusters = find_clusters(lesion_map, affine, cluster_threshold, min_cluster_mm3, head_mask=head)
    outputs: dict[str, Any] = {
        "lesion_map": lesion_map,
        "lesion_clusters": clusters,
        "lesion_map_metrics": subject_lesion_metrics(lesion_map, affine, clusters, roi_mask, roi_name=roi_name),
    }
    if roi_image is not None:
        details = heat_score_images(Image(lesion_map, affine), roi_image, mask_image, roi_name=roi_name,
                                    undefined_ok=True)
        outputs.update(lesion_heat_score=details.heat_score, lesion_heat_score_details=details)
    return outputs
