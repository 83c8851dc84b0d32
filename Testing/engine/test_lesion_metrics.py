"""Subject and cohort lesion-level figures, checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import find_clusters
from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics, subject_lesion_metrics

SHAPE = (20, 20, 20)


def _map() -> np.ndarray:
    heat = np.zeros(SHAPE, np.float32)
    heat[2:6, 2:6, 2:6] = 0.7          # 64 voxels: the lesion cluster
    heat[12:15, 12:15, 12:15] = 0.8    # 27 voxels: a false positive
    heat[13, 13, 13] = 0.9             # map maximum, outside the ROI
    return heat


def _roi() -> np.ndarray:
    roi = np.zeros(SHAPE, bool)
    roi[4:8, 4:8, 4:8] = True          # overlaps the first cluster by 2*2*2 = 8 voxels
    return roi


def test_patient_row_by_hand():
    heat = _map()
    clusters = find_clusters(heat, np.eye(4), min_size_mm3=0.0)
    row = subject_lesion_metrics(heat, np.eye(4), clusters, _roi(), label="fcd")
    assert row["has_roi"] and row["detected"] is True
    assert row["n_clusters"] == 2 and row["fp_clusters"] == 1
    assert row["peak_in_roi"] is False
    assert row["dice"] == pytest.approx(2 * 8 / (64 + 27 + 64))
    assert row["top_cluster"]["voxels"] == 27 and row["top_cluster"]["overlaps_roi"] is False
    assert row["cluster_overlaps"] == {1: False, 2: True}


def test_peak_in_roi_and_missed_lesion():
    heat = _map()
    heat[5, 5, 5] = 1.0
    clusters = find_clusters(heat, np.eye(4), min_size_mm3=0.0)
    assert subject_lesion_metrics(heat, np.eye(4), clusters, _roi())["peak_in_roi"] is True
    roi = np.zeros(SHAPE, bool)
    roi[17:19, 1:3, 17:19] = True
    missed = subject_lesion_metrics(heat, np.eye(4), clusters, roi)
    assert missed["detected"] is False and missed["fp_clusters"] == 2 and missed["dice"] == 0.0
    plateau = np.zeros(SHAPE, np.float32)
    plateau[0:6, 0:6, 0:6] = 1.0  # a CAM-like plateau at the maximum, starting outside the ROI
    row = subject_lesion_metrics(plateau, np.eye(4), find_clusters(plateau, np.eye(4)), _roi())
    assert row["peak_in_roi"] is True
    # ... but the plateau is reported: 6^3 voxels at the maximum, 2^3 of them in the ROI
    assert row["peak_voxels"] == 216 and row["peak_share_in_roi"] == pytest.approx(8 / 216)
    flat = np.zeros(SHAPE, np.float32)
    row = subject_lesion_metrics(flat, np.eye(4), find_clusters(flat, np.eye(4)), _roi())
    assert row["peak_in_roi"] is False and row["detected"] is False and row["top_cluster"] is None
    assert row["peak_voxels"] is None and row["peak_share_in_roi"] is None


def test_no_roi_is_reported_not_an_error():
    heat = _map()
    row = subject_lesion_metrics(heat, np.eye(4), find_clusters(heat, np.eye(4), min_size_mm3=0.0), None)
    assert row["has_roi"] is False
    assert row["detected"] is None and row["peak_in_roi"] is None and row["dice"] is None
    assert row["n_clusters"] == 2 and row["top_cluster"]["id"] == 1


def test_roi_on_another_grid_is_resampled_and_outside_is_an_error():
    heat = _map()
    clusters = find_clusters(heat, np.eye(4), min_size_mm3=0.0)
    # the same ROI at 2 mm: voxels 2..3 of a 2 mm grid cover map voxels 4..7
    coarse = np.zeros((10, 10, 10), bool)
    coarse[2:4, 2:4, 2:4] = True
    affine2 = np.diag([2.0, 2.0, 2.0, 1.0])
    affine2[:3, 3] = 0.5  # 2 mm voxel k spans map voxels 2k .. 2k+1
    row = subject_lesion_metrics(heat, np.eye(4), clusters, Image(coarse, affine2))
    assert row["detected"] is True and row["dice"] == pytest.approx(2 * 8 / (91 + 64))
    far = np.eye(4)
    far[:3, 3] = 500.0
    with pytest.raises(FCDInputError, match="does not overlap"):
        subject_lesion_metrics(heat, np.eye(4), clusters, _roi(), roi_affine=far, roi_name="sub-01_roi.nii.gz")
    with pytest.raises(FCDInputError, match="empty"):
        subject_lesion_metrics(heat, np.eye(4), clusters, np.zeros(SHAPE, bool))
    with pytest.raises(FCDInputError, match="differs"):
        subject_lesion_metrics(heat, np.eye(4), clusters, np.ones((4, 4, 4), bool))


def test_cohort_by_hand():
    def row(label, has_roi, detected, n, fp, peak, dice):
        return {"label": label, "has_roi": has_roi, "detected": detected, "n_clusters": n,
                "fp_clusters": fp, "peak_in_roi": peak, "dice": dice}

    rows = [
        row("fcd", True, True, 2, 1, True, 0.6),
        row("fcd", True, False, 1, 1, False, 0.0),
        row("fcd", True, True, 1, 0, False, 0.3),
        row("fcd", False, None, 3, 3, None, None),     # patient without ROI: reported only
        row("control", False, None, 0, 0, None, None),
        row("control", False, None, 2, 2, None, None),
        row(0, False, None, 0, 0, None, None),
        row("control", False, None, 0, 0, None, None),
    ]
    figures = cohort_lesion_metrics(rows)
    assert figures["n_patients"] == 3 and figures["n_patients_without_roi"] == 1 and figures["n_controls"] == 4
    assert figures["detection_rate"] == pytest.approx(2 / 3)
    assert figures["specificity"] == pytest.approx(3 / 4)
    assert figures["fp_per_patient"] == pytest.approx(2 / 3)
    assert figures["fp_per_control"] == pytest.approx(2 / 4)
    assert figures["peak_in_roi_rate"] == pytest.approx(1 / 3)
    assert figures["dice_mean"] == pytest.approx(0.3)
    assert figures["dice_sd"] == pytest.approx(0.3)  # sample SD of (0.6, 0.0, 0.3)
    assert figures["peak_voxels_median"] is None  # rows without plateau sizes
    for r, (size, share) in zip(rows[:4], [(1, 1.0), (500, 0.02), (40, 0.5), (9, None)], strict=True):
        r["peak_voxels"], r["peak_share_in_roi"] = size, share
    figures = cohort_lesion_metrics(rows)  # medians over the 3 patients with ROI only
    assert figures["peak_voxels_median"] == 40.0 and figures["peak_share_in_roi_median"] == 0.5


def test_cohort_without_labels_and_empty_groups():
    figures = cohort_lesion_metrics([{"has_roi": False, "detected": None, "n_clusters": 0, "fp_clusters": 0,
                                      "peak_in_roi": None, "dice": None}])
    assert figures["n_controls"] == 1 and figures["specificity"] == 1.0
    assert figures["n_patients"] == 0 and figures["detection_rate"] is None and figures["dice_sd"] is None
    assert cohort_lesion_metrics([])["n_controls"] == 0
