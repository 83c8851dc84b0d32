"""Every path of a training run and of an experiment, in one place.

A run folder (``fcd train --out RUN``)::

    RUN/config.json             RunConfig (refuse-to-mix check)
    RUN/folds.json              subject ids of each fold's train / val / test parts
    RUN/skipped.json            subjects left out (missing modality, other protocol) and why
    RUN/dataset.json            each subject's label and the SHA-256 of its images and ROI
    RUN/events.jsonl            progress, one JSON object per line
    RUN/cache/                  preprocessed volumes on the model grid
    RUN/fold-K/checkpoint.pt    last committed epoch (deleted when the fold is done)
    RUN/fold-K/best-E.pt        best weights so far (epoch E)
    RUN/fold-K/model.fcdbundle  best validation epoch, loadable by ``fcd detect``
    RUN/fold-K/predictions.csv  test-fold predictions
    RUN/fold-K/metrics.json     test metrics (written last: marks the fold done)
    RUN/summary.json            per-fold metrics and mean/std, once every fold is done
    RUN/evaluation[-NAME]/      ``fcd evaluate`` output

An experiment folder (``fcd experiment --out EXP``) holds ``EXP/events.jsonl``,
``EXP/runs/NAME/`` (one run folder per grid point) and ``EXP/results.{csv,md,png}``.

Example:
    >>> layout = RunLayout("runs/r18")
    >>> layout.bundle(2).as_posix()
    'runs/r18/fold-2/model.fcdbundle'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.json"
FOLDS_NAME = "folds.json"
SKIPPED_NAME = "skipped.json"
DATASET_NAME = "dataset.json"
EVENTS_NAME = "events.jsonl"
SUMMARY_NAME = "summary.json"
CACHE_NAME = "cache"
CHECKPOINT_NAME = "checkpoint.pt"
BUNDLE_NAME = "model.fcdbundle"
PREDICTIONS_NAME = "predictions.csv"
METRICS_NAME = "metrics.json"
RESULTS_STEM = "results"


def fold_name(fold: int) -> str:
    """``fold-K``: the folder of fold ``K`` (0-based)."""
    return f"fold-{int(fold)}"


def is_fold_name(name: str) -> bool:
    """Whether ``name`` is the folder name of some fold (``fold-0``, ``fold-12``, ...).

    Example:
        >>> is_fold_name("fold-3"), is_fold_name("fold-x"), is_fold_name("evaluation")
        (True, False, False)
    """
    return re.fullmatch(r"fold-\d+", name) is not None


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def folds(self) -> Path:
        return self.root / FOLDS_NAME

    @property
    def skipped(self) -> Path:
        return self.root / SKIPPED_NAME

    @property
    def dataset(self) -> Path:
        return self.root / DATASET_NAME

    @property
    def events(self) -> Path:
        return self.root / EVENTS_NAME

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_NAME

    @property
    def cache(self) -> Path:
        return self.root / CACHE_NAME

    def fold(self, fold: int) -> Path:
        return self.root / fold_name(fold)

    def checkpoint(self, fold: int) -> Path:
        return self.fold(fold) / CHECKPOINT_NAME

    def bundle(self, fold: int) -> Path:
        return self.fold(fold) / BUNDLE_NAME

    def predictions(self, fold: int) -> Path:
        return self.fold(fold) / PREDICTIONS_NAME

    def metrics(self, fold: int) -> Path:
        return self.fold(fold) / METRICS_NAME

    def fold_done(self, fold: int) -> bool:
        """A fold is done once its ``metrics.json`` exists (written last)."""
        return self.metrics(fold).is_file()

    def evaluation(self, name: str | None = None) -> Path:
        """``RUN/evaluation`` (the run's own test folds) or ``RUN/evaluation-NAME`` (an external dataset)."""
        return self.root / ("evaluation" if name is None else f"evaluation-{name}")


@dataclass(frozen=True)
class ExperimentLayout:
    """The paths of one experiment folder."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def events(self) -> Path:
        return self.root / EVENTS_NAME

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, name: str) -> RunLayout:
        return RunLayout(self.runs / name)

    @property
    def results(self) -> dict[str, Path]:
        """The report files: ``csv`` (summary), ``folds_csv``, ``markdown``, ``plot``."""
        return {"csv": self.root / f"{RESULTS_STEM}.csv", "folds_csv": self.root / f"{RESULTS_STEM}_folds.csv",
                "markdown": self.root / f"{RESULTS_STEM}.md", "plot": self.root / f"{RESULTS_STEM}.png"}
