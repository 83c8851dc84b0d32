"""A lesion model decides from its lesion evidence, at the operating point its bundle carries."""

from __future__ import annotations

import json

import pytest
from FCDDetectLib.choices import LESION_EVIDENCE_SCORES
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.maps.lesion_evidence import roc_auc, youden_threshold
from FCDDetectLib.networks.bundle_metadata import BundleMetadata, read_bundle_metadata
from FCDDetectLib.outputs.detection_files import write_detection

from Testing.builders.lesion_models import head_scan, lesion_bundle, lesion_meta

SCORE = LESION_EVIDENCE_SCORES[0]


def test_the_decision_follows_the_lesion_evidence_not_the_classifier(tmp_path):
    image, roi, _ = head_scan(tmp_path / "scan")
    sure = detect(lesion_bundle(tmp_path / "sure", 0.9), [image], roi=roi, device="cpu")
    empty = detect(lesion_bundle(tmp_path / "empty", 0.1), [image], roi=roi, device="cpu")
    # the map is 0.9 over the whole head: one cluster, the head; 0.1: none (engine threshold 0.5)
    assert sure.decision_source == empty.decision_source == "lesion_evidence"
    assert sure.lesion_evidence["score"] > 0 and sure.prediction == "fcd"
    assert empty.lesion_evidence["score"] == 0.0 and empty.prediction == "control"
    assert not sure.lesion_evidence["calibrated"] and sure.lesion_evidence["threshold"] == 0.0
    top = sure.lesion_clusters.clusters[0]
    assert sure.lesion_evidence["score"] == pytest.approx(top.peak * top.volume_mm3)
    for result in (sure, empty):
        assert result.classifier_prediction == ("fcd" if result.probability >= 0.5 else "control")
    summary = json.loads((write_detection(sure, tmp_path / "out") / "result.json").read_text(encoding="utf-8"))
    assert summary["decision_source"] == "lesion_evidence" and summary["lesion_evidence"]["definition"] == SCORE
    assert summary["classifier_prediction"] == sure.classifier_prediction


def test_a_calibrated_threshold_and_the_bundles_operating_point_are_used_and_can_be_overridden(tmp_path):
    image, roi, _ = head_scan(tmp_path / "scan")
    point = {"cluster_threshold": 0.8, "min_cluster_mm3": 100.0, "target_fp_per_control": 0.2, "target_met": True}
    high = {"score": SCORE, "threshold": 1e9, "validation_roc_auc": 0.9}
    bundle = lesion_bundle(tmp_path / "b", 0.7, operating_point=point, lesion_evidence=high)
    result = detect(bundle, [image], roi=roi, device="cpu")
    # 0.7 < the bundle's 0.8: no cluster at its operating point
    assert result.lesion_clusters.threshold == 0.8 and result.lesion_clusters.min_size_mm3 == 100.0
    assert result.lesion_clusters.clusters == [] and result.prediction == "control"
    assert result.lesion_json()["operating_point"]["cluster_threshold"] == 0.8
    overridden = detect(bundle, [image], roi=roi, device="cpu", cluster_threshold=0.5)
    assert overridden.lesion_clusters.threshold == 0.5 and overridden.lesion_clusters.min_size_mm3 == 100.0
    assert overridden.lesion_clusters.clusters and overridden.lesion_evidence["calibrated"]
    assert overridden.prediction == "control"  # a cluster, but its evidence is below the calibrated 1e9


@pytest.mark.parametrize("field, value", [
    ("operating_point", {"cluster_threshold": 1.5, "min_cluster_mm3": 50}),
    ("operating_point", {"min_cluster_mm3": 50}),
    ("operating_point", [0.5, 50]),
    ("lesion_evidence", {"score": "map_maximum", "threshold": 0.5}),
    ("lesion_evidence", {"score": SCORE, "threshold": -1}),
])
def test_bad_calibration_fields_are_refused_naming_the_field(tmp_path, field, value):
    data = lesion_meta().to_dict()
    data[field] = value
    folder = tmp_path / "bad.fcdbundle"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(FCDInputError, match=field):
        read_bundle_metadata(folder)


def test_a_bundle_without_calibration_loads_and_round_trips():
    meta = lesion_meta()
    assert meta.operating_point is None and meta.lesion_evidence is None
    full = lesion_meta(operating_point={"cluster_threshold": 0.6, "min_cluster_mm3": 200.0},
                       lesion_evidence={"score": SCORE, "threshold": 3.5})
    assert BundleMetadata.from_dict(full.to_dict()) == full


def test_youden_threshold_and_auc():
    assert youden_threshold([0, 0, 10, 200, 400], [0, 0, 0, 1, 1]) == 105.0
    assert youden_threshold([1, 2], [1, 1]) is None
    assert roc_auc([0, 0, 10, 200], [0, 1, 0, 1]) == pytest.approx(0.625)
