"""Batch detection from Slicer: every subject of a folder or BIDS dataset, plus a summary table node.

:func:`process_folder` finds the subjects with :func:`FCDDetectLib.cohort.runner.discover_subjects`,
runs :func:`FCDDetectLib.cohort.runner.run_cohort` (the same code as ``fcd detect --data``, so each
subject gets the CLI's outputs in ``out_dir/<subject>/`` and ``out_dir/summary.csv``), and
adds the summary rows to the scene as a table node. Progress and stop are the cohort
runner's: ``progress(done, total, row)`` after each subject, ``should_stop()`` before each;
a stopped batch leaves the rest ``pending`` and resumes when run again.
:func:`start_batch` runs the same in a child process (the panel's way: progress, Cancel,
the GUI thread free) and :meth:`BatchJob.finish` adds the table on the main thread.

Example (Slicer Python console)::

    import FCDDetect
    out = FCDDetect.FCDDetectLogic().processFolder("/data/ds004199", "/models/flair.fcdbundle", "/out/batch")
    out.table_node, out.rows[0]["probability"]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vtk

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.background_task import BackgroundTask, Launcher, TaskJob
from FCDDetectLib.slicer_support.detect_tasks import BATCH_TASK


@dataclass
class BatchNodes:
    """Summary rows (one per subject) and the table node holding them."""

    rows: list[dict[str, Any]]
    table_node: Any

    @property
    def stopped(self) -> bool:
        return any(row.get("status") == "pending" for row in self.rows)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def summary_table_node(scene: Any, rows: Sequence[dict[str, Any]], name: str) -> Any:
    """A table node from the summary rows: numeric columns as numbers, the rest as text."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column in columns:
        values = [row.get(column) for row in rows]
        numbers = [_number(v) for v in values]
        numeric = all(n is not None for n in numbers) and any(v not in (None, "") for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(column)
        for value, number in zip(values, numbers, strict=True):
            array.InsertNextValue(number if numeric else ("" if value is None else str(value)))
        table_node.AddColumn(array)
    return table_node


def _model_modalities(model: Any) -> list[str]:
    metadata = getattr(model, "metadata", None)
    if metadata is None:
        from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

        metadata = read_bundle_metadata(model)
    return list(metadata.modalities)


def process_folder(scene: Any, data: str | Path, model: Any, out_dir: str | Path, *,
                   modalities: Sequence[str] | None = None, options: Any = None, workers: int = 1,
                   progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, name: str | None = None,
                   **option_values: Any) -> BatchNodes:
    """Detect every subject of ``data`` with ``model`` into ``out_dir``; summary table in ``scene``.

    ``modalities`` default to the model's. Bad input (no subjects, unreadable folder, a
    model that does not load) raises :class:`FCDInputError` before any subject runs; a
    subject that fails is a row with status ``error``, not an exception.
    """
    try:
        from FCDDetectLib.cohort.discovery import discover_subjects
        from FCDDetectLib.cohort.runner import run_cohort
    except ImportError as error:  # an engine without the cohort runner
        raise FCDInputError("batch detection needs FCDDetectLib.cohort.runner, which this engine does not have") from error

    wanted = list(modalities) if modalities else _model_modalities(model)
    subjects = discover_subjects(data, modalities=wanted)  # FCDInputError when there is none
    rows = run_cohort(model, subjects, out_dir, options=options, workers=workers, progress=progress,
                      should_stop=should_stop, **option_values)
    table = summary_table_node(scene, rows, name or f"FCD batch {Path(str(data)).name}")
    return BatchNodes(rows=list(rows), table_node=table)


@dataclass
class BatchJob(TaskJob):
    """A batch detection running in a child process (``poll``: subjects done as ``fraction``,
    ``cancel``: finished subjects are kept and a later run resumes, ``wait``); :meth:`finish`
    adds its summary table."""

    task: BackgroundTask
    scene: Any
    name: str
    nodes: BatchNodes | None = None

    def finish(self) -> BatchNodes:
        """On the main thread, once the job has ended: the summary rows and their table node."""
        if self.nodes is None:
            rows = self.task.result()
            self.nodes = BatchNodes(rows=list(rows), table_node=summary_table_node(self.scene, rows, self.name))
        return self.nodes


def start_batch(scene: Any, data: str | Path, model: Any, out_dir: str | Path, *,
                modalities: Sequence[str] | None = None, options: Any = None, workers: int = 1,
                name: str | None = None, launcher: Launcher | None = None, python: str | None = None,
                **option_values: Any) -> BatchJob:
    """Start :func:`process_folder`'s work in a child process; returns a :class:`BatchJob` at once.

    The dataset, the model's metadata and the options are checked first (FCDInputError before
    any process starts); the subjects are found in the child.
    """
    from FCDDetectLib.detection.options import DetectOptions

    detect_options = (options or DetectOptions()).replace(**option_values)
    if not str(data) or not Path(data).exists():
        raise FCDInputError(f"dataset {data}: no such folder or file")
    if not str(out_dir):
        raise FCDInputError("no output folder chosen for the batch")
    if workers < 1:
        raise FCDInputError(f"workers {workers}: expected 1 or more")
    _model_modalities(model)  # a missing or bad bundle is an error now
    task = BackgroundTask(BATCH_TASK, {
        "data": str(data), "model": str(getattr(model, "path", model)), "out_dir": str(out_dir),
        "options": detect_options.to_dict(), "modalities": list(modalities) if modalities else None,
        "workers": int(workers)}, python=python, launcher=launcher, description="the batch detection")
    return BatchJob(task.start(), scene, name or f"FCD batch {Path(str(data)).name}")
