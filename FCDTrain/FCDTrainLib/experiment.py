"""The paper's comparison as one command: depths x transfer strategies x modalities.

Each grid point is an ordinary training run in ``OUT/runs/resnet<D>-<strategy>-<modality>/``
(same seed, hence the same folds for every point, so folds pair up for the t-tests).
A run whose ``summary.json`` exists with the same configuration is skipped; an
unfinished one resumes. At the end (and whenever called again) the per-fold metrics of
every finished run are collected into ``OUT/results.csv``, ``results_folds.csv``,
``results.md`` and ``results.png`` (see :mod:`FCDTrainLib.report`). ``OUT/events.jsonl``
logs ``run_start`` / ``run_done`` / ``run_skipped`` per grid point; each run keeps its own
event log.

MedicalNet weights are found in ``--weights-dir`` by their official names
(``resnet_18.pth`` for medicalnet8, ``resnet_18_23dataset.pth`` for medicalnet23, ...).

Example:
    >>> from FCDTrainLib.run_config import RunConfig
    >>> base = RunConfig(data="ds004199/", folds=5)
    >>> run_experiment(base, "exp/", depths=[18], pretrained=["none", "medicalnet23"],
    ...                modalities=["flair"], weights_dir="weights/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.choices import DEPTHS, MODALITIES, PRETRAINED_STRATEGIES
from FCDDetectLib.errors import FCDInputError

from .events import EventLog
from .layout import ExperimentLayout, RunLayout
from .run_config import RunConfig, file_sha256, load_config


def run_name(depth: int, pretrained: str, modality: str) -> str:
    """Folder name of one grid point, e.g. ``resnet18-medicalnet23-flair``."""
    return f"resnet{depth}-{pretrained}-{modality.replace('+', '-')}"


def find_weights(weights_dir: str | Path | None, family: str, depth: int) -> Path:
    """The MedicalNet file of ``family`` and ``depth`` in ``weights_dir`` (official file names)."""
    from .medicalnet_weights import medicalnet_file_name

    name = medicalnet_file_name(family, depth)
    if weights_dir is None:
        raise FCDInputError(f"--pretrained {family}: needs --weights-dir holding {name}")
    path = Path(weights_dir) / name
    if not path.is_file():
        raise FCDInputError(f"{path}: MedicalNet weights for {family} ResNet-{depth} not found (expected {name})")
    return path


def plan_grid(base: RunConfig, depths: Sequence[int], pretrained: Sequence[str], modalities: Sequence[str],
              weights_dir: str | Path | None) -> list[RunConfig]:
    """One validated config per grid point; every weights file must exist before anything runs."""
    configs = []
    for modality in modalities:
        for depth in depths:
            for strategy in pretrained:
                weights = None if strategy == "none" else str(find_weights(weights_dir, strategy, int(depth)))
                config = dataclasses.replace(base, depth=int(depth), pretrained=strategy, modality=modality,
                                             weights=weights, weights_sha256=None)
                config.validate()
                configs.append(config)
    return configs


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
    from .stats import summarise

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
            metrics = json.loads(path.read_text(encoding="utf-8"))
            fold_rows.append({
                "depth": config.depth, "pretrained": config.pretrained, "modality": config.modality,
                "fold": fold, "accuracy": metrics.get("accuracy"), "roc_auc": metrics.get("roc_auc"),
                "heat_score": metrics.get("heat_score"), "run": run_dir.name,
            })
    return summarise(fold_rows), fold_rows


def run_experiment(base: RunConfig, out_dir: str | Path, depths: Sequence[int] = DEPTHS,
                   pretrained: Sequence[str] = PRETRAINED_STRATEGIES,
                   modalities: Sequence[str] = MODALITIES, weights_dir: str | Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the grid and write the reports; returns paths and the summary table."""
    from .report import write_report
    from .train_run import train_run

    out = Path(out_dir)
    configs = plan_grid(base, depths, pretrained, modalities, weights_dir)
    out.mkdir(parents=True, exist_ok=True)
    layout = ExperimentLayout(out)
    log = EventLog(layout.events)
    log.emit("start", runs=[run_name(c.depth, c.pretrained, c.modality) for c in configs])
    for index, config in enumerate(configs):
        name = run_name(config.depth, config.pretrained, config.modality)
        run_dir = layout.run(name).root
        if is_finished(run_dir, config):
            log.emit("run_skipped", run=name, index=index, total=len(configs))
            continue
        log.emit("run_start", run=name, index=index, total=len(configs))
        try:
            summary = train_run(config, run_dir, progress=progress)
        except Exception as error:
            log.emit("error", run=name, message=str(error))
            raise
        log.emit("run_done", run=name, index=index, total=len(configs),
                 summary={k: summary.get(k) for k in ("accuracy", "roc_auc", "heat_score")})
    summary_rows, fold_rows = collect_results(out)
    paths = write_report(summary_rows, fold_rows, out)
    log.emit("done", results=str(paths["csv"]))
    return {"paths": {k: str(v) for k, v in paths.items()}, "summary": summary_rows}
