"""The trainer of each supervision, chosen through one registry (no trainer imports its variants).

:data:`TRAINERS` maps every ``--supervision`` choice (:data:`FCDDetectLib.choices.SUPERVISION`) to
its :class:`~FCDTrainLib.training.trainer.Trainer` class; a new variant is a subclass overriding the hooks,
added here.

Example:
    >>> from FCDTrainLib.run_folder.run_config import RunConfig
    >>> from FCDTrainLib.training.trainer_registry import trainer_class
    >>> trainer_class(RunConfig(data="x", supervision="lesion")).__name__
    'LesionTrainer'
"""

from __future__ import annotations

from pathlib import Path

import torch

from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.fold_data import FoldData, FoldTraining
from FCDTrainLib.training.lesion_trainer import LesionTrainer
from FCDTrainLib.training.trainer import Trainer

__all__ = ["TRAINERS", "train_fold", "trainer_class"]

TRAINERS: dict[str, type[Trainer]] = {"none": Trainer, "lesion": LesionTrainer}
"""Supervision choice -> trainer class (a test checks the keys are the choice list)."""


def trainer_class(config: RunConfig) -> type[Trainer]:
    """The trainer of ``config.supervision``: :class:`Trainer` (``none``) or the lesion variant."""
    return TRAINERS[config.supervision]


def train_fold(
    config: RunConfig,
    fold: int,
    data: FoldData,
    fold_dir: Path,
    log: EventLog,
    device: str | torch.device = "cpu",
    later_folds: int = 0,
    progress: bool = True,
    model: torch.nn.Module | None = None,
) -> FoldTraining:
    """Train (or resume, or just return) fold ``fold`` with the trainer of ``config.supervision``.

    ``later_folds`` (folds still to run after this one) only feeds the ETA of the events.
    ``model`` (from :func:`build_model`) saves building it again; it is trained in place.
    """
    trainer = trainer_class(config)(config, fold, data, fold_dir, log, device=device, later_folds=later_folds,
                                    progress=progress, model=model)
    return trainer.fit()
