"""The "FCD sample": a tiny synthetic scan, its lesion outline and a tiny model, shipped in
``FCDDetect/Resources/Sample``, so FCD Detect can be tried in one click and its self-test
detects offline.

The scan is a synthetic head (2 mm voxels, 64 x 64 x 64) with one planted bright lesion; the
model is a narrow ResNet-18 (width 1/16, about 0.5 MB) trained on planted-evidence volumes,
plus a lesion head whose map is planted on bright voxels (``Testing/builders/fcd_sample.py``
writes all three: ``make sample``). It is a demonstration, not a clinical model: its only
evidence is brightness. FCD Detect registers the scan and the outline with Slicer's Sample
Data module as "FCD sample" and lists the model only for that scan.

:func:`sample_problems` is the self-test's verdict on a detection of the sample (Qt-free, so
``Testing/slicer`` proves that a broken detection fails it).

Example:
    >>> files = sample_files()
    >>> files.scan.name, files.bundle.name
    ('fcd-sample-flair.nii.gz', 'fcd-sample.fcdbundle')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_NAME = "FCD sample"
"""The Sample Data entry's name (and the category it is listed under: "FCD Detection")."""
SAMPLE_CATEGORY = "FCD Detection"
SCAN_FILE = "fcd-sample-flair.nii.gz"
LESION_FILE = "fcd-sample-lesion.nii.gz"
BUNDLE_FOLDER = "fcd-sample.fcdbundle"
THUMBNAIL_FILE = "fcd-sample.png"
SCAN_NODE_NAME = "FCD sample FLAIR"
LESION_NODE_NAME = "FCD sample lesion"
MIN_PROBABILITY = 0.5
"""The sample model's p(FCD) on the sample scan must reach this (the model's threshold)."""


@dataclass(frozen=True)
class SampleFiles:
    """Where the sample's files are: the scan, the lesion label map, the bundle, the thumbnail."""

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    @property
    def scan(self) -> Path:
        return self.folder / SCAN_FILE

    @property
    def lesion(self) -> Path:
        return self.folder / LESION_FILE

    @property
    def bundle(self) -> Path:
        return self.folder / BUNDLE_FOLDER

    @property
    def thumbnail(self) -> Path:
        return self.folder / THUMBNAIL_FILE

    def missing(self) -> list[str]:
        """Files of the sample that are not there."""
        return [str(p) for p in (self.scan, self.lesion, self.bundle / "bundle.json", self.bundle / "weights.pt")
                if not p.is_file()]


def sample_files(resources: str | Path | None = None) -> SampleFiles:
    """The sample under ``resources`` (default: ``FCDDetect/Resources`` beside this package)."""
    base = Path(resources) if resources is not None else Path(__file__).resolve().parents[2] / "Resources"
    return SampleFiles(base / "Sample")


def is_sample_volume(name: str | None) -> bool:
    """True for the node Sample Data makes from the sample scan (the model is listed for it)."""
    return bool(name) and str(name).startswith(SCAN_NODE_NAME)


def _world(affine: np.ndarray, ijk: Sequence[float]) -> np.ndarray:
    return (np.asarray(affine, float) @ np.array([*map(float, ijk), 1.0]))[:3]


def sample_problems(result: Any, lesion: np.ndarray, lesion_affine: np.ndarray,
                    cluster_peak_ras: Sequence[float] | None) -> list[str]:
    """What is wrong with a detection of the sample scan ([] when it found the lesion).

    ``result``: the engine's ``DetectionResult``; ``lesion``: the sample's lesion mask (I, J, K)
    and its affine; ``cluster_peak_ras``: where the slice views jump for cluster 1 (the first
    row of the clusters table), None when there is no cluster. Checked: p(FCD) reaches
    :data:`MIN_PROBABILITY`, the heatmap's maximum and cluster 1's peak lie in the lesion,
    and so does the lesion map's maximum when the model has a lesion head.
    """
    problems: list[str] = []
    inverse = np.linalg.inv(np.asarray(lesion_affine, float))

    def inside(ras: Sequence[float]) -> bool:
        ijk = np.rint((inverse @ np.array([*map(float, ras), 1.0]))[:3]).astype(int)
        return bool(np.all(ijk >= 0) and np.all(ijk < lesion.shape) and lesion[tuple(ijk)])

    probability = float(getattr(result, "probability", math.nan))
    if not probability >= MIN_PROBABILITY:
        problems.append(f"p(FCD) = {probability:.3f} on the sample, expected >= {MIN_PROBABILITY}")
    for label, values in (("heatmap", getattr(result, "heatmap", None)),
                          ("lesion map", getattr(result, "lesion_map", None))):
        if values is None:
            if label == "heatmap":
                problems.append("no heatmap")
            continue
        values = np.asarray(values)
        if not np.isfinite(values).all() or values.max() <= values.min():
            problems.append(f"the {label} is flat or not finite")
            continue
        peak = _world(result.affine, np.unravel_index(int(np.argmax(values)), values.shape))
        if not inside(peak):
            problems.append(f"the {label}'s maximum at RAS {np.round(peak, 1).tolist()} is outside the lesion")
    if cluster_peak_ras is None:
        problems.append("no cluster")
    elif not inside(cluster_peak_ras):
        problems.append(f"cluster 1's peak at RAS {np.round(cluster_peak_ras, 1).tolist()} is outside the lesion")
    return problems
