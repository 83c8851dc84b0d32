"""Experiment reports: ``results.csv``, ``results.md`` and ``results.png``.

The Markdown table follows the paper's Tables 1 and 2 (Model, TL, Modality, Accuracy
(± std), ROC (± std), Heat-Score) with the paired t-test p-values against no transfer
learning appended. The CSV holds the same numbers unrounded, plus the per-fold rows in
``results_folds.csv``. The plot shows the means with standard-deviation error bars.

Example:
    >>> from FCDTrainLib.evaluation.stats import summarise
    >>> rows = [dict(depth=18, pretrained="none", modality="t1", fold=f, accuracy=0.7, roc_auc=0.8,
    ...              heat_score=1.5) for f in range(2)]
    >>> print(markdown_table(summarise(rows)).splitlines()[2])
    | resnet18 | none | t1 | 0.700 ± 0.000 | 0.800 ± 0.000 | 1.500 ± 0.000 | – | – | 2 |
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.io.atomic_files import write_atomic

from FCDTrainLib.evaluation.stats import METRICS
from FCDTrainLib.run_folder.layout import ExperimentLayout

CSV_COLUMNS = ["model", "depth", "pretrained", "modality", "supervision", "n_folds",
               *[f"{m}_{s}" for m in METRICS for s in ("mean", "std")],
               *[f"p_{m}" for m in METRICS], *[f"p_supervision_{m}" for m in METRICS]]
FOLD_COLUMNS = ["model", "depth", "pretrained", "modality", "supervision", "fold", *METRICS, "run"]
PLOT_METRICS = ("accuracy", "roc_auc", "heat_score")


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _pm(mean: Any, std: Any) -> str:
    if mean is None:
        return "–"
    return f"{float(mean):.3f} ± {_fmt(std)}"


def _p(value: Any) -> str:
    if value is None:
        return "–"
    return f"{float(value):.3g}"


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """The paper-style table (one row per model x strategy x modality) as Markdown."""
    lines = [
        "| Model | TL | Modality | Accuracy (± std) | ROC (± std) | Heat-Score (± std) "
        "| p accuracy vs none | p Heat-Score vs none | folds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    supervised = [row for row in summary if row.get("supervision", "none") != "none"]
    for row in summary:
        lesion = "" if row.get("supervision", "none") == "none" else f" + {row['supervision']} head"
        lines.append(
            f"| resnet{row['depth']}{lesion} | {row['pretrained']} | {row['modality']} "
            f"| {_pm(row['accuracy_mean'], row['accuracy_std'])} | {_pm(row['roc_auc_mean'], row['roc_auc_std'])} "
            f"| {_pm(row['heat_score_mean'], row['heat_score_std'])} | {_p(row['p_accuracy'])} "
            f"| {_p(row['p_heat_score'])} | {row['n_folds']} |"
        )
    text = "\n".join(lines) + "\n"
    if not supervised:
        return text
    lines = [
        "",
        "Supervision axis (lesion-level figures of the primary map: the lesion map with a lesion head, "
        "else the Grad-CAM heatmap; p: paired t-test of lesion vs none supervision):",
        "",
        "| Model | TL | Modality | Supervision | Accuracy | Heat-Score | Detection rate | Lesion-map Heat-Score "
        "| p accuracy | p Heat-Score | p detection | folds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        lines.append(
            f"| resnet{row['depth']} | {row['pretrained']} | {row['modality']} | {row.get('supervision', 'none')} "
            f"| {_pm(row['accuracy_mean'], row['accuracy_std'])} | {_pm(row['heat_score_mean'], row['heat_score_std'])} "
            f"| {_pm(row['lesion_detection_rate_mean'], row['lesion_detection_rate_std'])} "
            f"| {_pm(row['lesion_map_heat_score_mean'], row['lesion_map_heat_score_std'])} "
            f"| {_p(row.get('p_supervision_accuracy'))} | {_p(row.get('p_supervision_heat_score'))} "
            f"| {_p(row.get('p_supervision_lesion_detection_rate'))} | {row['n_folds']} |"
        )
    return text + "\n".join(lines) + "\n"


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    from FCDDetectLib.io.atomic_files import csv_text

    return csv_text([{**row, "model": f"resnet{row['depth']}"} for row in rows], columns)


def write_plot(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of mean accuracy, ROC-AUC and Heat-Score with std error bars (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = [f"r{r['depth']}-{r['pretrained']}-{r['modality']}"
              + ("" if r.get("supervision", "none") == "none" else f"-{r['supervision']}") for r in summary]
    fig, axes = plt.subplots(1, 3, figsize=(max(8.0, 0.6 * len(labels) + 4), 4.2))
    titles = {"accuracy": "Accuracy", "roc_auc": "ROC-AUC", "heat_score": "Heat-Score"}
    for axis, metric in zip(axes, PLOT_METRICS, strict=True):
        means = [r[f"{metric}_mean"] if r[f"{metric}_mean"] is not None else float("nan") for r in summary]
        stds = [r[f"{metric}_std"] if r[f"{metric}_std"] is not None else 0.0 for r in summary]
        axis.bar(range(len(labels)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
        axis.set_xticks(range(len(labels)))
        axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        axis.set_title(titles[metric])
        if metric != "heat_score":
            axis.set_ylim(0, 1.05)
    fig.suptitle("Mean over folds (error bars: standard deviation)")
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def write_report(
    summary: Sequence[dict[str, Any]], fold_rows: Sequence[dict[str, Any]], out_dir: str | Path
) -> dict[str, Path]:
    """Write ``results.csv``, ``results_folds.csv``, ``results.md`` and ``results.png``."""
    from FCDDetectLib.io.atomic_files import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExperimentLayout(out).results
    write_text_atomic(paths["csv"], _csv_text(summary, CSV_COLUMNS))
    write_text_atomic(paths["folds_csv"], _csv_text(fold_rows, FOLD_COLUMNS))
    notes = (
        "\nMean ± sample standard deviation (ddof=1) over folds, on each fold's test part. "
        "p: two-sided paired t-test (scipy.stats.ttest_rel) over folds of the strategy against "
        "`none` with the same model and modality. Heat-Score: mean over the test-fold patients "
        "with an ROI, Grad-CAM heatmap on the reference image grid.\n"
    )
    write_text_atomic(paths["markdown"], "# Experiment results\n\n" + markdown_table(summary) + notes)
    if summary:
        write_plot(summary, paths["plot"])
    return paths
