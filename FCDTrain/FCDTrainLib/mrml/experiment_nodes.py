"""Training results as MRML nodes: a table node and a plot (chart + series) per result.

- :func:`table_from_csv`: ``results.csv`` (the paper-layout experiment table) or
  ``results_folds.csv`` as a ``vtkMRMLTableNode`` (numeric columns as numbers).
- :func:`fold_metrics_table`: per-fold metrics of one run (from its ``fold_done`` events).
- :func:`learning_curves_table`: train/validation loss per epoch and fold (``epoch`` events).
- :func:`plot_table`: a ``vtkMRMLPlotChartNode`` with one ``vtkMRMLPlotSeriesNode`` per
  column of a table.

Nodes go into the scene given; nothing needs ``slicer.app``.

Example:
    >>> table = table_from_csv(scene, "experiment/results.csv", "FCD results")  # doctest: +SKIP
    >>> chart = plot_table(table, "depth", ["accuracy_mean", "roc_auc_mean"], "Accuracy")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vtk
from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.run_folder.event_log import read_events
from FCDTrainLib.run_folder.layout import RunLayout

LOSS_KEYS = ("train_loss", "val_loss")


def _as_float(text: Any) -> float | None:
    if text is None or text == "":
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def table_from_rows(scene: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str], name: str) -> Any:
    """A table node from dict rows; a column whose values all parse as numbers is numeric."""
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column in columns:
        values = [row.get(column) for row in rows]
        numbers = [_as_float(v) for v in values]
        numeric = bool(rows) and all(n is not None for n in numbers) and not all(
            (v is None or v == "") for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(column)
        for value, number in zip(values, numbers, strict=True):
            array.InsertNextValue(number if numeric else ("" if value is None else str(value)))
        table_node.AddColumn(array)
    return table_node


def table_from_csv(scene: Any, path: str | Path, name: str | None = None) -> Any:
    """A CSV file (header row) as a table node; raises FCDInputError when it cannot be read."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except OSError as error:
        raise FCDInputError(f"{path}: cannot read results ({error.strerror or error})") from error
    if not columns:
        raise FCDInputError(f"{path}: no header row")
    return table_from_rows(scene, rows, columns, name or path.stem)


def fold_metrics_rows(events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows ``{fold, metric...}`` from ``fold_done`` events, and the column names."""
    rows: dict[int, dict[str, Any]] = {}
    metrics: list[str] = []
    for event in events:
        if event.get("event") != "fold_done":
            continue
        fold = int(event.get("fold", 0))
        values = {k: v for k, v in dict(event.get("metrics", {})).items()
                  if isinstance(v, (int, float)) or v is None}
        rows[fold] = {"fold": fold, **values}
        metrics += [k for k in values if k not in metrics]
    return [rows[f] for f in sorted(rows)], ["fold", *metrics]


def fold_metrics_table(scene: Any, run: str | Path, name: str | None = None) -> Any:
    """Per-fold metrics of one run folder as a table node (None if no fold finished yet)."""
    rows, columns = fold_metrics_rows(read_events(RunLayout(run).events))
    if not rows:
        return None
    return table_from_rows(scene, rows, columns, name or f"{Path(run).name} fold metrics")


def learning_curve_rows(events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per epoch with ``train_loss_fold{k}`` / ``val_loss_fold{k}`` columns."""
    by_epoch: dict[int, dict[str, Any]] = {}
    columns: list[str] = ["epoch"]
    for event in events:
        if event.get("event") != "epoch":
            continue
        epoch, fold = int(event.get("epoch", 0)), int(event.get("fold", 0))
        row = by_epoch.setdefault(epoch, {"epoch": epoch})
        for key in LOSS_KEYS:
            if isinstance(event.get(key), (int, float)):
                column = f"{key}_fold{fold}"
                row[column] = float(event[key])
                if column not in columns:
                    columns.append(column)
    return [by_epoch[e] for e in sorted(by_epoch)], columns


def learning_curves_table(scene: Any, run: str | Path, name: str | None = None) -> Any:
    """Learning curves of one run folder as a table node (None before the first epoch)."""
    rows, columns = learning_curve_rows(read_events(RunLayout(run).events))
    if not rows:
        return None
    return table_from_rows(scene, rows, columns, name or f"{Path(run).name} learning curves")


def table_column_names(table_node: Any) -> list[str]:
    table = table_node.GetTable()
    return [table.GetColumn(i).GetName() for i in range(table.GetNumberOfColumns())]


def plot_table(table_node: Any, x_column: str, y_columns: Sequence[str] | None = None,
               title: str = "", y_title: str = "", plot_type: str = "scatter") -> Any:
    """A chart node with one series per ``y_columns`` (default: all numeric except x).

    ``plot_type`` is ``scatter`` (points and lines, for learning curves) or ``bar``.
    Returns the ``vtkMRMLPlotChartNode``; its series reference ``table_node``.
    """
    scene = table_node.GetScene()
    names = table_column_names(table_node)
    if x_column not in names:
        raise FCDInputError(f"table {table_node.GetName()!r}: no column {x_column!r}")
    table = table_node.GetTable()
    if y_columns is None:
        y_columns = [n for n in names if n != x_column and table.GetColumnByName(n).IsNumeric()]
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{table_node.GetName()} plot")
    chart.SetTitle(title or table_node.GetName())
    chart.SetXAxisTitle(x_column)
    chart.SetYAxisTitle(y_title)
    for column in y_columns:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column)
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(column)
        if plot_type == "bar":
            series.SetPlotType(series.PlotTypeBar)
        else:
            series.SetPlotType(series.PlotTypeScatter)
            series.SetMarkerStyle(series.MarkerStyleCircle)
        series.SetUniqueColor()
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def experiment_results_nodes(scene: Any, out: str | Path) -> dict[str, Any]:
    """Nodes for a finished run or experiment folder.

    Experiment (``results.csv`` present): the results table, the per-fold table and a bar
    chart of accuracy / ROC-AUC / Heat-Score per fold. Single run: per-fold metrics table
    (bar chart) and learning curves (line chart). Missing parts are simply absent.
    """
    out = Path(out)
    nodes: dict[str, Any] = {}
    if (out / "results.csv").exists():
        nodes["results_table"] = table_from_csv(scene, out / "results.csv", f"{out.name} results")
        if (out / "results_folds.csv").exists():
            folds = table_from_csv(scene, out / "results_folds.csv", f"{out.name} per-fold results")
            nodes["folds_table"] = folds
            numeric = [c for c in ("accuracy", "roc_auc", "heat_score") if c in table_column_names(folds)]
            if "fold" in table_column_names(folds) and numeric:
                nodes["chart"] = plot_table(folds, "fold", numeric, "Per-fold metrics", "value", "bar")
        return nodes
    metrics = fold_metrics_table(scene, out)
    if metrics is not None:
        nodes["folds_table"] = metrics
        nodes["chart"] = plot_table(metrics, "fold", None, "Per-fold metrics", "value", "bar")
    curves = learning_curves_table(scene, out)
    if curves is not None:
        nodes["curves_table"] = curves
        nodes["curves_chart"] = plot_table(curves, "epoch", None, "Learning curves", "loss")
    return nodes
