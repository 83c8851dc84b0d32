"""``fcd demo`` end to end on a tiny cohort: every output written, the summary recomputable, resume."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from FCDTrainLib.experiment.demo import DemoOptions, run_demo

pytestmark = pytest.mark.slow  # trains a real network


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    options = DemoOptions(subjects=10, training={"max_epochs": 1, "shape": [40, 48, 40]})
    return out, options, run_demo(out, options)


def test_demo_writes_every_output(demo_run):
    out, _, summary = demo_run
    assert (out / "model.fcdbundle" / "bundle.json").is_file()
    assert (out / "cohort" / "participants.tsv").is_file()
    held_out = json.loads((out / "run" / "folds.json").read_text(encoding="utf-8"))[0]["test"]
    assert sorted(r["subject"] for r in summary["per_subject"]) == sorted(held_out) and len(held_out) == 2
    for subject in held_out:
        folder = out / "subjects" / subject
        heatmap = nib.load(folder / "heatmap.nii.gz")
        flair = next((out / "cohort" / subject / "anat").glob("*_FLAIR.nii.gz"))
        assert heatmap.shape == nib.load(flair).shape  # on the scan's own grid
        assert np.allclose(heatmap.affine, nib.load(flair).affine, atol=1e-5)
        assert (folder / "overlay.png").stat().st_size > 1000
        assert json.loads((folder / "result.json").read_text(encoding="utf-8"))["prediction"] in ("fcd", "control")
    stored = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert stored["held_out"] == summary["held_out"]
    assert stored["seed"] == 0 and stored["config"]["shape"] == [40, 48, 40]
    assert stored["environment"]["torch"] and "blas" in stored["environment"]


def test_demo_summary_matches_its_rows(demo_run):
    _, _, summary = demo_run
    rows = summary["per_subject"]
    correct = [(r["prediction"] == "fcd") == bool(r["label"]) for r in rows]
    assert summary["held_out"]["accuracy"] == pytest.approx(np.mean(correct))
    patients = [r for r in rows if r["label"] == 1]
    controls = [r for r in rows if r["label"] == 0]
    # ROC-AUC by pair counting (Mann-Whitney), independent of scikit-learn
    pairs = [(p["probability"] > c["probability"]) + 0.5 * (p["probability"] == c["probability"])
             for p in patients for c in controls]
    assert summary["held_out"]["roc_auc"] == pytest.approx(np.mean(pairs))
    scores = [r["heat_score"] for r in patients if r["heat_score"] is not None]
    if scores:
        assert summary["held_out"]["heat_score_mean"] == pytest.approx(np.mean(scores))


def test_demo_resumes_without_redoing_work(demo_run):
    out, options, summary = demo_run
    stamps = {p: p.stat().st_mtime_ns for p in (out / "subjects").rglob("*") if p.is_file()}
    again = run_demo(out, options)
    assert again["held_out"] == summary["held_out"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
