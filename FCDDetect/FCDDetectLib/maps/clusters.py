"""Clusters of a map: threshold, connected components, minimum size, ranking, RAS positions.

A *map* is a float volume in [0, 1] on the input grid (a Grad-CAM heatmap of any stage,
SmoothGrad, the lesion head's probability). A *cluster* is a connected component of the
voxels with ``map >= threshold`` (``scipy.ndimage.label``, 26-connectivity: voxels that
share a face, an edge or a corner are connected) whose volume is at least
``min_size_mm3`` (voxel count times the voxel volume ``|det(affine[:3, :3])|``).

Rules (also in ``docs/lesion-level.md``):

- **Head restriction**: when a head mask is given (or an ``image`` from which
  :func:`FCDDetectLib.grid.preprocess.head_mask` computes one), map voxels outside the head
  are set to 0 before thresholding, so a coarse stage's bands beyond the head never make
  a cluster.
- **Ranking**: ``confidence`` is the cluster's peak map value; clusters are sorted by
  confidence, then by volume (larger first), then by mean value; id 1 is the highest.
  The peak is what a reader looks at first ("the hottest spot"), and it does not grow
  with the cluster's size the way a sum would, so a large band of moderate values does
  not outrank a compact, strong focus.
- **Positions**: ``peak_ras`` is the world (RAS, mm) position of the cluster's maximum
  voxel (the first in C order when tied), ``centroid_ras`` the unweighted centre of its
  voxels, both through the map's affine (so an oblique LPS grid gives true RAS mm).
- **Hemisphere**: the mid-sagittal plane is estimated from the image as the plane
  ``x_RAS = x0`` where ``x0`` is the RAS x of the head mask's centroid (the head mask is
  the given one, or the one computed from ``image``; without either, the centre of the
  grid's field of view). A cluster whose centroid has ``x_RAS > x0`` is ``"right"``
  (RAS: +x points to the patient's right), otherwise ``"left"``. This assumes the head
  is roughly aligned with the scanner's left-right axis (true for clinical scans within
  some 10-15 degrees); the centroid is robust to the skull being present or stripped.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.maps.clusters import find_clusters
    >>> heat = np.zeros((20, 20, 20), np.float32)
    >>> heat[2:6, 2:6, 2:6] = 0.9; heat[12:15, 12:15, 12:15] = 0.7; heat[18, 18, 18] = 1.0
    >>> result = find_clusters(heat, np.eye(4), threshold=0.5, min_size_mm3=8.0)
    >>> [(c.id, c.voxels, round(c.peak, 1)) for c in result.clusters]
    [(1, 64, 0.9), (2, 27, 0.7)]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import mask_bounds

__all__ = [
    "CONNECTIVITY",
    "DEFAULT_MIN_SIZE_MM3",
    "DEFAULT_THRESHOLD",
    "Cluster",
    "ClusterSet",
    "check_cluster_settings",
    "find_clusters",
    "midline_x",
    "restrict_to_head",
]

DEFAULT_THRESHOLD: float = 0.5
"""Map value at or above which a voxel belongs to a cluster (maps are in [0, 1])."""

DEFAULT_MIN_SIZE_MM3: float = 50.0
"""Smallest cluster kept, in mm3 (a 3.7 mm cube). The smallest FCD-II lesions are 8 mm
across (about 270 mm3 as a sphere), so a real lesion's thresholded map passes; single
voxels and specks of noise do not."""

CONNECTIVITY: int = 3
"""``scipy.ndimage.generate_binary_structure(3, CONNECTIVITY)``: 3 = 26-connectivity."""

_MAX_LABEL = int(np.iinfo(np.int16).max)


@dataclass(frozen=True)
class Cluster:
    """One ranked cluster of a map (see the module docstring for the rules).

    Example:
        >>> c = Cluster(1, 8, 8.0, 0.9, 0.8, (1.0, 2.0, 3.0), (1.5, 2.5, 3.5), "right", 0.9)
        >>> c.to_json()["peak_ras"]
        [1.0, 2.0, 3.0]
    """

    id: int
    voxels: int
    volume_mm3: float
    peak: float
    mean: float
    peak_ras: tuple[float, float, float]
    centroid_ras: tuple[float, float, float]
    hemisphere: str
    confidence: float
    mean_uncertainty: float | None = None
    """Fold ensembles: the mean of the uncertainty map (spread across folds) over the cluster's voxels."""
    folds_found: int | None = None
    """Fold ensembles: how many fold models have a cluster of their own overlapping this one."""

    def to_json(self) -> dict:
        """Plain JSON types: tuples become lists; keys are the field names (the ensemble's only when set)."""
        data = asdict(self)
        for name in ("mean_uncertainty", "folds_found"):
            if data[name] is None:
                del data[name]
        data["peak_ras"] = [float(v) for v in self.peak_ras]
        data["centroid_ras"] = [float(v) for v in self.centroid_ras]
        return data


@dataclass(frozen=True)
class ClusterSet:
    """All clusters of one map, ranked, with their label volume.

    ``labels``: int16 on the map's grid, 0 = no cluster, k = the voxels of cluster id k.
    ``midline_x``: the RAS x (mm) of the estimated mid-sagittal plane.

    Example:
        >>> result = find_clusters(heat, affine)  # doctest: +SKIP
        >>> result.labels.max() == len(result.clusters)  # doctest: +SKIP
        True
    """

    clusters: list[Cluster]
    labels: np.ndarray
    threshold: float
    min_size_mm3: float
    midline_x: float | None = None
    connectivity: int = CONNECTIVITY
    top_component_peak_x_volume_mm3: float | None = None
    """The largest ``peak x volume_mm3`` over every connected component at ``threshold``, those
    below ``min_size_mm3`` included (0.0 when none; None for a set not made by :func:`find_clusters`).
    The lesion evidence of new lesion bundles (:mod:`FCDDetectLib.maps.lesion_evidence`)."""

    def to_json(self) -> dict:
        """Settings and clusters as plain JSON types (the content of ``clusters.json``)."""
        return {
            "threshold": float(self.threshold),
            "min_size_mm3": float(self.min_size_mm3),
            "connectivity": "26 (face, edge and corner neighbours)",
            "ranking": "confidence = peak map value; ties: larger volume, then higher mean",
            "midline_x_ras": None if self.midline_x is None else float(self.midline_x),
            "clusters": [c.to_json() for c in self.clusters],
        }


def _check_affine(affine: np.ndarray) -> np.ndarray:
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise FCDInputError(f"map affine: expected a finite 4x4 matrix, got shape {matrix.shape}")
    if abs(float(np.linalg.det(matrix[:3, :3]))) <= 0.0:
        raise FCDInputError("map affine: singular (zero voxel volume)")
    return matrix


def _check_map(map_array: np.ndarray) -> np.ndarray:
    data = np.asarray(map_array, dtype=np.float32)
    if data.ndim != 3:
        raise FCDInputError(f"map: expected a 3D array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise FCDInputError("map: contains NaN or Inf values")
    return data


def check_cluster_settings(threshold: float, min_size_mm3: float) -> tuple[float, float]:
    """Validated (threshold, min size): FCDInputError outside [0, 1] or for a negative size.

    Example:
        >>> check_cluster_settings(0.5, 0)
        (0.5, 0.0)
    """
    value = float(threshold)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise FCDInputError(f"cluster threshold: {threshold} is outside [0, 1]")
    size = float(min_size_mm3)
    if not math.isfinite(size) or size < 0.0:
        raise FCDInputError(f"minimum cluster size: {min_size_mm3} mm3 is negative (or not a number)")
    return value, size


def _to_ras(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    points = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
    return points @ affine[:3, :3].T + affine[:3, 3]


def midline_x(affine: np.ndarray, shape: tuple[int, ...], head: np.ndarray | None) -> float:
    """RAS x (mm) of the estimated mid-sagittal plane: the head mask's centroid, else the grid centre.

    Example:
        >>> mask = np.zeros((10, 4, 4), bool); mask[2:6] = True
        >>> midline_x(np.eye(4), mask.shape, mask)
        3.5
    """
    matrix = _check_affine(affine)
    mask = None if head is None else np.asarray(head, dtype=bool)
    if mask is not None and np.any(mask):
        # The centroid from the mask's three projections (what ndimage.center_of_mass gives, to
        # float rounding, without its float64 products of the whole volume: 8.7 M voxels at 1 mm).
        # Counts are summed as small integers first (uint16 along Z: at most 65535 voxels per
        # line), then the two short projections in float64: 10 ms -> 2 ms at 1 mm, the same sums.
        voxels = mask.view(np.uint8)
        line_counts = np.add.reduce(voxels, axis=2, dtype=np.uint16 if mask.shape[2] < 65536 else np.uint32)
        projections = [line_counts.sum(axis=1, dtype=np.float64), line_counts.sum(axis=0, dtype=np.float64),
                       np.add.reduce(np.add.reduce(voxels, axis=0, dtype=np.uint32), axis=0, dtype=np.float64)]
        total = float(projections[0].sum())
        centre = np.array([np.dot(np.arange(mask.shape[a], dtype=np.float64), projections[a]) / total
                           for a in range(3)])
    else:
        centre = (np.asarray(shape[:3], dtype=np.float64) - 1.0) / 2.0
    return float(_to_ras(matrix, centre)[0, 0])


def restrict_to_head(map_array: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The map with every voxel outside ``head`` (bool, same grid) set to 0.

    Example:
        >>> head = np.zeros((2, 2, 2), bool); head[0] = True
        >>> float(restrict_to_head(np.ones((2, 2, 2)), head).sum())
        4.0
    """
    data = np.asarray(map_array, dtype=np.float32)
    mask = np.asarray(head, dtype=bool)
    if mask.shape != data.shape:
        raise FCDInputError(f"head mask: shape {mask.shape} differs from the map's {data.shape}")
    return np.where(mask, data, np.float32(0.0)).astype(np.float32, copy=False)


def _head_from(head_mask: np.ndarray | None, image: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if head_mask is not None:
        mask = np.asarray(head_mask)
        mask = mask if mask.dtype == np.bool_ else mask > 0.5
        if mask.shape != shape:
            raise FCDInputError(f"head mask: shape {mask.shape} differs from the map's {shape}")
        return mask
    if image is not None:
        data = np.asarray(image, dtype=np.float32)
        if data.shape != shape:
            raise FCDInputError(f"image: shape {data.shape} differs from the map's {shape}")
        from FCDDetectLib.grid.head_mask import head_mask as compute_head_mask

        return compute_head_mask(data)
    return None


def _cluster_statistics(
    data: np.ndarray, components: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Peak value, mean value, peak voxel and centroid voxel of each label in ``keep``.

    Each label is measured inside its own bounding box (``ndimage.find_objects``). Written
    here rather than with ``ndimage.maximum``/``maximum_position``/``center_of_mass`` for two
    reasons: those sort the whole volume once per call (0.4 s for a map that covers a 1 mm
    head), and ``maximum_position`` returns, among equal maxima, whichever its unstable sort
    puts last, while the rule here (and in the docs) is the first voxel in C order.

    Example:
        >>> labels = np.array([[[1, 1, 0, 2]]]); values = np.array([[[0.5, 0.9, 0.0, 0.7]]])
        >>> peaks, means, peak_ijk, centre_ijk = _cluster_statistics(values, labels, np.array([1, 2]))
        >>> peaks.tolist(), means.tolist(), peak_ijk.tolist(), centre_ijk.tolist()
        ([0.9, 0.7], [0.7, 0.7], [[0.0, 0.0, 1.0], [0.0, 0.0, 3.0]], [[0.0, 0.0, 0.5], [0.0, 0.0, 3.0]])
    """
    from scipy import ndimage

    boxes = ndimage.find_objects(components)
    peaks, means = np.empty(len(keep)), np.empty(len(keep))
    peak_ijk, centre_ijk = np.empty((len(keep), 3)), np.empty((len(keep), 3))
    for row, label in enumerate(keep):
        box = boxes[int(label) - 1]
        corner = np.array([axis.start for axis in box], dtype=np.float64)
        inside, region = components[box] == label, data[box]
        values = np.where(inside, region, -np.inf)
        flat = int(np.argmax(values))  # argmax: the first maximum in C order
        peaks[row] = float(values.flat[flat])
        means[row] = float(region[inside].astype(np.float64).mean())
        peak_ijk[row] = np.array(np.unravel_index(flat, inside.shape), dtype=np.float64) + corner
        centre_ijk[row] = np.argwhere(inside).mean(axis=0) + corner
    return peaks, means, peak_ijk, centre_ijk


def _top_component_score(data: np.ndarray, components: np.ndarray, sizes: np.ndarray, keep: np.ndarray,
                         kept_scores: np.ndarray, voxel_mm3: float) -> float:
    """The largest ``peak x volume_mm3`` over every component (``sizes[k]`` voxels, label k >= 1).

    The kept clusters' scores are ``kept_scores``; a component below the minimum size can only
    win when its volume times the map's highest value beats them, so its peak is measured only
    then (a lesion map's specks are few; a heatmap's band is one kept cluster).

    Example:
        >>> comps = np.array([[[1, 1, 0, 2]]]); vals = np.array([[[0.5, 0.9, 0.0, 0.7]]])
        >>> _top_component_score(vals, comps, np.array([1, 2, 1]), np.array([1]), np.array([1.8]), 1.0)
        1.8
        >>> _top_component_score(vals, comps, np.array([1, 2, 1]), np.array([], int), np.array([]), 1.0)
        1.8
    """
    best = float(kept_scores.max()) if kept_scores.size else 0.0
    small = np.ones(sizes.size, dtype=bool)
    small[0] = False
    small[keep] = False
    if not small.any() or float(sizes[small].max()) * voxel_mm3 * float(data.max()) <= best:
        return best
    inside = small[components]
    peaks = np.zeros(sizes.size, dtype=np.float64)
    np.maximum.at(peaks, components[inside], data[inside])
    return max(best, float((peaks[small] * sizes[small]).max()) * voxel_mm3)


def find_clusters(
    map_array: np.ndarray,
    affine: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    min_size_mm3: float = DEFAULT_MIN_SIZE_MM3,
    head_mask: np.ndarray | None = None,
    image: np.ndarray | None = None,
) -> ClusterSet:
    """Ranked clusters of ``map_array`` (a 3D map on the grid of ``affine``).

    ``head_mask`` (bool, same grid) or ``image`` (the input intensity volume, same grid,
    from which the head mask is computed) restricts the map to the head and gives the
    mid-sagittal plane for ``hemisphere``. Raises FCDInputError for a threshold outside
    [0, 1], a negative minimum size, a map that is not 3D/finite, or a mask of another shape.
    A map with no voxel above the threshold gives an empty ``ClusterSet`` (not an error).

    Example:
        >>> result = find_clusters(heat, image_affine, threshold=0.5, min_size_mm3=50,
        ...                        image=flair_array)  # doctest: +SKIP
        >>> result.clusters[0].hemisphere  # doctest: +SKIP
        'left'
    """
    from scipy import ndimage

    level, min_size = check_cluster_settings(threshold, min_size_mm3)
    matrix = _check_affine(affine)
    data = _check_map(map_array)
    head = _head_from(head_mask, image, data.shape)
    if head is not None:
        data = restrict_to_head(data, head)
    mid = midline_x(matrix, data.shape, head)
    voxel_mm3 = abs(float(np.linalg.det(matrix[:3, :3])))

    structure = ndimage.generate_binary_structure(3, CONNECTIVITY)
    empty = ClusterSet([], np.zeros(data.shape, np.int16), level, min_size, mid, top_component_peak_x_volume_mm3=0.0)
    above = data >= level
    bounds = mask_bounds(above)
    if bounds is None:
        return empty
    box = tuple(slice(int(a), int(b)) for a, b in zip(*bounds, strict=True))
    # Components and their statistics inside the box of supra-threshold voxels only (the
    # same result: nothing outside it can belong to a cluster); a 1 mm head has 8.7 M voxels.
    components, count = ndimage.label(above[box], structure=structure)
    data, origin = data[box], np.array([axis.start for axis in box], dtype=np.float64)
    if count == 0:
        return empty
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes[1:] * voxel_mm3 >= min_size) + 1
    if keep.size == 0:
        return dataclasses.replace(empty, top_component_peak_x_volume_mm3=_top_component_score(
            data, components, sizes, keep, np.empty(0), voxel_mm3))
    peaks, means, peak_ijk, centre_ijk = _cluster_statistics(data, components, keep)
    kept_sizes = sizes[keep]
    top_score = _top_component_score(data, components, sizes, keep, peaks * kept_sizes * voxel_mm3, voxel_mm3)
    # np.lexsort sorts by the last key first: peak, then volume, then mean, all descending.
    order = np.lexsort((-means, -kept_sizes, -peaks))[:_MAX_LABEL]

    peak_ras = _to_ras(matrix, peak_ijk.reshape(-1, 3) + origin)
    centre_ras = _to_ras(matrix, centre_ijk.reshape(-1, 3) + origin)
    relabel = np.zeros(count + 1, dtype=np.int16)
    clusters: list[Cluster] = []
    for rank, index in enumerate(order, start=1):
        relabel[keep[index]] = rank
        clusters.append(
            Cluster(
                id=rank,
                voxels=int(kept_sizes[index]),
                volume_mm3=float(kept_sizes[index] * voxel_mm3),
                peak=float(peaks[index]),
                mean=float(means[index]),
                peak_ras=tuple(float(v) for v in peak_ras[index]),  # type: ignore[arg-type]
                centroid_ras=tuple(float(v) for v in centre_ras[index]),  # type: ignore[arg-type]
                hemisphere="right" if centre_ras[index, 0] > mid else "left",
                confidence=float(peaks[index]),
            )
        )
    labels = np.zeros(empty.labels.shape, dtype=np.int16)
    labels[box] = relabel[components]
    return ClusterSet(clusters, labels, level, min_size, mid, top_component_peak_x_volume_mm3=top_score)
