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


def _speck_and_focus_map():
    """A 1 mm map: a 0.9 focus of 64 mm3 and a 0.8 speck of 8 mm3 (a control's, or a small lesion's)."""
    import numpy as np

    data = np.zeros((20, 20, 20), np.float32)
    data[2:6, 2:6, 2:6] = 0.9
    data[12:14, 12:14, 12:14] = 0.8
    return data


def test_the_evidence_counts_every_component_at_the_threshold_the_older_score_only_the_kept_clusters():
    import numpy as np
    from FCDDetectLib.maps.clusters import find_clusters
    from FCDDetectLib.maps.lesion_evidence import evidence_score

    data = _speck_and_focus_map()
    big_cut = find_clusters(data, np.eye(4), 0.5, 100.0)  # the focus (64 mm3) and the speck are both under 100 mm3
    assert big_cut.clusters == []
    assert evidence_score(big_cut, LESION_EVIDENCE_SCORES[0]) == pytest.approx(0.9 * 64)
    assert evidence_score(big_cut, LESION_EVIDENCE_SCORES[1]) == 0.0
    kept = find_clusters(data, np.eye(4), 0.5, 50.0)  # the focus kept, the speck not
    assert evidence_score(kept, LESION_EVIDENCE_SCORES[0]) == evidence_score(kept, LESION_EVIDENCE_SCORES[1])
    with pytest.raises(ValueError, match="map_maximum"):
        evidence_score(kept, "map_maximum")


@pytest.mark.parametrize("seed", range(4))
def test_the_top_component_score_is_the_largest_peak_times_volume_over_every_component(seed):
    import numpy as np
    from FCDDetectLib.maps.clusters import find_clusters
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random((30, 26, 22)), 1.2).astype(np.float32)
    data = (data - data.min()) / (data.max() - data.min())
    affine = np.diag([1.5, 2.0, 1.0, 1.0])
    components, count = ndimage.label(data >= 0.6, structure=np.ones((3, 3, 3)))
    assert count > 1
    expected = max(float(data[components == k].max()) * int((components == k).sum()) * 3.0 for k in range(1, count + 1))
    for size in (0.0, 20.0, 200.0, 1e6):
        found = find_clusters(data, affine, 0.6, size)
        # exact up to float32 peaks against float64 products (relative 1e-6)
        assert found.top_component_peak_x_volume_mm3 == pytest.approx(expected, rel=1e-6)


def test_a_bundle_keeps_the_evidence_definition_it_was_calibrated_with(tmp_path):
    import numpy as np
    from FCDDetectLib.detection.decision import lesion_evidence_of
    from FCDDetectLib.maps.clusters import find_clusters

    clusters = find_clusters(_speck_and_focus_map(), np.eye(4), 0.5, 100.0)
    old = lesion_meta(lesion_evidence={"score": LESION_EVIDENCE_SCORES[1], "threshold": 10.0})
    new = lesion_meta(lesion_evidence={"score": LESION_EVIDENCE_SCORES[0], "threshold": 10.0})
    assert lesion_evidence_of(clusters, old)["definition"] == LESION_EVIDENCE_SCORES[1]
    assert not lesion_evidence_of(clusters, old)["fcd"]  # no kept cluster: score 0
    assert lesion_evidence_of(clusters, new)["fcd"]  # the 64 mm3 focus: 57.6 > 10
