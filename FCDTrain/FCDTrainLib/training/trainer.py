"""Train one fold: epochs, validation, the learning-rate schedule, early stopping, checkpoints, resume.

:class:`Trainer` is the loop with hooks (loss, step, validation metrics, checkpoint);
the paper's protocol is the class itself, lesion supervision
(:class:`FCDTrainLib.training.lesion_trainer.LesionTrainer`) a subclass of it.
The fold's records (:class:`FoldData`, :class:`FoldTraining`) live in
:mod:`FCDTrainLib.training.fold_data`, its network (:func:`build_model`, autocast, the validation
loss) in :mod:`FCDTrainLib.training.fold_model`.

Section 2.3 of the paper: cross-entropy, Adam (lr 1e-3), ReduceLROnPlateau (factor 0.1,
patience 5) on the validation loss, early stopping on the validation loss (the schedule is
a hook, :meth:`Trainer.make_schedule`: :mod:`FCDTrainLib.training.schedules`), random
rotations within +/- 15 degrees (and, when asked, random shifts and left-right flips). After every epoch the whole state (model, optimizer,
scheduler, early-stopping state, best weights, history, RNG states) is written to
``fold-K/checkpoint.pt`` atomically (the best weights so far in ``fold-K/best-E.pt``,
written before the checkpoint that points to them), and only then is the ``epoch``
event logged; a run
killed at any moment resumes from the last committed epoch. Batch order and rotation
angles come from generators seeded by (seed, fold, epoch), so a resumed fold computes
exactly what an uninterrupted one would (bit for bit on CPU).

Example:
    >>> outcome = train_fold(config, 0, data, Path("run/fold-0"), EventLog("run/events.jsonl"))  # doctest: +SKIP
    >>> outcome.best_epoch, outcome.best_val_loss  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from FCDDetectLib.grid.preprocess import LEFT_RIGHT_AXIS

from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import CHECKPOINT_NAME
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.augment import random_augment
from FCDTrainLib.training.checkpoint import (
    load_best,
    load_checkpoint,
    restore_rng,
    rng_states,
    save_checkpoint,
    save_tensors,
)
from FCDTrainLib.training.fold_data import FoldData, FoldTraining
from FCDTrainLib.training.fold_model import (
    autocast_context,
    build_model,
    evaluate_loss,
    roc_auc_or_nan,
    set_train_mode,
)
from FCDTrainLib.training.scanner_augment import scanner_augment
from FCDTrainLib.training.schedules import SCHEDULES

Number = float | torch.Tensor  # a loss or loss part: a float or a detached 0-dim tensor


def epoch_seed(seed: int, fold: int, epoch: int) -> int:
    """The seed of one epoch's batch order and augmentations."""
    return (int(seed) * 1_000_003 + int(fold) * 10_007 + int(epoch)) % (2**63 - 1)




def _remove_other_bests(fold_dir: Path, keep_epoch: int) -> None:
    """Delete best-weight files of epochs the committed checkpoint does not point to."""
    for path in Path(fold_dir).glob("best-*.pt"):
        if path.name != f"best-{keep_epoch}.pt":
            path.unlink(missing_ok=True)


def _warn(log: EventLog, fold: int) -> Any:
    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)
        log.emit("warning", fold=fold, message=message)

    return warn


class Trainer:
    """One fold of the paper's protocol (section 2.3), as a loop with hooks.

    The loop (:meth:`fit`) owns what every variant shares: seeding per (seed, fold, epoch),
    batch order, the optimiser and scheduler, early stopping, best weights, checkpoints
    and resume, events and the progress bar. A variant overrides the hooks:

    - :meth:`batch` (the tensors of one batch) and :meth:`augment` (the same random
      transform for everything spatial in it),
    - :meth:`loss` (the scalar to minimise and its named parts, logged per epoch),
    - :meth:`step` (one optimisation step),
    - :meth:`validation_metrics` (``val_loss`` and any other figures for the history);
      :attr:`monitor` names the one that drives the scheduler, early stopping and the best
      epoch (``val_loss`` here); :meth:`validates` says on which epochs (every one here; an
      epoch without validation records None for its figures),
    - :meth:`make_schedule` (the learning-rate schedule, which also says which epoch's
      weights are the result and when to stop: :mod:`FCDTrainLib.training.schedules`;
      the paper's ReduceLROnPlateau here),
    - :meth:`checkpoint_payload` / :meth:`save_checkpoint` / :meth:`load_checkpoint`.

    The model is built once (:meth:`build_model`, or passed in) and is the object whose
    best weights the caller bundles. :class:`LesionTrainer` is the lesion-supervised variant.

    Example:
        >>> trainer = Trainer(config, 0, data, Path("run/fold-0"), EventLog("run/events.jsonl"))  # doctest: +SKIP
        >>> outcome = trainer.fit()  # doctest: +SKIP
        >>> trainer.model.load_state_dict(outcome.best_state)  # doctest: +SKIP
    """

    supervision = "none"
    monitor = "val_loss"  # the validation figure (lower is better) the scheduler, early stopping and best epoch follow

    def __init__(self, config: RunConfig, fold: int, data: FoldData, fold_dir: Path, log: EventLog,
                 device: str | torch.device = "cpu", later_folds: int = 0, progress: bool = True,
                 model: torch.nn.Module | None = None, provenance: dict[str, Any] | None = None) -> None:
        self.config = config
        self.fold = int(fold)
        self.data = data
        self.fold_dir = Path(fold_dir)
        self.log = log
        self.device = torch.device(device)
        self.later_folds = int(later_folds)
        self.progress = progress
        if model is None:
            model, provenance = self.build_model()
        self.model = model
        self.provenance = dict(provenance or {})
        self.shift_voxels = [config.shift_mm / spacing for spacing in config.spacing]

    # ----------------------------------------------------------------- hooks
    def build_model(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The fold's network and its provenance (see :func:`build_model`)."""
        return build_model(self.config, self.fold)

    def make_schedule(self) -> Any:
        """The fold's schedule (after :attr:`optimizer` exists): the paper's ReduceLROnPlateau + early stopping."""
        return SCHEDULES["plateau"](self)

    def batch(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, part: str) -> dict[str, torch.Tensor]:
        """The tensors of one batch on the device; ``part`` is ``"train"`` or ``"val"``."""
        return {"x": x[index].to(self.device, non_blocking=True), "y": y[index].to(self.device)}

    def augment(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Random rotation / shift / flip of the batch's volumes (training only)."""
        batch["x"] = random_augment(batch["x"], generator, self.config.rotation_degrees, self.shift_voxels,
                                    flip_axis=LEFT_RIGHT_AXIS if self.config.flip else None)
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Number]]:
        """Cross-entropy of the class logits (the paper); returns (loss, named parts).

        Parts are floats or detached 0-dim tensors (left on the device: no synchronisation per step).
        """
        with autocast_context(self.device):
            logits = self.model(batch["x"])
        return F.cross_entropy(logits.float(), batch["y"]), {}

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[Number, dict[str, Number]]:
        """One optimisation step on ``batch``; returns the loss and its parts.

        The loss is returned as a detached 0-dim tensor, not a float: reading it would wait
        for the device after every step; the epoch's sums stay on the device.
        """
        loss, parts = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), parts

    def validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` runs the validation pass (always, for a schedule that reads it)."""
        return True

    def validation_metrics(self) -> dict[str, Any]:
        """``val_loss`` (drives scheduler and early stopping), ``val_accuracy``, ``val_auc``."""
        val_loss, val_probs = evaluate_loss(self.model, self.data.val_x, self.data.val_y,
                                            self.config.batch_size, self.device)
        labels = self.data.val_y.cpu().numpy()
        accuracy = float(np.mean((val_probs >= 0.5).astype(int) == labels)) if len(val_probs) else None
        return {"val_loss": val_loss, "val_accuracy": accuracy, "val_auc": roc_auc_or_nan(labels, val_probs)}

    def checkpoint_payload(self, state: dict[str, Any]) -> dict[str, Any]:
        """Everything a resume needs, after an epoch."""
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": copy.deepcopy(state), "rng": rng_states(), "fold": self.fold,
        }

    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        """Commit ``payload`` as the fold's checkpoint (:func:`FCDTrainLib.training.checkpoint.save_checkpoint`)."""
        save_checkpoint(self.fold_dir / CHECKPOINT_NAME, payload)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The fold's checkpoint, or None (none yet, or truncated: the fold restarts with a warning).

        Loaded with ``weights_only=True`` (:func:`FCDTrainLib.training.checkpoint.load_checkpoint`): untrusted.
        """
        return load_checkpoint(self.fold_dir, self.fold, _warn(self.log, self.fold))

    # ------------------------------------------------------------------ loop
    def _setup(self) -> None:
        self.model.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        self.scheduler = self.make_schedule()

    def _resume(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        state: dict[str, Any] = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
                                 "finished": False, "stopped_early": False, "history": []}
        best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        checkpoint = self.load_checkpoint()
        log, fold = self.log, self.fold
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            state = checkpoint["state"]
            if state["best_epoch"]:
                best_state = load_best(self.fold_dir, state["best_epoch"])
            restore_rng(checkpoint["rng"])
            log.drop_epochs_after(fold, state["epoch"])
            last = state["history"][-1] if state["history"] else None
            if last is not None and not log.has_epoch(fold, state["epoch"]):
                log.emit("epoch", **last)  # killed between the checkpoint commit and its event
            if state["epoch"] and not state["finished"]:
                log.emit("resume", fold=fold, epoch=state["epoch"])
        else:
            log.drop_epochs_after(fold, 0)
        _remove_other_bests(self.fold_dir, state["best_epoch"])
        return state, best_state

    def _validation_keys(self, state: dict[str, Any]) -> list[str]:
        """The figures a validation pass records (from the history, else the monitor and ``val_loss``)."""
        for record in reversed(state["history"]):
            if record.get(self.monitor) is not None:
                return [k for k in record if k.startswith("val_")]
        return list(dict.fromkeys([self.monitor, "val_loss"]))

    def _train_epoch(self, generator: torch.Generator) -> tuple[float, dict[str, float]]:
        data, size = self.data, self.config.batch_size
        n_train = data.train_x.shape[0]
        order = torch.randperm(n_train, generator=generator)

        def on_device(value: Number) -> torch.Tensor:
            return torch.as_tensor(value, dtype=torch.float64, device=self.device)

        # Sums in float64 on the device: the same roundings as Python floats (bit-identical
        # figures), but no wait for the device per step; read once per epoch.
        total, parts_sum = on_device(0.0), {}
        for start in range(0, n_train, size):
            index = order[start:start + size]
            batch = self.augment(self.batch(data.train_x, data.train_y, index, "train"), generator)
            if self.config.scanner_augment:  # intensities only, after the spatial transform (no target moves)
                batch["x"] = scanner_augment(batch["x"], generator)
            loss, parts = self.step(batch)
            total += on_device(loss) * index.numel()
            for key, value in parts.items():
                parts_sum[key] = parts_sum.get(key, on_device(0.0)) + on_device(value) * index.numel()
        n = max(1, n_train)
        return float(total) / n, {key: float(value) / n for key, value in parts_sum.items()}

    def fit(self) -> FoldTraining:
        """Train (or resume, or just return) the fold; see the module docstring."""
        from tqdm.auto import tqdm

        config, fold, log = self.config, self.fold, self.log
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        self._setup()
        state, best_state = self._resume()
        bar = tqdm(total=config.max_epochs, initial=state["epoch"], desc=f"fold {fold}", unit="epoch",
                   disable=None if self.progress else True, leave=False)
        try:
            while not state["finished"]:
                epoch = state["epoch"] + 1
                started = time.perf_counter()
                seed = epoch_seed(config.seed, fold, epoch)
                generator = torch.Generator().manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed % (2**32))
                set_train_mode(self.model)
                train_loss, train_parts = self._train_epoch(generator)
                if self.validates(epoch):
                    validation = self.validation_metrics()
                else:  # the same keys as a validated epoch's, None (the schedule does not read them)
                    validation = {key: None for key in self._validation_keys(state)}
                val_loss = validation[self.monitor]
                lr = float(self.optimizer.param_groups[0]["lr"])
                self.scheduler.step(val_loss)
                improved = self.scheduler.improved(val_loss, state["best_val_loss"])
                if improved:
                    best = val_loss if val_loss is not None else state["best_val_loss"]
                    state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = best, epoch, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                    save_tensors(self.fold_dir / f"best-{epoch}.pt", best_state)
                else:
                    state["bad_epochs"] += 1
                state["stopped_early"] = self.scheduler.should_stop(state["bad_epochs"])
                state["finished"] = state["stopped_early"] or epoch >= config.max_epochs
                state["epoch"] = epoch
                seconds = time.perf_counter() - started
                times = [h["seconds"] for h in state["history"]] + [seconds]
                remaining = (0 if state["finished"] else config.max_epochs - epoch) + self.later_folds * config.max_epochs
                record = {
                    "fold": fold, "epoch": epoch, "max_epochs": config.max_epochs,
                    "train_loss": train_loss, **{f"train_{k}": v for k, v in train_parts.items()},
                    **validation, "lr": lr,
                    "next_lr": float(self.optimizer.param_groups[0]["lr"]), "best_epoch": state["best_epoch"],
                    "best_val_loss": state["best_val_loss"], "improved": improved,
                    "stopped_early": state["stopped_early"], "seconds": round(seconds, 3),
                    "eta_seconds": round(remaining * float(np.mean(times)), 1),
                }
                state["history"].append(record)
                self.save_checkpoint(self.checkpoint_payload(state))
                _remove_other_bests(self.fold_dir, state["best_epoch"])
                log.emit("epoch", **record)  # only after the checkpoint is committed
                bar.update(1)
                bar.set_postfix(train=f"{train_loss:.3f}", val="-" if val_loss is None else f"{val_loss:.3f}",
                                lr=f"{lr:.0e}")
        finally:
            bar.close()
        return FoldTraining(
            best_state=best_state, best_epoch=int(state["best_epoch"]),
            best_val_loss=float(state["best_val_loss"]), epochs_run=int(state["epoch"]),
            stopped_early=bool(state["stopped_early"]), history=state["history"],
        )
