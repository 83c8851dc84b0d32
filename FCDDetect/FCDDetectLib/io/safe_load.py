"""The one place where files of tensors are read: ``torch.load(..., weights_only=True)``.

Bundles, checkpoints, best-epoch weights and MedicalNet files are untrusted input: a
run folder on a shared disk or a bundle from a colleague may have been replaced by a
pickle whose ``__reduce__`` runs code. torch's ``weights_only=True`` unpickler only
rebuilds tensors, ``dict``/``list``/``tuple``/``set``, ``str``/``bytes``, numbers,
``bool`` and ``None`` (plus ``OrderedDict`` and torch's own storage types); anything
else is refused before any of it runs. We add no safe globals: our checkpoints store
RNG states as tensors and lists, so nothing else is ever needed.

A refusal or a damaged file becomes one :class:`~FCDDetectLib.errors.FCDInputError`
line naming the file. torch's own message is not quoted: it suggests retrying with
``weights_only=False``, which is exactly what must not be done with such a file.

Example:
    >>> state = load_tensors("model.fcdbundle/weights.pt", "model weights")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

from FCDDetectLib.errors import FCDInputError

__all__ = ["UnsafeFileError", "load_tensors"]


class UnsafeFileError(FCDInputError):
    """The file holds Python objects other than tensors and plain values; it was not unpickled."""


def _reason(error: BaseException) -> str:
    """A short cause from torch's message, without any advice about ``weights_only``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if "weights_only" not in line and "pickle" not in line.lower()]
    return lines[0][:160] if lines else type(error).__name__


def load_tensors(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    ``what`` names the content in messages ("model weights", "training checkpoint").

    Raises:
        UnsafeFileError: the file needs Python objects beyond tensors and plain values
            (e.g. a planted ``__reduce__``): nothing of it was executed.
        FCDInputError: missing, truncated or otherwise unreadable file.

    Example:
        >>> load_tensors("fold-0/best-3.pt", "best-epoch weights")  # doctest: +SKIP
    """
    import torch

    if not os.path.isfile(path):
        raise FCDInputError(f"{path}: {what} file not found")
    try:
        with warnings.catch_warnings():
            # legacy (non-zip) files make torch warn about its format; the refusal below says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Weights only load failed" in text and "global" in text.lower():  # a class/function to call
            raise UnsafeFileError(
                f"{path}: refused to load {what}: the file holds Python objects other than tensors and "
                "plain values (it could run code); nothing of it was executed. Replace it with a file "
                "you trust"
            ) from None
        if "Weights only load failed" in text:  # an opcode it does not rebuild: garbage, or a raw pickle
            raise UnsafeFileError(
                f"{path}: refused to load {what}: truncated or corrupt, or a pickle of Python objects "
                "other than tensors (it could run code); nothing of it was executed. Replace it with a "
                "file you trust"
            ) from None
        raise FCDInputError(f"{path}: cannot read {what} (truncated or corrupt file): {_reason(error)}") from None
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ... for bad files
        raise FCDInputError(f"{path}: cannot read {what} (truncated or corrupt file): {_reason(error)}") from None
