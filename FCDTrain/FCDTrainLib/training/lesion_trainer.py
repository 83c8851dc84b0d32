"""Lesion-supervised training (``fcd train --supervision lesion``): a variant of the paper's trainer.

The network is :class:`FCDDetectLib.networks.lesion_resnet.LesionResNet` (the classifier plus a lesion
decoder). The loss of a batch is

    cross-entropy(class logits, labels) + lesion_weight * lesion_loss(lesion logits, targets)

where the targets are the patients' ROIs on the model grid (cached by
:class:`FCDTrainLib.training.input_cache.VolumeCache`, linear resampling, so a voxel holds the share of
it inside the ROI) and all background for controls. Patients without an ROI get no
lesion loss (their class loss still counts).

Why this lesion loss (lesions of 0.01-0.1 % of the volume): MONAI ``DiceCELoss`` with a
sigmoid, i.e. soft Dice + binary cross-entropy, computed over the whole batch
(``batch=True``).

- Dice does not care how small the foreground is: the ratio of overlap to size is the
  same for a lesion of 100 voxels in a million as for one of 100,000, so the
  99.9 % background cannot win by predicting "no lesion" everywhere (plain BCE reaches
  a loss near 0 that way).
- Per-sample Dice is undefined for a control (empty target); over the batch, a control's
  false-positive voxels still enlarge the denominator, so controls teach "nothing here".
- BCE keeps the voxel outputs calibrated probabilities, so a cluster threshold of 0.5 on
  the lesion map means something, and gives gradients where Dice is flat (all-empty
  predictions early in training). Focal loss (``DiceFocalLoss``) also tames the
  background, but it pushes the positives' probabilities towards 0.5 (less confident),
  which the 0.5 cluster threshold then cuts away.
- The decoder's output starts at 0.5 everywhere (bias 0, :class:`FCDDetectLib.networks.lesion_resnet.LesionDecoder`),
  as MONAI's and nnU-Net's heads do. The first version started it at a low prior (the
  training targets' foreground share, about 1e-4, after Lin et al. 2017); measured on the
  thin lesions of ``fcd synth --subtlety 0.5`` (``benchmarks/results-lesion-cpu.json``,
  ``diagnosis_2026_12_02``), that kept the map flat: near p = 1e-4 the sigmoid's slope is
  about 1e-4, so the Dice term's gradient vanishes, while the background's BCE turns the
  last layer's weights negative; the map then sits at sigmoid(bias) wherever the features
  are zero, a plateau of hundreds of voxels, and cannot rise in a lesion.

The project's reference probe (DESIGN.md: BasicUNet, BCE + Dice) used the same pair.

Validation: ``val_loss`` is the same sum on the validation subjects; the history also
records ``val_class_loss``, ``val_lesion_loss`` and ``val_dice`` (hard Dice at 0.5 over the
validation patients with an ROI). ReduceLROnPlateau, early stopping and the best epoch
follow ``val_lesion_loss`` (:attr:`monitor`; ``best_val_loss`` then holds it), not the sum:
measured on the thin lesions of ``fcd synth --subtlety 0.5`` (``benchmarks/results-lesion-cpu.json``,
``lr_3e-4_patience_20``), the class loss of a head at chance moves by more from epoch to
epoch than the lesion loss gains, so the sum stalled (and the learning rate was cut) while
the lesion loss was still falling; with the lesion loss driving them, the
same 100-epoch benchmark went from detection 0.70 to 0.95 (``lesion_loss_monitor_run``).

Example:
    >>> config = RunConfig(data="cohort/", supervision="lesion", lesion_weight=1.0)  # doctest: +SKIP
    >>> outcome = LesionTrainer(config, 0, data, Path("run/fold-0"), log).fit()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from FCDTrainLib.training.fold_model import autocast_context, roc_auc_or_nan
from FCDTrainLib.training.patches import PatchSampler
from FCDTrainLib.training.schedules import SCHEDULES
from FCDTrainLib.training.trainer import Trainer

POLY_VALIDATION_EVERY = 5
"""Under the poly schedule the validation pass runs every 5th epoch (and the first and the last): nothing
reads it but the history, and with patch batches a whole-volume validation pass costs about a fifth of
a training epoch (24 validation volumes against 96 training patches of 32^3, ``docs/lesion-supervision.md``)."""


def lesion_loss_function():
    """Soft Dice + BCE over the batch (see the module docstring for why)."""
    from monai.losses import DiceCELoss

    return DiceCELoss(sigmoid=True, batch=True)


class LesionTrainer(Trainer):
    """The paper's trainer with a lesion loss beside the cross-entropy (see the module docstring)."""

    supervision = "lesion"
    monitor = "val_lesion_loss"  # see "Validation" in the module docstring

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        data = self.data
        if data.train_roi is None or data.val_roi is None:
            raise ValueError("lesion supervision needs FoldData.train_roi and val_roi")
        for part in ("train", "val"):
            if getattr(data, f"{part}_roi_known") is None:
                setattr(data, f"{part}_roi_known", torch.ones(getattr(data, f"{part}_y").shape[0], dtype=torch.bool))
        self.lesion_loss = lesion_loss_function()
        self.patches = (PatchSampler(self.config.patch, self.config.foreground_fraction, data.train_roi,
                                     data.train_roi_known) if self.config.patch else None)

    def make_schedule(self) -> Any:
        """``RunConfig.lesion_schedule``: nnU-Net's poly decay (default) or the paper's plateau scheduler."""
        return SCHEDULES[self.config.lesion_schedule](self)

    def validates(self, epoch: int) -> bool:
        """Every epoch under the plateau schedule (it reads the figure); under poly, which reads
        nothing, the first, every :data:`POLY_VALIDATION_EVERY`-th and the last (the history's curve)."""
        if self.config.lesion_schedule != "poly":
            return True
        return epoch == 1 or epoch % POLY_VALIDATION_EVERY == 0 or epoch >= self.config.max_epochs

    def batch(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, part: str) -> dict[str, torch.Tensor]:
        batch = super().batch(x, y, index, part)
        batch["roi"] = getattr(self.data, f"{part}_roi")[index].to(self.device, non_blocking=True).float()
        batch["roi_known"] = getattr(self.data, f"{part}_roi_known")[index].to(self.device)
        return batch

    def augment(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The image and its lesion target move together: one transform on both (channels stacked)."""
        channels = batch["x"].shape[1]
        batch["x"] = torch.cat([batch["x"], batch["roi"]], dim=1)
        batch = super().augment(batch, generator)
        batch["x"], batch["roi"] = batch["x"][:, :channels], batch["x"][:, channels:].clamp(0.0, 1.0)
        if self.patches is not None:  # crop after the transform: a patch's corners hold real voxels
            batch = self.patches.crop(batch, generator)
        return batch

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(class loss, lesion loss, class logits, lesion logits) of a batch."""
        with autocast_context(self.device):
            logits, lesion_logits = self.model.forward_with_lesion(batch["x"])
        class_loss = F.cross_entropy(logits.float(), batch["y"])
        known = batch["roi_known"]
        if bool(known.any()):
            lesion = self.lesion_loss(lesion_logits.float()[known], batch["roi"][known])
        else:
            lesion = lesion_logits.float().sum() * 0.0
        return class_loss, lesion, logits, lesion_logits

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_loss, lesion, _, _ = self._losses(batch)
        total = class_loss + float(self.config.lesion_weight) * lesion
        return total, {"class_loss": class_loss.detach(), "lesion_loss": lesion.detach()}  # summed on the device

    def validation_metrics(self) -> dict[str, Any]:
        data, size = self.data, self.config.batch_size
        self.model.eval()
        n = data.val_x.shape[0]
        class_sum = lesion_sum = 0.0
        probs, overlap, volume = [], 0.0, 0.0
        with torch.no_grad():
            for start in range(0, n, size):
                index = torch.arange(start, min(n, start + size))
                batch = self.batch(data.val_x, data.val_y, index, "val")
                class_loss, lesion, logits, lesion_logits = self._losses(batch)
                class_sum += float(class_loss) * index.numel()
                lesion_sum += float(lesion) * index.numel()
                probs.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
                patients = batch["roi_known"] & (batch["y"] == 1)
                if bool(patients.any()):
                    predicted = lesion_logits.float()[patients] > 0
                    target = batch["roi"][patients] >= 0.5
                    overlap += float((predicted & target).sum())
                    volume += float(predicted.sum() + target.sum())
        n = max(1, n)
        labels = data.val_y.cpu().numpy()
        probabilities = np.concatenate(probs) if probs else np.zeros(0)
        class_loss, lesion_loss = class_sum / n, lesion_sum / n
        return {
            "val_loss": class_loss + float(self.config.lesion_weight) * lesion_loss,
            "val_class_loss": class_loss,
            "val_lesion_loss": lesion_loss,
            "val_dice": 2 * overlap / volume if volume else None,
            "val_accuracy": float(np.mean((probabilities >= 0.5).astype(int) == labels)) if len(labels) else None,
            "val_auc": roc_auc_or_nan(labels, probabilities),
        }
