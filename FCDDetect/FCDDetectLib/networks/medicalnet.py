"""Load MedicalNet (Med3D) pre-trained weights from a local file into our ResNets.

The released checkpoints are ``torch.save({"state_dict": ...})`` files whose keys carry a
``module.`` prefix (they were saved from ``DataParallel``) and hold the encoder only (the
``conv_seg`` decoder is not in the released files). Their key layout is the one of MONAI's
``ResNet`` without ``fc``, so they load into both geometries of
:func:`FCDDetectLib.networks.resnets.build_resnet`.

Two weight families exist per depth (nothing is downloaded here; their official file
names and the download live on the training side, its ``medicalnet_weights`` module):

- ``medicalnet8``: ``resnet_NN.pth``, pre-trained on 8 segmentation datasets ("3DSeg-8";
  the paper's "1 task" / "TL 1").
- ``medicalnet23``: ``resnet_NN_23dataset.pth``, pre-trained on 23 datasets ("TL 23").

Two-channel models (T1 + FLAIR): conv1 is built from the 1-channel kernel repeated over
the input channels and divided by their number, so a volume whose channels are equal
gives exactly the response of the 1-channel pre-trained network.

Example:
    >>> from FCDDetectLib.networks.resnets import build_resnet
    >>> from FCDDetectLib.networks.medicalnet import load_medicalnet_weights
    >>> model = build_resnet(18, in_channels=2)
    >>> report = load_medicalnet_weights(model, "resnet_18_23dataset.pth", depth=18)  # doctest: +SKIP
    >>> report.missing  # doctest: +SKIP
    ['fc.weight', 'fc.bias']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_atomic

# (bottleneck?, blocks per stage) -> depth, for every depth MedicalNet released.
_KNOWN_LAYOUTS = {
    (False, (1, 1, 1, 1)): 10,
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
    (True, (3, 24, 36, 3)): 200,
}
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")
_PREFIX = "module."
_NOT_RELEASED = ("fc.", "decoder.")  # not in the released files: classifier, our lesion head


@dataclass
class LoadReport:
    """What :func:`load_medicalnet_weights` did.

    ``loaded``: model keys filled from the file; ``missing``: model keys left as they were
    (the classifier ``fc.*``, the lesion head ``decoder.*``, and BatchNorm ``num_batches_tracked`` counters when a file has
    none); ``unexpected``: file keys (prefix removed) that were ignored, e.g. ``conv_seg.*``;
    ``source``: the file; ``adapted``: keys converted on the way (conv1 for 2 channels).
    """

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    source: str
    adapted: list[str] = field(default_factory=list)


def detect_depth(keys: Iterable[str]) -> int | None:
    """ResNet depth that a MedicalNet-layout key set belongs to, or None when unknown.

    Example:
        >>> from FCDDetectLib.networks.resnets import build_resnet
        >>> detect_depth(build_resnet(34).state_dict())
        34
    """
    blocks: dict[int, set[int]] = {}
    bottleneck = False
    for key in keys:
        key = key[len(_PREFIX) :] if key.startswith(_PREFIX) else key
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
            bottleneck = bottleneck or ".conv3." in key
    if sorted(blocks) != [1, 2, 3, 4]:
        return None
    layout = tuple(max(blocks[stage]) + 1 for stage in (1, 2, 3, 4))
    return _KNOWN_LAYOUTS.get((bottleneck, layout))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FCDInputError(f"{path}: MedicalNet weights file not found")
    from FCDDetectLib.io.safe_load import load_tensors

    checkpoint = load_tensors(path, "MedicalNet weights")  # weights_only=True; one-line errors
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise FCDInputError(
            f"{path}: no 'state_dict' in the file; expected a MedicalNet checkpoint ({{'state_dict': ...}})"
        )
    state_dict = checkpoint["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise FCDInputError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    return {(k[len(_PREFIX) :] if k.startswith(_PREFIX) else k): v for k, v in state_dict.items()}


def _short_list(names: list[str], limit: int = 4) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_medicalnet_weights(model: torch.nn.Module, path: str | os.PathLike, depth: int) -> LoadReport:
    """Copy a MedicalNet checkpoint's backbone into ``model`` (built by ``build_resnet``).

    Every backbone tensor (all but ``fc``) must be in the file with the right shape;
    conv1 is adapted when the model has more input channels than the file (see the module
    docstring). Nothing in the model changes when the file is refused.

    Raises:
        FCDInputError: missing file, truncated/corrupt file, no ``state_dict``, a file of
            another depth ("file looks like ResNet-50, model is ResNet-18"), a missing or
            mis-shaped backbone tensor.

    Example:
        >>> from FCDDetectLib.networks.resnets import build_resnet
        >>> model = build_resnet(50)
        >>> load_medicalnet_weights(model, "resnet_50.pth", depth=50).loaded[:1]  # doctest: +SKIP
        ['conv1.weight']
    """
    path = Path(path)
    source = _read_state_dict(path)
    target = model.state_dict()
    model_depth = detect_depth(target)
    if model_depth is not None and model_depth != depth:
        raise ValueError(f"depth={depth} given for a ResNet-{model_depth} model")
    file_depth = detect_depth(source)
    if file_depth is not None and file_depth != depth:
        raise FCDInputError(f"{path}: file looks like ResNet-{file_depth}, model is ResNet-{depth}")

    new_state: dict[str, torch.Tensor] = {}
    missing, absent, wrong_shape, adapted = [], [], [], []
    for key, tensor in target.items():
        if key.startswith(_NOT_RELEASED):
            missing.append(key)
            continue
        if key not in source:
            # Files saved before BatchNorm counted batches lack num_batches_tracked; harmless.
            (missing if key.endswith("num_batches_tracked") else absent).append(key)
            continue
        value = source[key]
        if key == "conv1.weight" and value.shape != tensor.shape and _conv1_adaptable(value, tensor):
            channels = tensor.shape[1]
            value = value.repeat(1, channels, 1, 1, 1) / channels
            adapted.append(key)
        if value.shape != tensor.shape:
            wrong_shape.append(f"{key} {tuple(value.shape)} vs {tuple(tensor.shape)}")
            continue
        new_state[key] = value.to(dtype=tensor.dtype)
    if absent:
        raise FCDInputError(f"{path}: missing backbone tensors for ResNet-{depth}: {_short_list(absent)}")
    if wrong_shape:
        raise FCDInputError(f"{path}: backbone tensors of the wrong shape (file vs model): {_short_list(wrong_shape)}")
    model.load_state_dict(new_state, strict=False)
    unexpected = [k for k in source if k not in target or k.startswith(_NOT_RELEASED)]
    return LoadReport(
        loaded=list(new_state), missing=missing, unexpected=unexpected, source=str(path), adapted=adapted
    )


def _conv1_adaptable(value: torch.Tensor, tensor: torch.Tensor) -> bool:
    """A 1-channel conv1 kernel that can be spread over the model's input channels."""
    return value.ndim == 5 and value.shape[1] == 1 and value.shape[0] == tensor.shape[0] and value.shape[2:] == tensor.shape[2:]


def save_medicalnet_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s backbone as a file in the released MedicalNet layout.

    ``{"state_dict": {"module.<key>": tensor}}`` without ``fc`` (and, like the release,
    without ``conv_seg``). Used by tests and to convert our own pre-trained backbones;
    written atomically.

    Example:
        >>> from FCDDetectLib.networks.resnets import build_resnet
        >>> save_medicalnet_checkpoint(build_resnet(18), "resnet_18.pth")  # doctest: +SKIP
        PosixPath('resnet_18.pth')
    """
    path = Path(path)
    state = {
        _PREFIX + k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if not k.startswith(_NOT_RELEASED)
    }
    write_atomic(path, lambda tmp: torch.save({"state_dict": state}, tmp))
    return path
