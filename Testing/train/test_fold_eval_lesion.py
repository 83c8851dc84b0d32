"""Training's evaluation reports the lesion-level figures beside the Heat-Score (fold_eval.detect_subjects)."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.networks.bundle import load_bundle
from FCDTrainLib.data.records import Subject
from FCDTrainLib.evaluation.fold_eval import detect_subjects, heat_scores, summarise_lesions

from Testing.builders.geometry_fixtures import write_nifti
from Testing.builders.planted_model import save_planted_bundle, train_planted_model

SPACING = 4.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    planted = train_planted_model()
    root = tmp_path_factory.mktemp("lesion-eval")
    bundle = load_bundle(save_planted_bundle(planted, root / "planted.fcdbundle", target_spacing=(SPACING,) * 3))
    affine = np.diag([SPACING] * 3 + [1.0])
    subjects = []
    for i, center in enumerate([(24, 16, 16), (8, 16, 24)]):
        image = write_nifti(root / f"p{i}.nii.gz", planted.make_volume(center, seed=40 + i), affine)
        roi = write_nifti(root / f"p{i}_roi.nii.gz", planted.blob_mask(center).astype(np.uint8), affine)
        subjects.append(Subject(f"sub-p{i}", 1, {"flair": image}, roi))
    subjects.append(Subject("sub-p-noroi", 1, {"flair": subjects[0].images["flair"]}, None))
    for i in range(2):
        image = write_nifti(root / f"c{i}.nii.gz", planted.make_volume(None, seed=60 + i), affine)
        subjects.append(Subject(f"sub-c{i}", 0, {"flair": image}, None))
    return bundle, subjects


def test_detect_subjects_match_detect_and_summarise(cohort):
    bundle, subjects = cohort
    found = detect_subjects(bundle, subjects, DetectOptions(method="gradcam", device="cpu", layer="layer4"))
    scores, rows = found.heat_scores, found.lesion_rows["heatmap"]
    assert found.warnings == []
    assert set(found.lesion_rows) == {"heatmap"}  # no lesion head, no lesion-map rows
    assert set(scores) == {"sub-p0", "sub-p1"}  # patients with an ROI only
    assert set(rows) == {s.subject_id for s in subjects}  # clusters of every subject
    single = detect(bundle, [subjects[0].images["flair"]], roi=subjects[0].roi, device="cpu")
    assert scores["sub-p0"] == pytest.approx(single.heat_score)
    assert rows["sub-p0"]["detected"] == single.lesion["detected"]
    figures = summarise_lesions(found, has_lesion_head=False)
    assert figures["lesion_level_map"] == "heatmap"
    cohort_figures = figures["lesion_level"]["heatmap"]
    assert cohort_figures["n_patients"] == 2 and cohort_figures["n_patients_without_roi"] == 1
    assert cohort_figures["n_controls"] == 2
    controls = [rows["sub-c0"], rows["sub-c1"]]
    assert figures["lesion_specificity"] == pytest.approx(np.mean([r["n_clusters"] == 0 for r in controls]))
    assert figures["lesion_detection_rate"] == pytest.approx(
        np.mean([rows["sub-p0"]["detected"], rows["sub-p1"]["detected"]]))
    # the planted model finds its blob
    assert figures["lesion_detection_rate"] == 1.0
    only_heat, _ = heat_scores(bundle, subjects, DetectOptions(device="cpu", layer="layer4"))
    assert only_heat == pytest.approx(scores)
