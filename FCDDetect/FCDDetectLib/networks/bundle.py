"""Model bundles: a trained classifier plus everything needed to run it on new scans.

A bundle is a folder ``NAME.fcdbundle/`` holding

- ``bundle.json``: :class:`BundleMetadata` (architecture, modalities in input-channel
  order, the model grid's spacing and shape, normalisation, classes, threshold,
  provenance and metrics);
- ``weights.pt``: the model's ``state_dict``, read back with ``torch.load(...,
  weights_only=True)`` (no pickled code is ever executed).

Identity: ``bundle.json`` records ``content_sha256``, a SHA-256 over the weights file and the
rest of ``bundle.json`` (:func:`~FCDDetectLib.networks.bundle_metadata.content_digest`), and
``weights_sha256`` of the weights file alone, written by :func:`save_bundle` and checked by
:func:`load_bundle` before the weights are unpickled at all (swapped or damaged weights are
refused naming ``weights.pt``, an edited ``bundle.json`` naming it). Bundles written before it load as
*unverified* (``ModelBundle.verified`` False) with the same digest computed, so results
still name the exact content they came from. Weights holding NaN or Inf are refused.

``head`` says which outputs the model has: ``"none"`` (the paper's classifier) or
``"lesion"`` (the classifier plus a lesion-segmentation decoder,
:mod:`FCDDetectLib.networks.lesion_resnet`). Bundles with a lesion head are written as format 2 (an
older engine refuses them with "update the extension" instead of a weights mismatch);
classifier-only bundles stay format 1, and bundles written before ``head`` existed load as
``head="none"``.

The metadata, its checks and :func:`read_bundle_metadata` live in
:mod:`FCDDetectLib.networks.bundle_metadata` ; this module writes and loads the
weights. Reading the metadata needs only the standard library; torch and MONAI are imported
inside :func:`save_bundle` and :func:`load_bundle`.

Example:
    >>> from FCDDetectLib.networks.bundle import BundleMetadata, load_bundle, read_bundle_metadata, save_bundle
    >>> from FCDDetectLib.networks.resnets import build_resnet
    >>> meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"],
    ...                       target_spacing=[1.5, 1.5, 1.5], target_shape=[128, 128, 128])
    >>> path = save_bundle("demo.fcdbundle", build_resnet(18), meta)  # doctest: +SKIP
    >>> read_bundle_metadata(path).modalities  # doctest: +SKIP
    ['flair']
    >>> load_bundle(path).model.training  # doctest: +SKIP
    False
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import json_text
from FCDDetectLib.io.checksums import file_sha256
from FCDDetectLib.networks.bundle_metadata import (
    BUNDLE_SUFFIX,
    CONTENT_KEY,
    METADATA_FILE,
    WEIGHTS_FILE,
    WEIGHTS_KEY,
    BundleMetadata,
    bundle_dir,
    content_digest_of,
    read_bundle_metadata,
    read_metadata_dict,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; torch is imported lazily
    import torch


@dataclass
class ModelBundle:
    """A loaded bundle: metadata, the model (eval mode, on the requested device), its folder.

    ``content_sha256`` is the bundle's content checksum (its identity in results and resume);
    ``verified`` whether it matched the one ``bundle.json`` records (False: a bundle written
    before checksums, or a model built in memory).
    """

    metadata: BundleMetadata
    model: torch.nn.Module
    path: Path
    content_sha256: str = ""
    verified: bool = False


def _build(metadata: BundleMetadata, state_dict: dict[str, Any]) -> torch.nn.Module:
    """The metadata's network, with the width (and decoder width) of ``state_dict``."""
    from FCDDetectLib.networks.resnets import build_resnet

    arguments = dict(
        in_channels=metadata.in_channels,
        num_classes=len(metadata.class_names),
        geometry=metadata.geometry,
        widen_factor=_widen_factor(state_dict),
    )
    if metadata.has_lesion_head:
        from FCDDetectLib.networks.lesion_resnet import DEFAULT_DECODER_WIDTH, build_lesion_resnet

        lateral = state_dict.get("decoder.lateral.0.weight")
        width = int(lateral.shape[0]) if lateral is not None and lateral.ndim == 5 else DEFAULT_DECODER_WIDTH
        fuse = state_dict.get("decoder.input_fuse.0.weight")  # first-version bundles: fewer channels
        fine = int(fuse.shape[0]) if fuse is not None and fuse.ndim == 5 else None
        return build_lesion_resnet(metadata.depth, decoder_width=width, fine_width=fine, **arguments)
    return build_resnet(metadata.depth, **arguments)


def _all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or Inf in ``tensor``: one float64 sum (NaN or Inf anywhere makes it non-finite), exact check if not.

    A float64 sum of float32 weights cannot overflow, so a finite sum proves every value
    finite; it took 0.12 s against ``isfinite(t).all()``'s 0.16 s for a ResNet-18's weights
    on one core. Only a non-finite sum (a NaN or Inf somewhere, or float64 weights that
    overflow) runs the exact check.

    Example:
        >>> import torch
        >>> _all_finite(torch.ones(3)), _all_finite(torch.tensor([1.0, float("nan")]))
        (True, False)
    """
    import torch

    if bool(torch.isfinite(tensor.sum(dtype=torch.complex128 if tensor.is_complex() else torch.float64))):
        return True
    return bool(torch.isfinite(tensor).all())


def _widen_factor(state_dict: dict[str, Any]) -> float:
    """Width of a network from its conv1 (64 filters = the standard width 1.0)."""
    conv1 = state_dict.get("conv1.weight")
    return conv1.shape[0] / 64 if conv1 is not None and conv1.ndim == 5 else 1.0


def _mismatch(model: torch.nn.Module, state_dict: dict[str, Any]) -> str | None:
    """Why ``state_dict`` does not fit ``model`` (None if it does)."""
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict]
    extra = [k for k in state_dict if k not in target]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(t.shape)}"
        for k, t in target.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(t.shape)
    ]
    for label, items in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            return f"{label}: {', '.join(items[:3])}{more}"
    return None


def _describe(metadata: BundleMetadata) -> str:
    head = ", lesion head" if metadata.has_lesion_head else ""
    return (
        f"ResNet-{metadata.depth} ({metadata.geometry}, {metadata.in_channels} channel(s), "
        f"{len(metadata.class_names)} classes{head})"
    )


def save_bundle(path: str | os.PathLike, model: torch.nn.Module, metadata: BundleMetadata) -> Path:
    """Write ``model`` and ``metadata`` as a bundle folder, atomically; returns its path.

    ``.fcdbundle`` is appended when ``path`` lacks it; an empty ``metadata.name`` becomes
    the folder's stem. Everything is written to a temporary folder beside the target, then
    renamed; an existing bundle is replaced only once the new one is complete (a folder
    that is not a bundle is never overwritten).

    Raises:
        FCDInputError: the weights do not fit the metadata's architecture, or ``path`` is
            an existing file or non-bundle folder.

    Example:
        >>> save_bundle("out/flair-r18", model, meta)  # doctest: +SKIP
        PosixPath('out/flair-r18.fcdbundle')
    """
    import torch

    path = Path(path)
    if not path.name.endswith(BUNDLE_SUFFIX):
        path = path.with_name(path.name + BUNDLE_SUFFIX)
    if path.exists() and not (path.is_dir() and (path / METADATA_FILE).is_file()):
        raise FCDInputError(f"{path}: exists and is not a model bundle; refusing to overwrite it")
    if not metadata.name:
        metadata = dataclasses.replace(metadata, name=path.name[: -len(BUNDLE_SUFFIX)])
    meta_dict = metadata.to_dict()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    reason = _mismatch(_build(metadata, state), state)
    if reason:
        raise FCDInputError(f"{path}: model weights do not match {_describe(metadata)}: {reason}")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.tmp-", dir=path.parent))
    old = None
    try:
        torch.save(state, tmp / WEIGHTS_FILE)
        meta_dict[WEIGHTS_KEY] = file_sha256(tmp / WEIGHTS_FILE)
        meta_dict[CONTENT_KEY] = content_digest_of(meta_dict[WEIGHTS_KEY], meta_dict)
        (tmp / METADATA_FILE).write_text(json_text(meta_dict) + "\n", encoding="utf-8")
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.old-", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:
                os.replace(old / path.name, path)  # put the previous bundle back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_bundle(path: str | os.PathLike, device: str = "cpu") -> ModelBundle:
    """Read a bundle and rebuild its model (eval mode) on ``device`` ("cpu", "cuda", "auto").

    Raises:
        FCDInputError: everything :func:`read_bundle_metadata` refuses, checksums that do not
            match (checked before the weights are read), a missing, truncated or corrupt ``weights.pt``, weights that
            do not fit the metadata or hold NaN/Inf.

    Example:
        >>> bundle = load_bundle("models/flair-r18.fcdbundle")  # doctest: +SKIP
        >>> bundle.model(x).softmax(1)[0, 1]  # doctest: +SKIP
    """
    import torch

    from FCDDetectLib.io.safe_load import load_tensors

    metadata = read_bundle_metadata(path)
    folder = bundle_dir(path)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FCDInputError(f"{weights_path}: missing; {folder} is not a complete model bundle")
    weights_digest = file_sha256(weights_path)
    if metadata.weights_sha256 is not None and weights_digest != metadata.weights_sha256:
        raise FCDInputError(
            f"{weights_path}: not the weights this bundle was written with (SHA-256 {weights_digest[:12]}..., "
            f"{METADATA_FILE} records {metadata.weights_sha256[:12]}...: swapped, edited or damaged); nothing of it "
            "was loaded. Get the bundle again from its source")
    digest = content_digest_of(weights_digest, read_metadata_dict(folder))
    if metadata.content_sha256 is not None and digest != metadata.content_sha256:
        raise FCDInputError(
            f"{folder / METADATA_FILE}: changed after the bundle was written (content checksum mismatch: recorded "
            f"{metadata.content_sha256[:12]}..., found {digest[:12]}...); get the bundle again from its source")
    state = load_tensors(weights_path, "model weights")  # weights_only=True; one-line errors
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise FCDInputError(f"{weights_path}: not a state_dict (a mapping of names to tensors)")
    for name, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not _all_finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            raise FCDInputError(f"{weights_path}: {name} holds {bad} NaN or infinite value(s); the model is broken "
                                "(a diverged training?) and cannot give a probability")
    # Built on the meta device (no memory, no random initialisation: 0.28 s of a ResNet-18's load
    # on 2 cores, only to be overwritten), then the checked tensors become its parameters.
    with torch.device("meta"):
        model = _build(metadata, state)
    reason = _mismatch(model, state)
    if reason:
        raise FCDInputError(f"{weights_path}: weights do not match {_describe(metadata)}: {reason}")
    target = model.state_dict()
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()}, assign=True)
    left_on_meta = [name for name, value in [*model.named_parameters(), *model.named_buffers()] if value.is_meta]
    if left_on_meta:  # a tensor the state_dict does not carry (none in our networks): build for real
        model = _build(metadata, state)
        model.load_state_dict(state)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model.to(device).eval()
    except (RuntimeError, ValueError, AssertionError) as error:  # unknown device, no CUDA build...
        raise FCDInputError(f"device {device!r} is not available: {str(error).splitlines()[0]}") from None
    return ModelBundle(metadata=metadata, model=model, path=folder, content_sha256=digest,
                       verified=metadata.content_sha256 is not None)
