"""Train one fold: epochs, validation, ReduceLROnPlateau, early stopping, checkpoints, resume.

Section 2.3 of the paper: cross-entropy, Adam (lr 1e-3), ReduceLROnPlateau (factor 0.1,
patience 5) on the validation loss, early stopping on the validation loss, random
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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from FCDDetectLib.files import write_atomic

from .augment import random_augment
from .checkpoint import load_best, load_checkpoint, restore_rng, rng_states, save_checkpoint
from .events import EventLog
from .layout import CHECKPOINT_NAME
from .run_config import RunConfig


@dataclass
class FoldData:
    """One fold's training and validation tensors (N, C, X, Y, Z) and labels (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


@dataclass
class FoldTraining:
    """What training a fold produced: the best epoch's weights and the history."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def epoch_seed(seed: int, fold: int, epoch: int) -> int:
    """The seed of one epoch's batch order and augmentations."""
    return (int(seed) * 1_000_003 + int(fold) * 10_007 + int(epoch)) % (2**63 - 1)


def build_model(config: RunConfig, fold: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The fold's network, initialised from ``seed + fold`` (and MedicalNet weights when asked).

    Returns the model and a provenance dict (weights load report, trainable parameters).
    """
    from FCDDetectLib.models import build_resnet

    from .transfer import set_trainable

    torch.manual_seed(int(config.seed) + int(fold))
    model = build_resnet(config.depth, in_channels=len(config.modalities), num_classes=2,
                         geometry=config.geometry, widen_factor=config.widen_factor)
    info: dict[str, Any] = {"pretrained": config.pretrained}
    if config.pretrained != "none":
        from FCDDetectLib.medicalnet import load_medicalnet_weights

        report = load_medicalnet_weights(model, config.weights, config.depth)
        info["weights_loaded"] = len(report.loaded)
        info["weights_missing"] = list(report.missing)
        info["weights_unexpected"] = len(report.unexpected)
    trainable = set_trainable(model, config.transfer_mode)
    info["trainable_mode"] = config.transfer_mode
    info["trainable_parameters"] = len(trainable)
    return model, info


def _set_train_mode(model: torch.nn.Module) -> None:
    """Train mode, but frozen BatchNorm layers keep their (pre-trained) running statistics.

    In transfer mode only layer4 and fc may change (paper 2.4); a BatchNorm whose affine
    parameters are frozen stays in eval mode so its running mean/var do not drift either.
    """
    from .transfer import freeze_batchnorm_stats

    model.train()
    freeze_batchnorm_stats(model)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def evaluate_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  device: torch.device) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and FCD probabilities of ``x`` (eval mode, no gradients)."""
    model.eval()
    losses, probs = 0.0, []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            yb = y[start:start + batch_size].to(device)
            with _autocast(device):
                logits = model(xb)
            logits = logits.float()
            losses += float(F.cross_entropy(logits, yb, reduction="sum"))
            probs.append(torch.softmax(logits, dim=1)[:, 1].cpu().numpy())
    return losses / max(1, x.shape[0]), np.concatenate(probs) if probs else np.zeros(0)


def _auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs)) if len(set(labels.tolist())) == 2 else None


def _atomic_save(obj: Any, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


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


def train_fold(
    config: RunConfig,
    fold: int,
    data: FoldData,
    fold_dir: Path,
    log: EventLog,
    device: str | torch.device = "cpu",
    later_folds: int = 0,
    progress: bool = True,
) -> FoldTraining:
    """Train (or resume, or just return) fold ``fold``; see the module docstring.

    ``later_folds`` (folds still to run after this one) only feeds the ETA of the events.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    fold_dir = Path(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    model, _ = build_model(config, fold)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.patience)
    state: dict[str, Any] = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
                             "finished": False, "stopped_early": False, "history": []}
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    checkpoint = load_checkpoint(fold_dir, fold, _warn(log, fold))  # weights_only=True: untrusted
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = checkpoint["state"]
        if state["best_epoch"]:
            best_state = load_best(fold_dir, state["best_epoch"])
        restore_rng(checkpoint["rng"])
        log.drop_epochs_after(fold, state["epoch"])
        last = state["history"][-1] if state["history"] else None
        if last is not None and not log.has_epoch(fold, state["epoch"]):
            log.emit("epoch", **last)  # killed between the checkpoint commit and its event
        if state["epoch"] and not state["finished"]:
            log.emit("resume", fold=fold, epoch=state["epoch"])
    else:
        log.drop_epochs_after(fold, 0)
    _remove_other_bests(fold_dir, state["best_epoch"])

    n_train = data.train_x.shape[0]
    shift_voxels = [config.shift_mm / spacing for spacing in config.spacing]
    val_labels = data.val_y.cpu().numpy()
    bar = tqdm(total=config.max_epochs, initial=state["epoch"], desc=f"fold {fold}", unit="epoch",
               disable=None if progress else True, leave=False)
    try:
        while not state["finished"]:
            epoch = state["epoch"] + 1
            started = time.perf_counter()
            seed = epoch_seed(config.seed, fold, epoch)
            generator = torch.Generator().manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % (2**32))
            _set_train_mode(model)
            order = torch.randperm(n_train, generator=generator)
            train_loss = 0.0
            for start in range(0, n_train, config.batch_size):
                index = order[start:start + config.batch_size]
                xb = data.train_x[index].to(device, non_blocking=True)
                yb = data.train_y[index].to(device)
                xb = random_augment(xb, generator, config.rotation_degrees, shift_voxels,
                                    flip_axis=0 if config.flip else None)
                with _autocast(device):
                    logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_loss += float(loss.detach()) * index.numel()
            train_loss /= max(1, n_train)
            val_loss, val_probs = evaluate_loss(model, data.val_x, data.val_y, config.batch_size, device)
            val_acc = float(np.mean((val_probs >= 0.5).astype(int) == val_labels)) if len(val_probs) else None
            lr = float(optimizer.param_groups[0]["lr"])
            scheduler.step(val_loss)
            improved = val_loss < state["best_val_loss"]
            if improved:
                state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = val_loss, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                _atomic_save(best_state, fold_dir / f"best-{epoch}.pt")
            else:
                state["bad_epochs"] += 1
            state["stopped_early"] = state["bad_epochs"] >= config.early_stop_patience
            state["finished"] = state["stopped_early"] or epoch >= config.max_epochs
            state["epoch"] = epoch
            seconds = time.perf_counter() - started
            times = [h["seconds"] for h in state["history"]] + [seconds]
            remaining = (0 if state["finished"] else config.max_epochs - epoch) + later_folds * config.max_epochs
            record = {
                "fold": fold, "epoch": epoch, "max_epochs": config.max_epochs,
                "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc,
                "val_auc": _auc(val_labels, val_probs), "lr": lr,
                "next_lr": float(optimizer.param_groups[0]["lr"]), "best_epoch": state["best_epoch"],
                "best_val_loss": state["best_val_loss"], "improved": improved,
                "stopped_early": state["stopped_early"], "seconds": round(seconds, 3),
                "eta_seconds": round(remaining * float(np.mean(times)), 1),
            }
            state["history"].append(record)
            save_checkpoint(fold_dir / CHECKPOINT_NAME, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": copy.deepcopy(state), "rng": rng_states(), "fold": fold,
            })
            _remove_other_bests(fold_dir, state["best_epoch"])
            log.emit("epoch", **record)  # only after the checkpoint is committed
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", lr=f"{lr:.0e}")
    finally:
        bar.close()
    return FoldTraining(
        best_state=best_state, best_epoch=int(state["best_epoch"]), best_val_loss=float(state["best_val_loss"]),
        epochs_run=int(state["epoch"]), stopped_early=bool(state["stopped_early"]), history=state["history"],
    )
