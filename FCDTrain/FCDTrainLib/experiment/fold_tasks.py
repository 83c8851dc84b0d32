"""An experiment's fold tasks: planned, their run folders claimed, their completions recorded.

The grid (:mod:`FCDTrainLib.experiment.paper_comparison`) gives ``(run name, RunConfig)`` pairs; this module
turns them into :class:`~FCDTrainLib.experiment.executors.FoldTask` lists whatever the grid's axes
are, prepares the run folders before any task runs (so parallel folds of one run find it
claimed by the same configuration), and makes the executor's ``on_done`` callback that
writes the experiment's ``fold_done`` / ``run_done`` / ``progress`` events.

Example:
    >>> tasks = plan_tasks([("resnet18-none-flair", config)], Path("exp"), threads=None)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.experiment.executors import FoldTask
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig


def plan_tasks(runs: Sequence[tuple[str, RunConfig]], out: Path, threads: int | None) -> list[FoldTask]:
    """The fold tasks still to do, every run checked (data, folds, weights, folder) before any is written."""
    from FCDTrainLib.experiment.train_run import prepare
    from FCDTrainLib.run_folder.layout import RunLayout

    tasks = []
    for name, config in runs:
        run_dir = out / "runs" / name
        prepare(config, run_dir)  # FCDInputError for bad data, weights or another run's folder
        tasks += [FoldTask(name, str(run_dir), config.to_dict(), fold, threads)
                  for fold in range(config.folds) if not RunLayout(run_dir).fold_done(fold)]
    return tasks


def make_run_folders(folders: Sequence[Path]) -> list[Path]:
    """Create the folders; returns those created here (removed again if a later check fails)."""
    created = []
    for folder in folders:
        for path in [*reversed(folder.parents), folder]:
            if path.exists():
                if not path.is_dir():
                    for made in reversed(created):
                        made.rmdir()
                    raise FCDInputError(f"{path}: is a file, cannot hold the run folder {folder}")
                continue
            try:
                path.mkdir()
            except OSError as error:
                for made in reversed(created):
                    made.rmdir()
                raise FCDInputError(f"{path}: cannot create the run folder ({error.strerror or error})") from error
            created.append(path)
    return created


def claim_runs(runs: Sequence[tuple[str, RunConfig]], tasks: Sequence[FoldTask], out: Path) -> None:
    """Write each pending run's config.json and its ``start`` event before any fold task runs.

    Parallel fold tasks of one run then find the folder already claimed by the same
    configuration (see :func:`FCDTrainLib.run_folder.run_config.check_same_run`).
    """
    from FCDTrainLib.run_folder.run_config import write_config

    for name, config in runs:
        pending = [t.fold for t in tasks if t.run == name]
        if not pending:
            continue
        run_dir = out / "runs" / name
        write_config(run_dir, config)
        EventLog(run_dir / "events.jsonl").emit("start", folds=list(range(config.folds)), pending=pending,
                                                max_epochs=config.max_epochs, scheduled_by="experiment")


def on_fold_done(out: Path, log: EventLog, runs: dict[str, RunConfig], tasks: Sequence[FoldTask]):
    """The executor's callback: experiment events per finished fold and per finished run."""
    from FCDDetectLib.io.atomic_files import write_json_atomic

    from FCDTrainLib.experiment.progress import experiment_progress
    from FCDTrainLib.experiment.train_run import summarise_run

    left = {name: sum(t.run == name for t in tasks) for name in runs}
    finished = 0

    def on_done(task: FoldTask, result: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        log.emit("fold_done", run=task.run, fold=task.fold, metrics=result)
        left[task.run] -= 1
        if left[task.run] == 0:
            summary = summarise_run(task.run_dir, runs[task.run].folds)
            if summary is not None:
                if not (Path(task.run_dir) / "summary.json").is_file():  # the last fold writes it; a lost race
                    write_json_atomic(Path(task.run_dir) / "summary.json", summary)
                log.emit("run_done", run=task.run,
                         summary={k: summary.get(k) for k in ("accuracy", "roc_auc", "heat_score")})
        progress = experiment_progress(out) or {}
        if progress:
            # The experiment's start event lists exactly ``tasks``, so the folds done are the
            # callbacks so far, not the run folders' fold_done events: a parallel worker may
            # already have written its own before its callback comes (seen: 1, 2, 4, 4 under load).
            progress["folds_done"] = finished
        log.emit("progress", **{k: progress.get(k) for k in ("folds_done", "folds_total", "fraction", "eta_seconds")})

    return on_done
