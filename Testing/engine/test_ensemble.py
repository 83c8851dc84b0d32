"""Fold ensembles: ``fcd detect --model RUN`` (or several bundles), the mean maps, their spread, and bad runs.

Members are real lesion models whose maps are known constants (``Testing.builders.lesion_models``),
so the ensemble's mean, its uncertainty (population SD across folds) and each cluster's
``folds_found`` are known in advance.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.cohort.runner import run_cohort
from FCDDetectLib.detection.ensemble_detect import detect_any, load_models
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.ensemble import (
    ENSEMBLE_CLUSTER_THRESHOLD,
    OPERATING_LEVEL,
    ModelEnsemble,
    find_members,
)
from FCDDetectLib.outputs.report_pages import decision_lines

from Testing.builders.lesion_models import head_scan, lesion_bundle

PRIORS = (0.9, 0.7, 0.2)  # folds 0, 1, 2; a fourth fold announced by config.json is missing
SD = float(np.std(PRIORS))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    (root / "config.json").write_text(json.dumps({"folds": 4, "supervision": "lesion"}))
    for fold, prior in enumerate(PRIORS):
        lesion_bundle(root / f"fold-{fold}" / "model.fcdbundle", prior, seed=fold, name=f"r-lesion-fold{fold}")
    (root / "fold-3").mkdir()  # a fold that has not finished: no bundle
    return root


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return head_scan(tmp_path_factory.mktemp("scan"))


def test_members_and_missing_folds_of_a_run(run):
    members, missing = find_members([run])
    assert [label for label, _ in members] == ["fold-0", "fold-1", "fold-2"] and missing == ["fold-3"]
    with pytest.raises(FCDInputError, match="fold-3.*--require-all-folds"):
        find_members([run], require_all=True)


def test_the_ensemble_map_is_the_folds_mean_and_its_uncertainty_their_spread(run, scan):
    image, roi, shape = scan
    ensemble = load_models([run], device="cpu")
    assert isinstance(ensemble, ModelEnsemble) and ensemble.missing == ["fold-3"]
    result = detect_any(ensemble, [image], roi=roi, device="cpu")
    head = result.lesion_map > 0
    assert head.sum() > 1000
    np.testing.assert_allclose(result.lesion_map[head], np.mean(PRIORS), atol=1e-4)
    np.testing.assert_allclose(result.uncertainty[head], SD, atol=1e-4)
    assert float(result.uncertainty[~head].max()) == 0.0
    # mean 0.6 >= 0.5: one cluster (the head); folds 0 (0.9) and 1 (0.7) have their own there, fold 2 (0.2) not
    top = result.lesion_clusters.clusters[0]
    assert top.folds_found == 2 and top.mean_uncertainty == pytest.approx(SD, abs=1e-4)
    members = result.ensemble["members"]
    assert [m["member"] for m in members] == ["fold-0", "fold-1", "fold-2"]
    assert result.probability == pytest.approx(np.mean([m["probability"] for m in members]))
    assert result.ensemble["fold_votes"] == 2 and result.ensemble["missing_folds"] == ["fold-3"]
    assert any("fold-3" in w for w in result.warnings)


def test_calibrated_folds_are_averaged_on_their_operating_scales(tmp_path, scan):
    image, roi, _ = scan
    thresholds = (0.88, 0.99, 0.6)  # fold 0 (map 0.9) is above its own threshold, folds 1 (0.7) and 2 (0.2) not
    root = tmp_path / "run"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"folds": 3, "supervision": "lesion"}))
    for fold, (prior, threshold) in enumerate(zip(PRIORS, thresholds, strict=True)):
        lesion_bundle(root / f"fold-{fold}" / "model.fcdbundle", prior, seed=fold, name=f"r-lesion-fold{fold}",
                      operating_point={"cluster_threshold": threshold, "min_cluster_mm3": 50.0})
    ensemble = load_models([root], device="cpu")
    result = detect_any(ensemble, [image], roi=roi, device="cpu")
    scaled = [0.5 + 0.5 * (0.9 - 0.88) / 0.12, 0.5 * 0.7 / 0.99, 0.5 * 0.2 / 0.6]
    # their mean (0.368) is below OPERATING_LEVEL and the cut before (0.4: no cluster), above the ensemble's cut
    assert ENSEMBLE_CLUSTER_THRESHOLD < np.mean(scaled) < 0.4 < OPERATING_LEVEL
    head = result.lesion_map > 0
    np.testing.assert_allclose(result.lesion_map[head], np.mean(scaled), atol=1e-4)
    np.testing.assert_allclose(result.uncertainty[head], np.std(scaled), atol=1e-4)
    assert result.lesion_clusters.threshold == ENSEMBLE_CLUSTER_THRESHOLD == 0.3
    assert result.ensemble["operating_point"]["lesion_map_scale"] == "operating"
    assert len(result.lesion_clusters.clusters) == 1 and result.lesion_clusters.clusters[0].folds_found == 1
    report = " ".join(text for _, text in decision_lines(result))
    assert "Operating point: threshold 0.3," in report and "rescaled so that its fold's threshold is 0.5" in report
    # the plain mean (0.6) at the members' mean threshold (0.82), the rule before these: no cluster
    plain = detect_any(ensemble, [image], roi=roi, device="cpu", cluster_threshold=float(np.mean(thresholds)))
    np.testing.assert_allclose(plain.lesion_map[head], np.mean(PRIORS), atol=1e-4)
    assert plain.lesion_clusters.clusters == [] and plain.ensemble["operating_point"]["lesion_map_scale"] == "plain"


def test_fcd_detect_with_a_run_folder_writes_the_uncertainty(run, scan, tmp_path, capsys):
    image, roi, shape = scan
    out = tmp_path / "out"
    assert main(["detect", "--model", str(run), "--image", str(image), "--roi", str(roi), "--device", "cpu",
                 "--out", str(out), "--report"]) == 0
    captured = capsys.readouterr()
    assert "fold-3" in captured.err and "warning:" in captured.err
    summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert summary["ensemble"]["n_members"] == 3 and summary["decision_source"] == "lesion_evidence"
    saved = nib.load(out / "uncertainty.nii.gz")
    assert saved.shape == shape and float(np.asarray(saved.dataobj).max()) == pytest.approx(SD, abs=1e-4)
    listing = json.loads((out / "lesion_clusters.json").read_text(encoding="utf-8"))
    assert listing["clusters"][0]["folds_found"] == 2
    assert (out / "report.pdf").is_file()


def test_require_all_folds_refuses_an_incomplete_run_before_writing(run, scan, tmp_path, capsys):
    image, _, _ = scan
    out = tmp_path / "out"
    assert main(["detect", "--model", str(run), "--require-all-folds", "--image", str(image), "--device", "cpu",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "fold-3" in err[0] and not out.exists()


@pytest.mark.parametrize("change, words", [
    ({"target_shape": [24, 28, 20]}, "model grid shape"),
    ({"target_spacing": [3.0, 4.0, 4.0]}, "model grid spacing"),
    ({"modalities": ["t1"]}, "modalities"),
    ({"head": "none"}, "head"),
])
def test_a_run_whose_folds_disagree_is_one_error_naming_the_fold(run, scan, tmp_path, capsys, change, words):
    bad = tmp_path / "bad-run"
    shutil.copytree(run, bad)
    meta_path = bad / "fold-1" / "model.fcdbundle" / "bundle.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update(change)
    meta_path.write_text(json.dumps(meta))
    image, _, _ = scan
    out = tmp_path / "out"
    assert main(["detect", "--model", str(bad), "--image", str(image), "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fold-1:") and words in err[0]
    assert not out.exists()


def test_several_bundles_form_an_ensemble_and_one_bundle_detects_as_before(run, scan, tmp_path, capsys):
    image, _, _ = scan
    bundles = [str(run / f"fold-{k}" / "model.fcdbundle") for k in (0, 2)]
    out = tmp_path / "pair"
    assert main(["detect", "--model", bundles[0], "--model", bundles[1], "--image", str(image), "--device", "cpu",
                 "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["ensemble"]["n_members"] == 2
    single = tmp_path / "single"
    assert main(["detect", "--model", bundles[0], "--image", str(image), "--device", "cpu", "--out", str(single)]) == 0
    summary = json.loads((single / "result.json").read_text(encoding="utf-8"))
    assert "ensemble" not in summary and not (single / "uncertainty.nii.gz").exists()
    capsys.readouterr()


def test_a_member_link_leaving_the_run_folder_is_refused(run, tmp_path):
    evil = tmp_path / "evil-run"
    shutil.copytree(run, evil)
    outside = tmp_path / "elsewhere.fcdbundle"
    shutil.move(str(evil / "fold-0" / "model.fcdbundle"), outside)
    (evil / "fold-0" / "model.fcdbundle").symlink_to(outside, target_is_directory=True)
    with pytest.raises(FCDInputError, match="outside the run folder"):
        find_members([evil])


def test_cohort_mode_loads_the_folds_once_and_writes_each_subjects_uncertainty(run, scan, tmp_path):
    image, _, _ = scan
    images = tmp_path / "images"
    images.mkdir()
    for name in ("sub-a", "sub-b"):
        shutil.copy(image, images / f"{name}.nii.gz")
    subjects = discover_subjects(images, ["flair"])
    rows = run_cohort([run], subjects, tmp_path / "cohort", device="cpu")
    assert [row["status"] for row in rows] == ["done", "done"]
    assert all(row["n_folds"] == 3 and row["decision_source"] == "lesion_evidence" for row in rows)
    for subject in ("sub-a", "sub-b"):
        assert (tmp_path / "cohort" / subject / "uncertainty.nii.gz").is_file()
    again = run_cohort([run], subjects, tmp_path / "cohort", device="cpu")  # resume: same ensemble name
    assert [row["status"] for row in again] == ["resumed", "resumed"]


def test_a_ray_worker_loads_the_folds_once_and_detects_like_the_local_runner(run, scan, tmp_path):
    # CohortWorker is the Ray actor's state; here it runs in-process (Ray itself: test_ray_cohort.py)
    from FCDDetectLib.cohort.ray_runner import CohortWorker
    from FCDDetectLib.detection.options import DetectOptions

    image, _, _ = scan
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(image, images / "sub-a.nii.gz")
    subject = discover_subjects(images, ["flair"])[0]
    worker = CohortWorker(str(run), "cpu", 1)
    assert isinstance(worker.bundle, ModelEnsemble) and len(worker.bundle.members) == 3
    row = worker.detect(subject, str(tmp_path / "ray"), True, DetectOptions(device="cpu").to_dict())
    local = run_cohort([run], [subject], tmp_path / "local", device="cpu")[0]
    assert row["status"] == "done" and row["n_folds"] == 3
    for key in ("probability", "prediction", "lesion_evidence", "fold_votes"):
        assert row[key] == local[key], key


def test_members_calibrated_with_different_evidence_scores_give_no_mixed_threshold():
    from FCDDetectLib.choices import LESION_EVIDENCE_SCORES
    from FCDDetectLib.networks.ensemble import ensemble_metadata

    from Testing.builders.lesion_models import lesion_meta

    same = [lesion_meta(lesion_evidence={"score": LESION_EVIDENCE_SCORES[0], "threshold": t}) for t in (10.0, 30.0, 20.0)]
    assert ensemble_metadata(same, ["fold-0", "fold-1", "fold-2"]).lesion_evidence["threshold"] == 20.0
    mixed = [*same[:2], lesion_meta(lesion_evidence={"score": LESION_EVIDENCE_SCORES[1], "threshold": 20.0})]
    # a threshold holds for its own score only: no median across definitions (any cluster decides)
    assert ensemble_metadata(mixed, ["fold-0", "fold-1", "fold-2"]).lesion_evidence is None


def test_the_ensemble_states_mirroring_only_when_every_member_mirrors_alike():
    from FCDDetectLib.networks.ensemble import ensemble_metadata

    from Testing.builders.lesion_models import lesion_meta

    labels = ["fold-0", "fold-1"]
    mirrored = [lesion_meta(lesion_mirror_axes=[0]), lesion_meta(lesion_mirror_axes=[0])]
    assert ensemble_metadata(mirrored, labels).lesion_mirror_axes == [0]
    mixed = [lesion_meta(lesion_mirror_axes=[0]), lesion_meta()]  # an older, one-pass fold beside a new one
    assert ensemble_metadata(mixed, labels).lesion_mirror_axes is None
    assert ensemble_metadata([lesion_meta(), lesion_meta()], labels).lesion_mirror_axes is None
