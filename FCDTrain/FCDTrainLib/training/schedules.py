"""Learning-rate schedules of a fold: what the loop asks after each epoch, one class per schedule.

The training loop (:class:`FCDTrainLib.training.trainer.Trainer`) asks its schedule three things
after every epoch: :meth:`~PlateauSchedule.step` (change the learning rate), whether the epoch's
weights are the fold's result so far (:meth:`~PlateauSchedule.improved`) and whether to stop
(:meth:`~PlateauSchedule.should_stop`). Which schedule a fold uses is its trainer's choice
(:meth:`Trainer.make_schedule`): the paper's protocol keeps :class:`PlateauSchedule`; the lesion
trainer takes ``RunConfig.lesion_schedule`` (:data:`SCHEDULES`).

- :class:`PlateauSchedule` is section 2.3 of the paper: ReduceLROnPlateau (``lr_factor``,
  ``patience``) and early stopping (``early_stop_patience``) on the validation figure the
  trainer monitors; the best epoch (lowest figure) gives the weights.
- :class:`PolySchedule` is nnU-Net's (Isensee et al., *nnU-Net*, Nature Methods 18, 2021,
  and ``nnunetv2``'s ``PolyLRScheduler``): ``lr * (1 - epoch / max_epochs) ** 0.9``, fixed in
  advance, every epoch run, and the last epoch's weights are the model (nnU-Net's
  ``checkpoint_final``). Nothing reads the validation loss, so a noisy validation figure can
  neither cut the rate before the lesion head has found the lesions (what happened on fold 1,
  ``docs/lesion-supervision.md``) nor pick a lucky epoch.

Both keep their state in :meth:`state_dict` (plain values, loadable with ``weights_only=True``)
so that a resumed fold continues exactly; :class:`PlateauSchedule`'s is ReduceLROnPlateau's own,
so checkpoints written before this module resume unchanged.

Example:
    >>> import torch
    >>> optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    >>> schedule = PolySchedule(optimizer, max_epochs=10)
    >>> optimizer.step(); schedule.step(0.5); round(optimizer.param_groups[0]["lr"], 6)
    0.009095
    >>> schedule.improved(0.9, 0.1), schedule.should_stop(99)
    (True, False)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["POLY_EXPONENT", "SCHEDULES", "PlateauSchedule", "PolySchedule"]

POLY_EXPONENT = 0.9
"""nnU-Net's exponent of the polynomial decay (``nnunetv2.training.lr_scheduler.polylr``)."""


class PlateauSchedule:
    """ReduceLROnPlateau + early stopping + the best epoch, all on the monitored validation figure.

    Args:
        optimizer: the fold's optimiser.
        factor: learning-rate factor at a plateau (``RunConfig.lr_factor``).
        patience: epochs without improvement before a cut (``RunConfig.patience``).
        early_stop_patience: epochs without improvement before the fold stops.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, patience: int,
                 early_stop_patience: int) -> None:
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor,
                                                                    patience=patience)
        self.early_stop_patience = int(early_stop_patience)

    def step(self, value: float) -> None:
        """After an epoch: cut the rate when ``value`` has not improved for ``patience`` epochs."""
        self.scheduler.step(value)

    def improved(self, value: float, best: float) -> bool:
        """The epoch's weights replace the best ones when ``value`` is lower."""
        return value < best

    def should_stop(self, bad_epochs: int) -> bool:
        """Early stopping after ``early_stop_patience`` epochs without improvement."""
        return bad_epochs >= self.early_stop_patience

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class PolySchedule:
    """nnU-Net's fixed polynomial decay; every epoch runs and the last one's weights are the model.

    Args:
        optimizer: the fold's optimiser (its learning rate at the start is the initial one).
        max_epochs: the schedule's length; the rate of epoch ``e`` (1-based) is
            ``lr * (1 - (e - 1) / max_epochs) ** 0.9``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_epochs: int) -> None:
        epochs = max(1, int(max_epochs))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda done: max(0.0, 1.0 - done / epochs) ** POLY_EXPONENT)

    def step(self, value: float) -> None:
        """After an epoch: the next epoch's rate (``value`` is not read)."""
        self.scheduler.step()

    def improved(self, value: float, best: float) -> bool:
        """Always: the latest weights are the model (nnU-Net's ``checkpoint_final``)."""
        return True

    def should_stop(self, bad_epochs: int) -> bool:
        """Never early: the schedule is fixed in advance."""
        return False

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


SCHEDULES: dict[str, Any] = {
    "plateau": lambda trainer: PlateauSchedule(trainer.optimizer, trainer.config.lr_factor, trainer.config.patience,
                                               trainer.config.early_stop_patience),
    "poly": lambda trainer: PolySchedule(trainer.optimizer, trainer.config.max_epochs),
}
"""``RunConfig.lesion_schedule`` -> a factory taking the trainer (a test checks the keys are
:data:`FCDDetectLib.choices.LESION_SCHEDULES`)."""
