"""A lesion model's operating point and lesion-evidence threshold, chosen on validation maps."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics
from FCDTrainLib.evaluation.calibration import ValidationMap, choose_operating_point
from FCDTrainLib.evaluation.fold_eval import summarise_evidence

SHAPE = (30, 30, 30)


def _patient(peak: float, corner: int = 5, size: int = 6) -> ValidationMap:
    lesion = np.zeros(SHAPE, np.float32)
    lesion[corner:corner + size, corner:corner + size, corner:corner + size] = peak
    roi = np.zeros(SHAPE, bool)
    roi[corner:corner + size, corner:corner + size, corner:corner + size] = True
    return ValidationMap("p", 1, lesion, np.eye(4), roi)


def _control(specks: list[tuple[float, int]]) -> ValidationMap:
    """Specks of (value, edge in voxels) spread along the diagonal."""
    lesion = np.zeros(SHAPE, np.float32)
    for k, (value, edge) in enumerate(specks):
        start = 2 + 7 * k
        lesion[start:start + edge, start:start + edge, start:start + edge] = value
    return ValidationMap("c", 0, lesion, np.eye(4), None)


def test_the_operating_point_meets_the_fp_target_with_the_best_detection():
    # Patients' lesions reach 0.85 over 216 mm3; the controls hold specks: 0.55 over 343 mm3
    # (larger than a lesion) in four of five, 0.75 over 27 mm3 in one. At the engine's 0.5 / 50 mm3
    # four controls in five have a cluster (0.8 per control); from 0.6 the large specks are gone,
    # and at 50 mm3 the small one too: no FP, every lesion found. Ties go to the lowest setting.
    maps = [_patient(0.85) for _ in range(4)] + [_control([(0.55, 7)]) for _ in range(4)] + [_control([(0.75, 3)])]
    point, scores = choose_operating_point(maps, 0.2)
    assert point["target_met"] and point["validation"]["detection_rate"] == 1.0
    assert point["validation"]["fp_per_control"] <= 0.2
    assert point["cluster_threshold"] == pytest.approx(0.6) and point["min_cluster_mm3"] == 50.0
    # The evidence counts every component at the threshold, the 27 mm3 speck under the size cut too.
    assert scores[:4] == [pytest.approx(0.85 * 216)] * 4 and scores[4:] == [0.0] * 4 + [pytest.approx(0.75 * 27)]
    loose, _ = choose_operating_point(maps, 1.0)  # a looser target: the lowest threshold with full detection
    assert loose["cluster_threshold"] == pytest.approx(0.3)


def test_an_unreachable_target_takes_the_fewest_false_positives_and_says_so():
    # every control has a blob as strong as the lesions (1.0, above the highest threshold, 0.99)
    # and larger (1000 mm3) than any size can remove
    maps = [_patient(1.0)] * 3 + [_control([(1.0, 10)])] * 3
    point, _ = choose_operating_point(maps, 0.2)
    assert not point["target_met"] and point["validation"]["fp_per_control"] == 1.0
    assert point["validation"]["detection_rate"] == 1.0
    # a speck as large as the lesions: the target is met only by dropping everything, and it says so
    maps = [_patient(1.0)] * 3 + [_control([(1.0, 6)])] * 3
    point, _ = choose_operating_point(maps, 0.2)
    assert point["target_met"] and point["validation"]["detection_rate"] == 0.0


def test_cluster_ppv_counts_clusters_touching_a_lesion_over_all_clusters():
    rows = [{"label": 1, "has_roi": True, "detected": True, "n_clusters": 2, "fp_clusters": 1, "peak_in_roi": True,
             "dice": 0.5},
            {"label": 0, "has_roi": False, "detected": None, "n_clusters": 1, "fp_clusters": 1, "peak_in_roi": None,
             "dice": None}]
    assert cohort_lesion_metrics(rows)["cluster_ppv"] == pytest.approx(1 / 3)
    rows = [{**row, "n_clusters": 0, "fp_clusters": 0} for row in rows]
    assert cohort_lesion_metrics(rows)["cluster_ppv"] is None


def test_the_fold_reports_the_evidence_auc_beside_the_classifier():
    rows = [{"label": 1, "lesion_evidence": 300.0, "lesion_evidence_prediction": 1},
            {"label": 1, "lesion_evidence": 0.0, "lesion_evidence_prediction": 0},
            {"label": 0, "lesion_evidence": 0.0, "lesion_evidence_prediction": 0},
            {"label": 0, "lesion_evidence": 50.0, "lesion_evidence_prediction": 0}]
    figures = summarise_evidence(rows)
    assert figures["lesion_evidence_roc_auc"] == pytest.approx(0.625) and figures["lesion_evidence_accuracy"] == 0.75
    assert summarise_evidence([{"label": 1, "lesion_evidence": None}])["decision_source"] == "classifier"


def test_a_model_sure_of_its_false_positives_is_cut_above_them():
    # Controls' blobs at 0.97 over 1000 mm3, lesions at 0.995: up to 0.95 every control has a
    # cluster; 0.98 drops them all and keeps every lesion (the first threshold that does).
    maps = [_patient(0.995)] * 3 + [_control([(0.97, 10)])] * 3
    point, _ = choose_operating_point(maps, 0.2)
    assert point["target_met"] and point["cluster_threshold"] == pytest.approx(0.98)
    assert point["validation"]["detection_rate"] == 1.0 and point["validation"]["fp_per_control"] == 0.0
