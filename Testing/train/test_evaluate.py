"""``fcd evaluate``: a finished run's own test folds, and an external cohort (per fold + ensemble)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest
from FCDDetectLib.cli import main
from sklearn.metrics import accuracy_score, roc_auc_score

from Testing.builders.train_fixtures import shared_run, write_cohort

pytestmark = pytest.mark.slow  # trains a real network


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory.getbasetemp() / "shared-train")


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_evaluate_recomputes_the_runs_test_fold_metrics(run, tmp_path, capsys):
    _, out = run
    target = tmp_path / "eval"
    assert main(["evaluate", "--run", str(out), "--out", str(target), "--device", "cpu"]) == 0
    report = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out)["out"] == str(target)
    assert report["external"] is False
    for fold in (0, 1):
        trained = json.loads((out / f"fold-{fold}" / "metrics.json").read_text(encoding="utf-8"))
        again = report["folds"][str(fold)]
        assert again["accuracy"] == pytest.approx(trained["accuracy"])
        assert again["roc_auc"] == pytest.approx(trained["roc_auc"], abs=1e-6)
        # the run's own cluster settings, not the engine defaults
        assert (again["cluster_threshold"], again["min_cluster_mm3"]) == (
            trained["cluster_threshold"], trained["min_cluster_mm3"])
        if trained["heat_score"] is None:
            assert again["heat_score"] is None
        else:
            assert again["heat_score"] == pytest.approx(trained["heat_score"], rel=1e-4)
    rows = _rows(target / "predictions.csv")
    assert sorted(r["subject"] for r in rows) == [f"sub-{i:05d}" for i in range(1, 13)]
    accs = [report["folds"][k]["accuracy"] for k in ("0", "1")]
    assert report["folds_summary"]["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    # lesion-level figures per fold, consistent with the rows (every subject has clusters counted)
    for fold in ("0", "1"):
        fold_rows = [r for r in rows if r["fold"] == fold]
        assert all(r["n_clusters"] != "" for r in fold_rows)
        patients = [r for r in fold_rows if r["detected"] != ""]
        controls = [r for r in fold_rows if r["label"] == "0"]
        figures = report["folds"][fold]
        if patients:
            assert figures["lesion_detection_rate"] == pytest.approx(
                np.mean([r["detected"] == "True" for r in patients]))
        assert figures["lesion_specificity"] == pytest.approx(np.mean([r["n_clusters"] == "0" for r in controls]))
        assert figures["lesion_level"]["heatmap"]["n_controls"] == len(controls)
    assert "lesion_detection_rate" in report["folds_summary"]


def test_evaluate_on_an_external_cohort_reports_folds_and_ensemble(run, tmp_path, capsys):
    _, out = run
    external = write_cohort(tmp_path / "external", n_fcd=3, n_hc=3, seed=9)
    assert main(["evaluate", "--run", str(out), "--data", str(external), "--device", "cpu"]) == 0
    target = out / "evaluation-external"
    report = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    rows = _rows(target / "predictions.csv")
    per_fold = defaultdict(list)
    for row in rows:
        per_fold[row["fold"]].append(row)
    assert set(per_fold) == {"0", "1", "ensemble"} and all(len(v) == 6 for v in per_fold.values())
    probs = {}
    for fold in ("0", "1"):
        labels = [int(r["label"]) for r in per_fold[fold]]
        p = np.array([float(r["probability"]) for r in per_fold[fold]])
        probs[fold] = dict(zip([r["subject"] for r in per_fold[fold]], p, strict=True))
        assert report["folds"][fold]["accuracy"] == pytest.approx(accuracy_score(labels, p >= 0.5))
        assert report["folds"][fold]["roc_auc"] == pytest.approx(roc_auc_score(labels, p))
    ensemble = per_fold["ensemble"]
    mean_p = np.array([(probs["0"][r["subject"]] + probs["1"][r["subject"]]) / 2 for r in ensemble])
    assert [float(r["probability"]) for r in ensemble] == pytest.approx(mean_p.tolist())
    labels = [int(r["label"]) for r in ensemble]
    assert report["ensemble"]["accuracy"] == pytest.approx(accuracy_score(labels, mean_p >= 0.5))
    assert report["ensemble"]["roc_auc"] == pytest.approx(roc_auc_score(labels, mean_p))
    assert (out / "cache").is_dir()


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "config.json: not found" in err and len(err.strip().splitlines()) == 1


def test_evaluate_reads_grid_and_threshold_from_the_bundles(run, tmp_path, capsys):
    """A copy of the run whose config.json lies about the grid and whose bundles say threshold 0.9:
    evaluation uses the bundles' grid (it still works) and their threshold (ensemble included)."""
    import shutil

    from FCDTrainLib.run_folder.layout import RunLayout

    _, out = run
    copy = RunLayout(tmp_path / "copy")
    shutil.copytree(out, copy.root, ignore=shutil.ignore_patterns("cache", "evaluation*"))
    config = json.loads(copy.config.read_text(encoding="utf-8"))
    config["spacing"], config["shape"] = [9.0, 9.0, 9.0], [8, 8, 8]
    copy.config.write_text(json.dumps(config))
    for fold in (0, 1):
        meta_path = copy.bundle(fold) / "bundle.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["threshold"] = 0.9
        meta.pop("content_sha256"), meta.pop("weights_sha256")  # an edited bundle.json loads only unverified
        meta_path.write_text(json.dumps(meta))
    external = write_cohort(tmp_path / "external", n_fcd=3, n_hc=3, seed=9)
    assert main(["evaluate", "--run", str(copy.root), "--data", str(external), "--device", "cpu"]) == 0
    capsys.readouterr()
    report = json.loads((copy.evaluation("external") / "metrics.json").read_text(encoding="utf-8"))
    assert report["threshold"] == 0.9 and report["ensemble"]["threshold"] == 0.9
    ensemble = [r for r in _rows(copy.evaluation("external") / "predictions.csv") if r["fold"] == "ensemble"]
    assert all(int(r["prediction"]) == int(float(r["probability"]) >= 0.9) for r in ensemble)
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata
    from FCDTrainLib.training.input_cache import cache_key

    meta = read_bundle_metadata(copy.bundle(0))
    assert [p.name for p in copy.cache.iterdir()] == [cache_key(meta.target_spacing, meta.target_shape,
                                                                 meta.modalities)]
