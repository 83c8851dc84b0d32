"""Out-of-distribution check: does an input look like the scans the model was trained on?

A classifier answers for any input, even a 5 x 5 x 5 noise cube. So training records,
in the bundle (``BundleMetadata.input_ranges``), the range over its training inputs of a
few statistics that need no anatomy, and detection compares the new input with them:

===================== =====================================================================
``voxel_mm_min/max``  smallest / largest voxel edge of the input (mm)
``fov_mm_min/max``    smallest / largest field-of-view edge of the input (mm)
``head_volume_ml``    head mask volume on the model grid (ml)
``head_edge_fraction`` largest share of one face of the input's field of view covered by
                      the head (a head cut by the field of view has a large one)
``background_ratio``  p2 / p99.5 of the intensities (about 0 for magnitude MRI; about -1 for
                      CT, whose air is -1000 HU)
``median_ratio``      p50 / p99.5 of the intensities
===================== =====================================================================

Tolerances (our choice, wide on purpose: a warning must mean something): scale-like
statistics may be 1.5x (voxel, head volume) or 1.3x (field of view) beyond the training
range; ratios and fractions 0.15 + 25 % of the training spread. A bundle without ranges
(trained before this check existed) gives ``"unknown"``.

Example:
    >>> ranges = summarise_ranges([{"voxel_mm_max": 1.0}, {"voxel_mm_max": 3.0}])
    >>> ranges
    {'voxel_mm_max': [1.0, 3.0]}
    >>> check_ranges({"voxel_mm_max": 10.0}, ranges)
    ['voxel_mm_max 10 is outside the training range 1-3']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["STATISTICS", "check_ranges", "input_statistics", "summarise_ranges"]

# name -> ("factor", f): allowed [lo / f, hi * f]; ("spread", a): allowed +/- (a + 0.25 * (hi - lo))
STATISTICS: dict[str, tuple[str, float]] = {
    "voxel_mm_min": ("factor", 1.5),
    "voxel_mm_max": ("factor", 1.5),
    "fov_mm_min": ("factor", 1.3),
    "fov_mm_max": ("factor", 1.3),
    "head_volume_ml": ("factor", 1.5),
    "head_edge_fraction": ("spread", 0.15),
    "background_ratio": ("spread", 0.15),
    "median_ratio": ("spread", 0.15),
}
_MAX_SAMPLES = 2_000_000  # percentiles from an even subsample of at most this many voxels


def input_statistics(image: Any, prep: Any) -> dict[str, float]:
    """The statistics of one input: ``image`` (the reference Image) and its :class:`Preprocessed`.

    Example:
        >>> stats = input_statistics(flair, preprocess([flair], (2, 2, 2), (96, 112, 96)))  # doctest: +SKIP
    """
    array = np.asarray(image.array)
    voxel = np.sqrt((np.asarray(image.affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    fov = voxel * np.asarray(array.shape[:3], dtype=np.float64)
    step = max(1, array.size // _MAX_SAMPLES)
    p2, p50, p995 = np.percentile(array.ravel()[::step].astype(np.float64), [2.0, 50.0, 99.5])
    scale = abs(float(p995)) or 1.0
    head = np.asarray(prep.head_masks[0])
    voxel_ml = float(np.prod(prep.spacing)) / 1000.0
    return {
        "voxel_mm_min": float(voxel.min()),
        "voxel_mm_max": float(voxel.max()),
        "fov_mm_min": float(fov.min()),
        "fov_mm_max": float(fov.max()),
        "head_volume_ml": float(head.sum()) * voxel_ml,
        "head_edge_fraction": float(getattr(prep, "head_edge_fraction", 0.0)),
        "background_ratio": float(p2) / scale,
        "median_ratio": float(p50) / scale,
    }


def summarise_ranges(statistics: Iterable[Mapping[str, float]]) -> dict[str, list[float]]:
    """``{name: [min, max]}`` over the training inputs' statistics (non-finite values ignored)."""
    ranges: dict[str, list[float]] = {}
    for stats in statistics:
        for name, value in stats.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            low, high = ranges.get(name, [float(value), float(value)])
            ranges[name] = [min(low, float(value)), max(high, float(value))]
    return ranges


def _allowed(name: str, low: float, high: float) -> tuple[float, float]:
    kind, amount = STATISTICS.get(name, ("spread", 0.15))
    if kind == "factor":
        return low / amount, high * amount
    margin = amount + 0.25 * (high - low)
    return low - margin, high + margin


def check_ranges(statistics: Mapping[str, float], ranges: Mapping[str, Any]) -> list[str]:
    """Reasons why ``statistics`` fall outside ``ranges`` (empty: in distribution).

    Entries of ``ranges`` that are not ``[low, high]`` pairs of finite numbers are ignored
    (the bundle is untrusted input and validated elsewhere).
    """
    reasons = []
    for name, value in statistics.items():
        bounds = ranges.get(name)
        if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds)):
            continue
        low, high = _allowed(name, float(bounds[0]), float(bounds[1]))
        if not low <= value <= high:
            reasons.append(f"{name} {value:.3g} is outside the training range {bounds[0]:.3g}-{bounds[1]:.3g}")
    return reasons
