"""Lesion-level figures of a map: per subject (detected, FP clusters, peak-in-ROI, Dice) and per cohort.

Rules (also in ``docs/lesion-level.md``):

- **Detected**: a patient with at least one cluster that overlaps the ROI by at least one
  voxel on the map's grid (no margin, no dilation). This is the rule of the figures we
  compare against (MELD, deepFCD and nnU-Net in Kersting et al. 2024 count a predicted
  cluster that overlaps the lesion mask).
- **FP clusters**: for a patient, the clusters that do not overlap the ROI; for a control,
  every cluster.
- **Peak-in-ROI**: the map's maximum is reached inside the ROI (some ROI voxel holds the
  global maximum, within ``PEAK_TOLERANCE`` = 1e-4 of the map's range for float rounding;
  a CAM map can have a plateau at its maximum, so no single voxel is "the" peak). A
  constant map has no peak: ``peak_in_roi`` is False. Because a plateau can be large (a
  lesion map stuck near its bias holds its maximum over hundreds of voxels), each row also
  gives ``peak_voxels`` (how many voxels hold the maximum) and ``peak_share_in_roi`` (the
  share of them inside the ROI); the cohort gives their medians over patients with ROI.
  A peak-in-ROI rate with a median ``peak_voxels`` far above the ROI's size is a plateau
  that happens to include the ROI, not a localisation.
- **Dice**: of the clusters' voxels (the thresholded map, restricted to the head, after
  the minimum size) with the ROI: ``2 |C & R| / (|C| + |R|)``.
- A subject without ROI has ``detected``, ``peak_in_roi`` and ``dice`` None. A patient
  without ROI is counted (``n_patients_without_roi``) but enters no patient figure; a
  control with no cluster counts towards specificity. Neither is an error.
- **Cohort**: detection rate = detected / patients with ROI; specificity = controls with
  no cluster / controls; FP clusters per patient (patients with ROI) and per control are
  means; cluster PPV = clusters touching a lesion / all clusters (patients with ROI and
  controls; None without any cluster); peak-in-ROI rate over patients with ROI; Dice mean and sample SD (ddof=1; None
  with fewer than 2 patients) over patients with ROI. A figure whose denominator is 0 is None.

An ROI on another grid than the map is resampled onto the map's grid with nearest
neighbour through the two affines (the Heat-Score's resampling); an ROI that then does
not overlap the map's grid, or is empty, is an FCDInputError.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.maps.clusters import find_clusters
    >>> from FCDDetectLib.maps.lesion_metrics import subject_lesion_metrics, cohort_lesion_metrics
    >>> heat = np.zeros((20, 20, 20), np.float32); heat[2:6, 2:6, 2:6] = 0.9
    >>> roi = np.zeros(heat.shape, bool); roi[3:7, 3:7, 3:7] = True
    >>> row = subject_lesion_metrics(heat, np.eye(4), find_clusters(heat, np.eye(4)), roi)
    >>> row["detected"], row["fp_clusters"], row["peak_in_roi"], round(row["dice"], 3)
    (True, 0, True, 0.422)
    >>> cohort_lesion_metrics([row])["detection_rate"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import ClusterSet
from FCDDetectLib.maps.heat_score import empty_roi_message

__all__ = ["CONTROL_LABELS", "PEAK_TOLERANCE", "cohort_lesion_metrics", "roi_on_grid", "subject_lesion_metrics"]

PEAK_TOLERANCE = 1e-4
"""A voxel within this fraction of the map's range below its maximum counts as "at the maximum"."""

CONTROL_LABELS = (0, "0", "control")
"""Values of a row's ``label`` that mark a control (anything else marks a patient)."""


def roi_on_grid(
    roi: np.ndarray | Image, shape: tuple[int, ...], affine: np.ndarray,
    roi_affine: np.ndarray | None = None, roi_name: str = "ROI",
) -> np.ndarray:
    """The ROI as a bool array on the map's grid (``shape``, ``affine``).

    ``roi`` is an array on the map's grid, or an :class:`Image` / an array with
    ``roi_affine`` on any grid (resampled nearest through the affines). Raises
    FCDInputError for an empty ROI, a shape mismatch without affine, or an ROI that does
    not overlap the map's grid.

    Example:
        >>> int(roi_on_grid(np.ones((2, 2, 2)), (2, 2, 2), np.eye(4)).sum())
        8
    """
    from FCDDetectLib.grid.geometry import (  # the Heat-Score's nearest resampling, one copy
        mask_onto_grid,
        same_grid,
    )

    if isinstance(roi, Image):
        roi, roi_affine = roi.array, roi.affine
    mask = np.asarray(roi) > 0.5
    if mask.ndim != 3:
        raise FCDInputError(f"{roi_name}: expected a 3D mask, got shape {mask.shape}")
    if not mask.any():
        raise FCDInputError(empty_roi_message(roi_name))
    grid = Image(np.empty(tuple(shape[:3]), np.uint8), np.asarray(affine, np.float64))
    if roi_affine is None:
        if mask.shape != tuple(shape[:3]):
            raise FCDInputError(
                f"{roi_name}: shape {mask.shape} differs from the map's {tuple(shape[:3])} and no affine was given"
            )
        return mask
    source = Image(mask, np.asarray(roi_affine, np.float64))
    if same_grid(source, grid):
        return mask
    moved = mask_onto_grid(source, grid)
    if not moved.any():
        raise FCDInputError(
            f"{roi_name}: ROI does not overlap the image's grid after resampling "
            "(outside its field of view, or smaller than one voxel)"
        )
    return moved


def subject_lesion_metrics(
    map_array: np.ndarray, affine: np.ndarray, clusters: ClusterSet, roi: np.ndarray | Image | None,
    roi_affine: np.ndarray | None = None, roi_name: str = "ROI", label: Any = None,
) -> dict:
    """Lesion-level figures of one subject's map and its clusters (from :func:`find_clusters`).

    Keys: ``has_roi``, ``detected`` (None without ROI), ``n_clusters``, ``fp_clusters``,
    ``peak_in_roi`` (None without ROI), ``dice`` (None without ROI), ``top_cluster`` (the
    highest-ranked cluster's JSON with ``overlaps_roi``, or None), ``cluster_overlaps``
    (per cluster id, whether it overlaps the ROI; empty without ROI), ``peak_voxels`` (voxels
    at the map's maximum; None for a constant map), ``peak_share_in_roi`` (their share inside
    the ROI; None without ROI) and, when given,
    ``label`` (the class of the subject, used by :func:`cohort_lesion_metrics`).

    Example:
        >>> row = subject_lesion_metrics(heat, affine, find_clusters(heat, affine), roi,
        ...                              label="fcd")  # doctest: +SKIP
    """
    data = np.asarray(map_array, dtype=np.float32)
    labels = np.asarray(clusters.labels)
    if labels.shape != data.shape:
        raise FCDInputError(f"clusters: label grid {labels.shape} differs from the map's {data.shape}")
    n_clusters = len(clusters.clusters)
    row: dict[str, Any] = {
        "has_roi": roi is not None, "detected": None, "n_clusters": n_clusters, "fp_clusters": n_clusters,
        "peak_in_roi": None, "dice": None, "top_cluster": None, "cluster_overlaps": {},
        "peak_voxels": None, "peak_share_in_roi": None,
    }
    if label is not None:
        row["label"] = label
    top = clusters.clusters[0].to_json() if clusters.clusters else None
    maximum, minimum = float(data.max()), float(data.min())
    has_peak = maximum > minimum
    # an interpolated plateau's voxels differ by float rounding: "at the maximum" = within 1e-4 of the range
    at_peak = data >= maximum - PEAK_TOLERANCE * (maximum - minimum)
    n_at_peak = int(np.count_nonzero(at_peak)) if has_peak else None
    row["peak_voxels"] = n_at_peak
    if roi is None:
        row["top_cluster"] = top
        return row

    inside = roi_on_grid(roi, data.shape, affine, roi_affine, roi_name)
    hit_ids = set(np.unique(labels[inside]).tolist()) - {0}
    overlaps = {c.id: c.id in hit_ids for c in clusters.clusters}
    found = labels > 0
    both = int(np.count_nonzero(found & inside))
    peak_inside = int(np.count_nonzero(at_peak & inside)) if has_peak else 0
    row.update(
        detected=bool(hit_ids),
        fp_clusters=n_clusters - len(hit_ids),
        peak_in_roi=bool(has_peak and peak_inside > 0),
        peak_share_in_roi=peak_inside / n_at_peak if n_at_peak else None,
        dice=2.0 * both / float(np.count_nonzero(found) + np.count_nonzero(inside)),
        cluster_overlaps=overlaps,
    )
    if top is not None:
        top["overlaps_roi"] = overlaps[clusters.clusters[0].id]
    row["top_cluster"] = top
    return row


def _is_control(row: dict) -> bool:
    if "label" in row and row["label"] is not None:
        value = row["label"]
        return value in CONTROL_LABELS or (isinstance(value, str) and value.lower() == "control")
    return not row.get("has_roi", False)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def cohort_lesion_metrics(rows: Sequence[dict]) -> dict:
    """Cohort figures from :func:`subject_lesion_metrics` rows (rules in the module docstring).

    A row's ``label`` (``"control"``/``0`` or ``"fcd"``/``1``) says whether it is a control;
    a row without ``label`` is a patient when it has an ROI and a control otherwise.

    Example:
        >>> rows = [{"has_roi": True, "detected": True, "n_clusters": 2, "fp_clusters": 1,
        ...          "peak_in_roi": True, "dice": 0.5, "label": "fcd"},
        ...         {"has_roi": False, "detected": None, "n_clusters": 0, "fp_clusters": 0,
        ...          "peak_in_roi": None, "dice": None, "label": "control"}]
        >>> figures = cohort_lesion_metrics(rows)
        >>> figures["detection_rate"], figures["specificity"], figures["fp_per_patient"]
        (1.0, 1.0, 1.0)
    """
    controls = [r for r in rows if _is_control(r)]
    patients = [r for r in rows if not _is_control(r)]
    with_roi = [r for r in patients if r.get("has_roi")]
    dice = [float(r["dice"]) for r in with_roi if r.get("dice") is not None]
    plateau = [float(r["peak_voxels"]) for r in with_roi if r.get("peak_voxels") is not None]
    shares = [float(r["peak_share_in_roi"]) for r in with_roi if r.get("peak_share_in_roi") is not None]
    clusters = sum(int(r["n_clusters"]) for r in (*with_roi, *controls))
    touching = sum(int(r["n_clusters"]) - int(r["fp_clusters"]) for r in with_roi)
    return {
        "n_patients": len(with_roi),
        "n_patients_without_roi": len(patients) - len(with_roi),
        "n_controls": len(controls),
        "detection_rate": _mean([1.0 if r["detected"] else 0.0 for r in with_roi]),
        "specificity": _mean([1.0 if int(r["n_clusters"]) == 0 else 0.0 for r in controls]),
        "fp_per_patient": _mean([float(r["fp_clusters"]) for r in with_roi]),
        "fp_per_control": _mean([float(r["n_clusters"]) for r in controls]),
        "cluster_ppv": touching / clusters if clusters else None,
        "peak_in_roi_rate": _mean([1.0 if r["peak_in_roi"] else 0.0 for r in with_roi]),
        "dice_mean": _mean(dice),
        "dice_sd": float(np.std(dice, ddof=1)) if len(dice) >= 2 else None,
        "peak_voxels_median": float(np.median(plateau)) if plateau else None,
        "peak_share_in_roi_median": float(np.median(shares)) if shares else None,
    }
