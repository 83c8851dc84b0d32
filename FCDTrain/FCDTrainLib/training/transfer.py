"""Transfer learning: which parameters train, and frozen BatchNorm statistics.

Training-only (the engine builds and runs networks; it never chooses what trains).

Example:
    >>> from FCDDetectLib.networks.resnets import build_resnet
    >>> from FCDTrainLib.training.transfer import set_trainable
    >>> set_trainable(build_resnet(18), "transfer")[:2]
    ['layer4.0.conv1.weight', 'layer4.0.bn1.weight']
"""

from __future__ import annotations

import torch
from FCDDetectLib.choices import TRAINABLE_MODES

TRANSFER_TRAINABLE = ("layer4.", "fc.", "decoder.")
"""Parameter prefixes that train in ``transfer`` mode (paper 2.4; ``decoder`` = the lesion head,
:mod:`FCDDetectLib.networks.lesion_resnet`, which starts from scratch)."""


def set_trainable(model: torch.nn.Module, mode: str) -> list[str]:
    """Choose which parameters train; returns the names of the trainable ones.

    ``"all"``: every parameter. ``"transfer"``: only ``layer4.*`` and ``fc.*``, and the lesion
    head's ``decoder.*`` when there is one (:data:`TRANSFER_TRAINABLE`); the frozen stages keep
    ``requires_grad=False``, their BatchNorm affine weights included.

    Frozen BatchNorm *running statistics* still update whenever the module is in training
    mode (``requires_grad`` does not govern them). Call :func:`freeze_batchnorm_stats`
    after every ``model.train()`` to keep them fixed as well.

    Example:
        >>> from FCDDetectLib.networks.resnets import build_resnet
        >>> model = build_resnet(18)
        >>> names = set_trainable(model, "transfer")
        >>> all(n.startswith(("layer4.", "fc.")) for n in names)
        True
    """
    if mode not in TRAINABLE_MODES:
        raise ValueError(f"trainable mode {mode!r} is not supported; choose one of {TRAINABLE_MODES}")
    trainable = []
    for name, parameter in model.named_parameters():
        train = mode == "all" or name.startswith(TRANSFER_TRAINABLE)
        parameter.requires_grad_(train)
        if train:
            trainable.append(name)
    return trainable


def freeze_batchnorm_stats(model: torch.nn.Module) -> list[str]:
    """Put every BatchNorm whose parameters are all frozen in eval mode; returns their names.

    Use after ``model.train()`` when fine-tuning with :func:`set_trainable` ``"transfer"``,
    so that the pre-trained running mean/variance of the frozen stages stay as loaded.

    Example:
        >>> from FCDDetectLib.networks.resnets import build_resnet
        >>> model = build_resnet(18)
        >>> _ = set_trainable(model, "transfer")
        >>> _ = model.train()
        >>> "bn1" in freeze_batchnorm_stats(model)
        True
    """
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
                frozen.append(name)
    return frozen
