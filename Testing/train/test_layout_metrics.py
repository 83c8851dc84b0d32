"""FCDTrainLib.run_folder.layout (every path of a run) and FCDTrainLib.evaluation.metrics (one set of figures, one sd)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from FCDTrainLib.evaluation.metrics import (
    SD_DDOF,
    classification_metrics,
    mean_std,
    summarise_folds,
    summarise_heat,
)
from FCDTrainLib.run_folder.layout import ExperimentLayout, RunLayout, fold_name

ROOT = Path(__file__).resolve().parents[2]


def test_run_and_experiment_paths():
    run = RunLayout("r")
    assert fold_name(3) == "fold-3"
    assert run.bundle(1) == Path("r/fold-1/model.fcdbundle") and run.metrics(0) == Path("r/fold-0/metrics.json")
    assert run.evaluation() == Path("r/evaluation") and run.evaluation("ext") == Path("r/evaluation-ext")
    experiment = ExperimentLayout("e")
    assert experiment.run("r18").bundle(0) == Path("e/runs/r18/fold-0/model.fcdbundle")
    assert experiment.results["markdown"] == Path("e/results.md")


def test_no_module_builds_a_fold_folder_name_itself():
    offenders = []
    for path in (ROOT / "FCDTrain" / "FCDTrainLib").rglob("*.py"):
        if path.name == "layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            if text is not None and text.startswith("fold-") and "K" not in text:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.JoinedStr) and any(
                    isinstance(v, ast.Constant) and str(v.value).endswith("fold-") for v in node.values):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_one_sd_everywhere():
    values = [0.6, 0.7, 0.8]
    assert SD_DDOF == 1
    assert mean_std(values)[1] == pytest.approx(np.std(values, ddof=1))
    heat = summarise_heat({"a": 2.0, "b": 1.0, "c": None, "d": float("nan")})
    assert heat == {"heat_score": 1.5, "heat_score_std": pytest.approx(np.std([2.0, 1.0], ddof=1)),
                    "heat_score_n": 2, "heat_score_above_1": 1}
    folds = summarise_folds({0: {"accuracy": 0.6}, 1: {"accuracy": 0.8}})
    assert folds["accuracy"] == {"mean": pytest.approx(0.7), "std": pytest.approx(np.std([0.6, 0.8], ddof=1)), "n": 2}


def test_classification_metrics_use_the_given_threshold():
    labels, probs = [0, 0, 1, 1], [0.1, 0.6, 0.7, 0.95]
    at_half = classification_metrics(labels, probs, 0.5)
    at_high = classification_metrics(labels, probs, 0.8)
    assert (at_half["accuracy"], at_half["specificity"], at_half["sensitivity"]) == (0.75, 0.5, 1.0)
    assert (at_high["accuracy"], at_high["specificity"], at_high["sensitivity"]) == (0.75, 1.0, 0.5)
    assert at_half["roc_auc"] == at_high["roc_auc"] == 1.0
    assert classification_metrics([1, 1], [0.2, 0.9], 0.5)["roc_auc"] is None


def test_demo_summary_uses_the_same_metrics():
    from FCDTrainLib.experiment.demo import summarise

    rows = [{"subject": "a", "label": 1, "probability": 0.9, "prediction": "fcd", "threshold": 0.5, "heat_score": 2.0},
            {"subject": "b", "label": 1, "probability": 0.4, "prediction": "control", "threshold": 0.5,
             "heat_score": 1.0},
            {"subject": "c", "label": 0, "probability": 0.2, "prediction": "control", "threshold": 0.5,
             "heat_score": None}]
    summary = summarise(rows)
    assert summary["accuracy"] == pytest.approx(2 / 3) and summary["roc_auc"] == 1.0
    assert summary["heat_score_std"] == pytest.approx(np.std([2.0, 1.0], ddof=1))  # the sample sd, as folds
