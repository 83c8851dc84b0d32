"""Out-of-distribution check: does an input look like the scans the model was trained on?

A classifier answers for any input, even a 5 x 5 x 5 noise cube. So training records,
in the bundle (``BundleMetadata.input_ranges``), the range over its training inputs of a
few statistics that need no anatomy, and detection compares the new input with them:

===================== =====================================================================
``voxel_mm_min/max``  smallest / largest voxel edge over the input images (mm)
``fov_mm_min/max``    smallest / largest field-of-view edge over the input images (mm)
``head_volume_ml``    head mask volume of the first image on the model grid (ml)
``head_edge_fraction`` largest share of one face of the first image's field of view covered
                      by the head (a head cut by the field of view has a large one)
``background_ratio``  p2 / p99.5 of the first image's intensities (about 0 for magnitude MRI;
                      about -1 for CT, whose air is -1000 HU)
``median_ratio``      p50 / p99.5 of the first image's intensities
===================== =====================================================================

What is checked follows what the model handles (docs/reliability.md, measured by
``benchmarks/bench_families.py``), not every difference from the training inputs:

- Voxel sizes are checked only upwards. Any voxel finer than the model grid is resampled
  onto it (with anti-aliasing, :mod:`FCDDetectLib.grid.antialias`), so a 1 mm clinical scan
  is never flagged for its voxels; a voxel coarser than both the training inputs' and the
  model grid's by 1.5x is (information the model was trained with is missing).
- Intensity *scale* is not a statistic at all (the head is z-scored): a scan stored as 0-1
  floats or 12-bit integers has the same ratios as the int16 one.
- ``head_edge_fraction`` only upwards (a head cut by the field of view), ``fov_mm_min`` only
  downwards (a cropped scan; a larger field of view is cropped to the head anyway).
- Head volume, the intensity ratios and ``fov_mm_max`` both ways: a brain-extracted scan has
  about half the head volume of a scan with skull and scalp, and is flagged unless the
  training inputs included brain-extracted scans (``fcd synth --randomize``).

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
    >>> check_ranges({"voxel_mm_max": 0.5}, ranges)  # finer voxels are resampled: never flagged
    []
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["STATISTICS", "check_ranges", "input_statistics", "summarise_ranges"]

# name -> (kind, amount, sides). ("factor", f): allowed [lo / f, hi * f]; ("spread", a): allowed
# [lo - m, hi + m] with m = a + 0.25 * (hi - lo). sides: "both", "upper" (only values above are
# flagged) or "lower" (only values below).
STATISTICS: dict[str, tuple[str, float, str]] = {
    "voxel_mm_min": ("factor", 1.5, "upper"),
    "voxel_mm_max": ("factor", 1.5, "upper"),
    "fov_mm_min": ("factor", 1.3, "lower"),
    "fov_mm_max": ("factor", 1.3, "both"),
    "head_volume_ml": ("factor", 1.5, "both"),
    "head_edge_fraction": ("spread", 0.15, "upper"),
    "background_ratio": ("spread", 0.15, "both"),
    "median_ratio": ("spread", 0.15, "both"),
}
_RESAMPLED = ("voxel_mm_min", "voxel_mm_max")  # checked against max(training range, model spacing)
_MAX_SAMPLES = 2_000_000  # percentiles from an even subsample of at most this many voxels


def input_statistics(images: Any, prep: Any) -> dict[str, float]:
    """The statistics of one input: its ``images`` (reference first; one Image is one input) and
    their :class:`Preprocessed`.

    Voxel and field-of-view sizes are taken over every image (a 2D FLAIR beside a 3D T1 counts
    with its thick slices), the intensity and head figures from the reference.

    Example:
        >>> stats = input_statistics([t1, flair], preprocess([t1, flair], (2, 2, 2), (96, 112, 96)))  # doctest: +SKIP
    """
    images = [images] if hasattr(images, "affine") else list(images)  # one Image (a NamedTuple) or several
    voxels, fovs = [], []
    for item in images:
        size = np.sqrt((np.asarray(item.affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
        voxels.append(size)
        fovs.append(size * np.asarray(np.shape(item.array)[:3], dtype=np.float64))
    voxel, fov = np.concatenate(voxels), np.concatenate(fovs)
    array = np.asarray(images[0].array)
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
    kind, amount, sides = STATISTICS.get(name, ("spread", 0.15, "both"))
    if kind == "factor":
        lower, upper = low / amount, high * amount
    else:
        margin = amount + 0.25 * (high - low)
        lower, upper = low - margin, high + margin
    return (-math.inf if sides == "upper" else lower), (math.inf if sides == "lower" else upper)


def check_ranges(statistics: Mapping[str, float], ranges: Mapping[str, Any],
                 spacing: Sequence[float] | None = None) -> list[str]:
    """Reasons why ``statistics`` fall outside ``ranges`` (empty: in distribution).

    ``spacing`` is the model grid's (mm): voxel sizes up to its largest edge are in range
    whatever the training inputs had, since the grid resamples them anyway. Entries of
    ``ranges`` that are not ``[low, high]`` pairs of finite numbers are ignored (the bundle
    is untrusted input and validated elsewhere).

    Example:
        >>> check_ranges({"voxel_mm_max": 3.5}, {"voxel_mm_max": [1.0, 1.0]}, spacing=(3.0, 3.0, 3.0))
        []
    """
    coarsest = max((float(s) for s in spacing or () if math.isfinite(float(s))), default=0.0)
    reasons = []
    for name, value in statistics.items():
        bounds = ranges.get(name)
        if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds)):
            continue
        top = max(float(bounds[1]), coarsest) if name in _RESAMPLED else float(bounds[1])
        low, high = _allowed(name, float(bounds[0]), top)
        if not low <= value <= high:
            reasons.append(f"{name} {value:.3g} is outside the training range {bounds[0]:.3g}-{bounds[1]:.3g}")
    return reasons
