"""``fcd experiment`` tables: mean/std and paired t-tests against an independent scipy computation.

The grid's runs are built as finished runs with known per-fold metrics (the config a
real run would record, plus fold-K/metrics.json and summary.json), so the experiment
command skips training and only collects, tests and reports.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.checksums import file_sha256
from FCDTrainLib.experiment.paper_comparison import find_weights, run_name
from FCDTrainLib.run_folder.run_config import RunConfig
from scipy import stats

FOLDS = 5
DEPTHS = (18, 50)
STRATEGIES = ("none", "medicalnet8", "medicalnet23")


def _fake_runs(tmp_path):
    rng = np.random.default_rng(42)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    for depth in DEPTHS:
        for name in (f"resnet_{depth}.pth", f"resnet_{depth}_23dataset.pth"):
            (weights_dir / name).write_bytes(f"fake {name}".encode())
    data = str(tmp_path / "cohort")
    truth = {}
    for depth in DEPTHS:
        for offset, strategy in enumerate(STRATEGIES):
            weights = None
            if strategy != "none":
                weights = weights_dir / (f"resnet_{depth}.pth" if strategy == "medicalnet8"
                                         else f"resnet_{depth}_23dataset.pth")
            config = RunConfig(data=data, depth=depth, pretrained=strategy, modality="flair", folds=FOLDS,
                               weights=str(weights) if weights else None,
                               weights_sha256=file_sha256(weights) if weights else None)
            run_dir = tmp_path / "exp" / "runs" / run_name(depth, strategy, "flair")
            acc = np.clip(0.65 + 0.05 * offset + rng.normal(0, 0.05, FOLDS), 0, 1)
            auc = np.clip(0.7 + 0.04 * offset + rng.normal(0, 0.05, FOLDS), 0, 1)
            heat = 1.2 + 0.6 * offset + rng.normal(0, 0.3, FOLDS)
            truth[(depth, strategy)] = {"accuracy": acc, "roc_auc": auc, "heat_score": heat}
            for fold in range(FOLDS):
                (run_dir / f"fold-{fold}").mkdir(parents=True)
                (run_dir / f"fold-{fold}" / "metrics.json").write_text(json.dumps(
                    {"accuracy": acc[fold], "roc_auc": auc[fold], "heat_score": heat[fold]}))
            (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
            (run_dir / "summary.json").write_text("{}")
    return data, weights_dir, truth


def test_experiment_table_matches_scipy_on_per_fold_numbers(tmp_path, capsys):
    data, weights_dir, truth = _fake_runs(tmp_path)
    out = tmp_path / "exp"
    code = main(["experiment", "--data", data, "--out", str(out), "--depths", *map(str, DEPTHS),
                 "--pretrained", *STRATEGIES, "--modalities", "flair", "--weights-dir", str(weights_dir),
                 "--folds", str(FOLDS), "--no-progress"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["summary"]) == len(DEPTHS) * len(STRATEGIES)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(e["event"] == "run_skipped" for e in events) == 6  # nothing retrained

    with (out / "results.csv").open() as handle:
        rows = {(int(r["depth"]), r["pretrained"]): r for r in csv.DictReader(handle)}
    assert set(rows) == set(truth)
    for (depth, strategy), metrics in truth.items():
        row = rows[(depth, strategy)]
        assert int(row["n_folds"]) == FOLDS
        for metric, values in metrics.items():
            assert float(row[f"{metric}_mean"]) == pytest.approx(np.mean(values), abs=1e-12)
            assert float(row[f"{metric}_std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        if strategy == "none":
            assert row["p_accuracy"] == "" and row["p_heat_score"] == ""
            continue
        base = truth[(depth, "none")]
        for metric in ("accuracy", "heat_score", "roc_auc"):
            expected = stats.ttest_rel(metrics[metric], base[metric]).pvalue
            assert float(row[f"p_{metric}"]) == pytest.approx(expected, rel=1e-9)

    markdown = (out / "results.md").read_text(encoding="utf-8")
    header = "| Model | TL | Modality | Accuracy (± std) | ROC (± std) | Heat-Score (± std) "
    assert header in markdown
    r50 = truth[(50, "medicalnet23")]
    expected_cell = f"{np.mean(r50['accuracy']):.3f} ± {np.std(r50['accuracy'], ddof=1):.3f}"
    line = next(li for li in markdown.splitlines() if li.startswith("| resnet50 | medicalnet23 | flair"))
    assert expected_cell in line
    lines = [li for li in markdown.splitlines() if li.startswith("| resnet")]
    assert lines[0].startswith("| resnet50 | none") and lines[-1].startswith("| resnet18 | medicalnet23")

    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(out / "results.png").shape[0] > 100
    with (out / "results_folds.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(truth) * FOLDS


def test_missing_medicalnet_file_in_weights_dir_is_named(tmp_path, capsys):
    (tmp_path / "weights").mkdir()
    with pytest.raises(FCDInputError, match="resnet_34_23dataset.pth"):
        find_weights(tmp_path / "weights", "medicalnet23", 34)
    code = main(["experiment", "--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--depths", "18",
                 "--pretrained", "medicalnet8", "--modalities", "flair"])
    assert code == 2
    assert "needs --weights-dir holding resnet_18.pth" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()  # nothing written
