"""The paper's comparison as one command: depths x transfer strategies x modalities (x supervision).

Each grid point is an ordinary training run in ``OUT/runs/resnet<D>-<strategy>-<modality>/``
(``...-lesion/`` for lesion supervision, the optional fourth axis)
(same seed, hence the same folds for every point, so folds pair up for the t-tests).
Its folds are tasks (:class:`FCDTrainLib.experiment.executors.FoldTask`) handed to an executor: in
this process one after another (default), or on a Ray cluster, one task per fold. A run
whose ``summary.json`` exists with the same configuration is skipped, and so is every
finished fold; an unfinished fold resumes. At the end (and whenever called again) the
per-fold metrics of every finished run are collected into ``OUT/results.csv``,
``results_folds.csv``, ``results.md`` and ``results.png`` (see :mod:`FCDTrainLib.experiment.results_report`).
``OUT/events.jsonl`` logs ``start`` (the fold tasks), ``run_skipped``, ``fold_done``,
``run_done``, ``progress`` and ``done`` (see :mod:`FCDTrainLib.experiment.progress`); each
run keeps its own event log.

MedicalNet weights are found in ``--weights-dir`` by their official names
(``resnet_18.pth`` for medicalnet8, ``resnet_18_23dataset.pth`` for medicalnet23, ...).

Example:
    >>> from FCDTrainLib.run_folder.run_config import RunConfig
    >>> base = RunConfig(data="ds004199/", folds=5)
    >>> run_experiment(base, "exp/", depths=[18], pretrained=["none", "medicalnet23"],
    ...                modalities=["flair"], weights_dir="weights/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.choices import DEPTHS, MODALITIES, PRETRAINED_STRATEGIES
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.checksums import file_sha256

from FCDTrainLib.experiment.executors import Executor, FoldTask, task_dicts
from FCDTrainLib.experiment.fold_tasks import claim_runs, make_run_folders, on_fold_done, plan_tasks
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import ExperimentLayout, RunLayout
from FCDTrainLib.run_folder.run_config import RunConfig, load_config
from FCDTrainLib.run_folder.run_files import check_links, read_json_object


def run_name(depth: int, pretrained: str, modality: str, supervision: str = "none") -> str:
    """Folder name of one grid point, e.g. ``resnet18-medicalnet23-flair`` (``...-lesion`` when supervised)."""
    name = f"resnet{depth}-{pretrained}-{modality.replace('+', '-')}"
    return name if supervision == "none" else f"{name}-{supervision}"


def find_weights(weights_dir: str | Path | None, family: str, depth: int) -> Path:
    """The MedicalNet file of ``family`` and ``depth`` in ``weights_dir`` (official file names)."""
    from FCDTrainLib.training.medicalnet_weights import medicalnet_file_name

    name = medicalnet_file_name(family, depth)
    if weights_dir is None:
        raise FCDInputError(f"--pretrained {family}: needs --weights-dir holding {name}")
    path = Path(weights_dir) / name
    if not path.is_file():
        raise FCDInputError(f"{path}: MedicalNet weights for {family} ResNet-{depth} not found (expected {name})")
    return path


def plan_grid(base: RunConfig, depths: Sequence[int], pretrained: Sequence[str], modalities: Sequence[str],
              weights_dir: str | Path | None, supervisions: Sequence[str] = ("none",)) -> list[RunConfig]:
    """One validated config per grid point; every weights file must exist before anything runs."""
    configs = []
    for modality in modalities:
        for depth in depths:
            for strategy in pretrained:
                weights = None if strategy == "none" else str(find_weights(weights_dir, strategy, int(depth)))
                for supervision in supervisions:
                    config = dataclasses.replace(base, depth=int(depth), pretrained=strategy, modality=modality,
                                                 weights=weights, weights_sha256=None, supervision=supervision)
                    config.validate()
                    configs.append(config)
    return configs


def _name(config: RunConfig) -> str:
    return run_name(config.depth, config.pretrained, config.modality, config.supervision)


def is_finished(run_dir: Path, config: RunConfig) -> bool:
    """True when ``run_dir`` holds a complete run of exactly ``config``."""
    layout = RunLayout(run_dir)
    if not layout.summary.is_file() or not layout.config.is_file():
        return False
    probe = dataclasses.replace(config)
    if probe.weights:
        probe.weights_sha256 = file_sha256(probe.weights)
    return load_config(run_dir).identity() == probe.identity()


def collect_results(out_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(summary rows, per-fold rows) of every finished fold under ``OUT/runs``."""
    from FCDTrainLib.evaluation.stats import METRICS, summarise

    fold_rows = []
    for run_dir in sorted(ExperimentLayout(out_dir).runs.glob("*")):
        layout = RunLayout(run_dir)
        if not layout.config.is_file():
            continue
        config = load_config(run_dir)
        for fold in range(config.folds):
            path = layout.metrics(fold)
            if not path.is_file():
                continue
            metrics = read_json_object(path, "fold metrics")
            fold_rows.append({
                "depth": config.depth, "pretrained": config.pretrained, "modality": config.modality,
                "supervision": config.supervision, "fold": fold, "run": run_dir.name,
                **{metric: metrics.get(metric) for metric in METRICS},
            })
    return summarise(fold_rows), fold_rows


def run_experiment(base: RunConfig, out_dir: str | Path, depths: Sequence[int] = DEPTHS,
                   pretrained: Sequence[str] = PRETRAINED_STRATEGIES,
                   modalities: Sequence[str] = MODALITIES, weights_dir: str | Path | None = None,
                   progress: bool = True, executor: Executor | None = None,
                   supervisions: Sequence[str] = ("none",)) -> dict[str, Any]:
    """Run (or resume) the grid on ``executor`` (default: local) and write the reports.

    ``supervisions`` is the supervision axis (``("none", "lesion")`` compares the paper's
    protocol with lesion supervision, paired t-tests in the tables).

    Every check (options, weights, data, cluster, writable run folders) happens before
    the first fold starts; finished folds are never run again. Returns the report paths
    and the summary table.
    """
    import sys

    from FCDTrainLib.experiment.executors import LocalExecutor
    from FCDTrainLib.experiment.progress import ProgressPrinter
    from FCDTrainLib.experiment.results_report import write_report

    out = Path(out_dir)
    executor = executor or LocalExecutor()
    check_links(out, "experiment folder", marker="events.jsonl")  # no name under OUT (runs/NAME/fold-K, ...) may lead outside it
    configs = plan_grid(base, depths, pretrained, modalities, weights_dir, supervisions)
    runs = [(_name(c), c) for c in configs]
    finished = {name for name, config in runs if is_finished(out / "runs" / name, config)}
    todo = [(name, config) for name, config in runs if name not in finished]
    tasks: list[FoldTask] = []
    try:
        if todo:
            executor.open()
            folders = [out / "runs" / name for name, _ in todo]
            created = make_run_folders(folders)
            try:
                tasks = plan_tasks(todo, out, executor.threads)
                executor.check_writable(folders)
            except BaseException:
                for made in reversed(created):
                    if not any(made.iterdir()):
                        made.rmdir()
                raise
            claim_runs(todo, tasks, out)
        out.mkdir(parents=True, exist_ok=True)
        log = EventLog(out / "events.jsonl")
        skipped_folds = sum(c.folds for _, c in runs) - len(tasks)
        log.emit("start", runs=[name for name, _ in runs], tasks=task_dicts(tasks), executor=executor.name,
                 slots=executor.slots() if tasks else 1, max_epochs=base.max_epochs, folds_skipped=skipped_folds)
        for index, (name, _) in enumerate(runs):
            if name in finished:
                log.emit("run_skipped", run=name, index=index, total=len(runs))
        if tasks:
            with ProgressPrinter(out, sys.stderr if progress else None) as printer:
                try:
                    executor.run(tasks, on_fold_done(out, log, dict(todo), tasks))
                except BaseException as error:
                    log.emit("error", message=f"{type(error).__name__}: {error}" if not isinstance(
                        error, FCDInputError) else str(error))
                    raise
                printer.print_now()
    finally:
        executor.close()
    summary_rows, fold_rows = collect_results(out)
    paths = write_report(summary_rows, fold_rows, out)
    log.emit("done", results=str(paths["csv"]))
    return {"paths": {k: str(v) for k, v in paths.items()}, "summary": summary_rows}
