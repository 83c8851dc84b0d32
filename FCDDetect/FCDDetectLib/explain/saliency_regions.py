"""The regions of localized SmoothGrad and the per-modality figures inside each one.

A :class:`Region` is a set of voxels on the reference input's grid: a connected component of
an ROI (:func:`roi_regions`, 26-connectivity, largest first), a cluster of a map
(:func:`cluster_regions`) or the whole head (:func:`brain_region`); :func:`detection_regions`
picks them for one detection. :func:`region_contributions` reduces signed maps (one per
modality) to a :class:`RegionContributions`: the positive and negative sums per voxel inside
the region and in a band of ``band_mm`` around it (:func:`band_around`), and each modality's
share. The maps come from :mod:`FCDDetectLib.explain.localized_smoothgrad`.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.explain.saliency_regions import Region, region_contributions
    >>> m = np.zeros((4, 4, 4), bool); m[1, 1, 1] = True
    >>> g = np.zeros((4, 4, 4), np.float32); g[1, 1, 1] = 2.0
    >>> r = region_contributions({"flair": g}, Region("roi-1", "roi-component", m), np.eye(4))
    >>> r.voxels, r.band_voxels, r.modalities[0].positive, r.modalities[0].share
    (1, 62, 2.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import voxel_sizes
from FCDDetectLib.io.image_io import Image

DEFAULT_BAND_MM = 3.0
"""Width of the band around a region (mm): about one to two voxels of a clinical 3D scan."""


@dataclass
class Region:
    """A set of voxels on the reference input grid (``mask``, bool) with a name and its kind
    (``"roi-component"``, ``"cluster"`` or ``"brain"``)."""

    name: str
    kind: str
    mask: np.ndarray


@dataclass
class ModalityContribution:
    """One modality's signed gradients in one region (values per voxel, see the module docstring)."""

    modality: str
    positive: float
    negative: float
    band_positive: float | None
    band_negative: float | None
    share: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RegionContributions:
    """The contributions of every modality inside one region and in the band around it."""

    name: str
    kind: str
    voxels: int
    band_voxels: int
    volume_mm3: float
    modalities: list[ModalityContribution]
    band_mm: float = DEFAULT_BAND_MM

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "voxels": self.voxels, "band_voxels": self.band_voxels,
            "band_mm": self.band_mm, "volume_mm3": round(self.volume_mm3, 3),
            "modalities": [m.to_json() for m in self.modalities],
        }


def roi_regions(roi: Image, grid: Image, name: str = "ROI") -> list[Region]:
    """The connected components (26-connectivity) of ``roi`` on ``grid``'s voxels, largest first.

    An ROI on another grid is resampled (nearest neighbour, as for the Heat-Score). Raises
    FCDInputError for an empty ROI or one that does not overlap ``grid``.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((8, 8, 8), bool); m[1:3, 1:3, 1:3] = True; m[6, 6, 6] = True
        >>> [int(r.mask.sum()) for r in roi_regions(Image(m, np.eye(4)), Image(np.zeros((8, 8, 8)), np.eye(4)))]
        [8, 1]
    """
    from scipy import ndimage

    from FCDDetectLib.grid.geometry import mask_onto_grid, same_grid

    array = np.asarray(roi.array) > 0.5
    if not array.any():
        raise FCDInputError(f"{name}: ROI is empty (no voxel set)")
    if not same_grid(roi, grid):
        array = mask_onto_grid(roi, grid)
        if not array.any():
            raise FCDInputError(
                f"{name}: ROI does not overlap the image's grid after resampling "
                "(outside its field of view, or smaller than one voxel)"
            )
    labels, count = ndimage.label(array, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1
    return [Region(f"roi-{rank}", "roi-component", labels == int(k)) for rank, k in enumerate(order, start=1)]


def brain_region(reference: Image) -> Region:
    """The whole head of the reference image (preprocessing's head mask on its own grid)."""
    from FCDDetectLib.grid.head_mask import head_mask

    return Region("brain", "brain", head_mask(np.asarray(reference.array, np.float32)))


def cluster_regions(labels: np.ndarray, ids: Sequence[int]) -> list[Region]:
    """Regions of a cluster label volume (``ClusterSet.labels``), in the order of ``ids``."""
    return [Region(f"cluster-{int(k)}", "cluster", np.asarray(labels) == int(k)) for k in ids]


def band_around(mask: np.ndarray, affine: np.ndarray, band_mm: float) -> np.ndarray:
    """Voxels outside ``mask`` within ``band_mm`` of it (Euclidean distance in mm between voxel
    centres, voxel sizes from the affine's columns).

    Example:
        >>> import numpy as np
        >>> m = np.zeros((9, 9, 9), bool); m[4, 4, 4] = True
        >>> int(band_around(m, np.eye(4), 1.0).sum())  # the 6 face neighbours
        6
    """
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if band_mm <= 0 or not mask.any():
        return np.zeros_like(mask)
    sizes = np.asarray(voxel_sizes(affine))
    reach = np.ceil(band_mm / sizes).astype(int) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - reach, 0)
    hi = np.minimum(idx.max(0) + reach + 1, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    distance = ndimage.distance_transform_edt(~mask[box], sampling=sizes)
    band = np.zeros_like(mask)
    band[box] = (distance > 0) & (distance <= band_mm + 1e-6)
    return band


def region_contributions(
    maps: dict[str, np.ndarray], region: Region, affine: np.ndarray, band_mm: float = DEFAULT_BAND_MM,
) -> RegionContributions:
    """Per-modality positive and negative sums / voxel count inside ``region`` and in its band.

    The band is :func:`band_around` with ``max(band_mm, largest voxel size)`` (so it always
    holds at least the face neighbours; ``band_mm`` of the result is the width used).

    ``share`` = (positive - negative) of the modality / the same summed over modalities
    (None when every gradient inside is 0). Raises FCDInputError for a region without voxels.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((4, 4, 4), bool); m[1, 1, 1] = True
        >>> g = np.zeros((4, 4, 4), np.float32); g[1, 1, 1] = 3.0
        >>> r = region_contributions({"flair": g, "t1": -g / 3}, Region("a", "roi-component", m), np.eye(4), 0)
        >>> [(c.modality, c.positive, c.negative, c.share) for c in r.modalities]
        [('flair', 3.0, 0.0, 0.75), ('t1', 0.0, -1.0, 0.25)]
    """
    inside = np.asarray(region.mask, bool)
    n = int(inside.sum())
    if n == 0:
        raise FCDInputError(f"region {region.name}: has no voxels")
    if band_mm > 0:
        band_mm = max(float(band_mm), max(voxel_sizes(affine)))
    band = band_around(inside, affine, band_mm)
    n_band = int(band.sum())
    rows = []
    for modality, grad in maps.items():
        values = np.asarray(grad, np.float64)
        v_in = values[inside]
        v_band = values[band]
        rows.append([
            modality, float(v_in[v_in > 0].sum() / n), float(v_in[v_in < 0].sum() / n),
            float(v_band[v_band > 0].sum() / n_band) if n_band else None,
            float(v_band[v_band < 0].sum() / n_band) if n_band else None,
        ])
    total = sum(pos - neg for _, pos, neg, _, _ in rows)
    contributions = [
        ModalityContribution(m, pos, neg, bpos, bneg, float((pos - neg) / total) if total > 0 else None)
        for m, pos, neg, bpos, bneg in rows
    ]
    volume = float(n * abs(np.linalg.det(np.asarray(affine, float)[:3, :3])))
    return RegionContributions(region.name, region.kind, n, n_band, volume, contributions, float(band_mm))


def detection_regions(prep: Any, roi: Image | None = None, clusters: Any = None, heatmap: np.ndarray | None = None,
                      roi_name: str = "ROI") -> tuple[list[Region], list[str]]:
    """The regions of one detection and notes: the ROI's components when an ROI is given, else the
    clusters of the map (``clusters``, a :class:`~FCDDetectLib.maps.clusters.ClusterSet` on the input
    grid, or found in ``heatmap`` with the cluster defaults), else (no cluster) the whole head.

    Example:
        >>> regions, notes = detection_regions(prep, roi=roi_image)  # doctest: +SKIP
    """
    reference = prep.reference
    if roi is not None:
        return roi_regions(roi, reference, name=roi_name), []
    if clusters is None and heatmap is not None:
        from FCDDetectLib.maps.clusters import find_clusters

        clusters = find_clusters(heatmap, reference.affine, image=np.asarray(reference.array, np.float32))
    if clusters is not None and clusters.clusters:
        return cluster_regions(clusters.labels, [c.id for c in clusters.clusters]), []
    return [brain_region(reference)], ["no ROI and no cluster: the region is the whole head"]
