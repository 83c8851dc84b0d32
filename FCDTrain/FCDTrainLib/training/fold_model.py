"""One fold's network: built from the run's config, put in train mode, run for the validation loss.

:func:`build_model` (seed, MedicalNet weights, trainable layers), the train mode that keeps
frozen BatchNorms' statistics, the precision policy (:func:`autocast_context`: bf16 on CUDA, fp32
elsewhere) and :func:`evaluate_loss` / ``roc_auc_or_nan``, the validation figures. The training loop
(:class:`FCDTrainLib.training.trainer.Trainer`) uses them; every name is also importable from
:mod:`FCDTrainLib.training.trainer`.

Example:
    >>> model, provenance = build_model(RunConfig.preset("demo", data="cohort"), 0)  # doctest: +SKIP
    >>> provenance["trainable_mode"]  # doctest: +SKIP
    'all'
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from FCDTrainLib.run_folder.run_config import RunConfig


def build_model(config: RunConfig, fold: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The fold's network, initialised from ``seed + fold`` (and MedicalNet weights when asked).

    Returns the model and a provenance dict (weights load report, trainable parameters).
    """
    from FCDDetectLib.networks.resnets import build_resnet

    from FCDTrainLib.training.transfer import set_trainable

    torch.manual_seed(int(config.seed) + int(fold))
    arguments = dict(in_channels=len(config.modalities), num_classes=2, geometry=config.geometry,
                     widen_factor=config.widen_factor)
    if config.supervision == "lesion":
        from FCDDetectLib.networks.lesion_resnet import build_lesion_resnet

        model = build_lesion_resnet(config.depth, decoder_width=config.decoder_width, **arguments)
    else:
        model = build_resnet(config.depth, **arguments)
    info: dict[str, Any] = {"pretrained": config.pretrained, "supervision": config.supervision,
                            "head": "lesion" if config.supervision == "lesion" else "none"}
    if config.pretrained != "none":
        from FCDDetectLib.networks.medicalnet import load_medicalnet_weights

        report = load_medicalnet_weights(model, config.weights, config.depth)
        info["weights_loaded"] = len(report.loaded)
        info["weights_missing"] = list(report.missing)
        info["weights_unexpected"] = len(report.unexpected)
    trainable = set_trainable(model, config.transfer_mode)
    info["trainable_mode"] = config.transfer_mode
    info["trainable_parameters"] = len(trainable)
    return model, info


def set_train_mode(model: torch.nn.Module) -> None:
    """Train mode, but frozen BatchNorm layers keep their (pre-trained) running statistics.

    In transfer mode only layer4 and fc may change (paper 2.4); a BatchNorm whose affine
    parameters are frozen stays in eval mode so its running mean/var do not drift either.
    """
    from FCDTrainLib.training.transfer import freeze_batchnorm_stats

    model.train()
    freeze_batchnorm_stats(model)


def autocast_context(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def evaluate_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  device: torch.device) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and FCD probabilities of ``x`` (eval mode, no gradients)."""
    model.eval()
    # sums stay on the device (float64, the same additions as Python floats): one copy at the end
    losses, probs = torch.zeros((), dtype=torch.float64, device=device), []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            yb = y[start:start + batch_size].to(device)
            with autocast_context(device):
                logits = model(xb)
            logits = logits.float()
            losses += F.cross_entropy(logits, yb, reduction="sum").double()
            probs.append(torch.softmax(logits, dim=1)[:, 1])
    return float(losses) / max(1, x.shape[0]), torch.cat(probs).cpu().numpy() if probs else np.zeros(0)


def roc_auc_or_nan(labels: np.ndarray, probs: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs)) if len(set(labels.tolist())) == 2 else None
