"""What one fold's training takes in and gives back: :class:`FoldData` and :class:`FoldTraining`.

Plain records (tensors and the history); :mod:`FCDTrainLib.experiment.train_run` builds the
:class:`FoldData` of a split, :class:`FCDTrainLib.training.trainer.Trainer` returns a
:class:`FoldTraining`. Both are also importable from :mod:`FCDTrainLib.training.trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class FoldData:
    """One fold's training and validation tensors (N, C, X, Y, Z) and labels (N,).

    Lesion supervision adds the lesion targets on the model grid, (N, 1, X, Y, Z) in
    [0, 1] (controls all 0), and which subjects' targets are known (N,) bool (False for a
    patient without an ROI: no lesion loss for it).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    train_roi: torch.Tensor | None = None
    val_roi: torch.Tensor | None = None
    train_roi_known: torch.Tensor | None = None
    val_roi_known: torch.Tensor | None = None


@dataclass
class FoldTraining:
    """What training a fold produced: the best epoch's weights and the history."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
