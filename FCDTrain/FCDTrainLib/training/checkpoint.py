"""A fold's training checkpoint (``fold-K/checkpoint.pt``): written atomically, read as untrusted.

A run folder may sit on a shared disk or come from a colleague, so its checkpoint is read
with ``weights_only=True`` (:func:`FCDDetectLib.io.safe_load.load_tensors`). Everything the
trainer stores is therefore tensors and plain values: the RNG states are kept as a
tensor (torch, numpy's MT19937 keys) and lists/ints/floats (Python's ``random``), never
as numpy objects that would need extra allowed globals.

What happens on resume (our choice, see docs/reliability.md):

- a file holding anything but tensors and plain values (e.g. a planted ``__reduce__``)
  is refused with one error line naming it; nothing of it runs and it is left in place;
- a truncated or corrupt checkpoint (only possible through something outside our atomic
  writes: a full disk copied back, a hand edit) is discarded with a ``warning:`` line and
  the fold restarts from epoch 1. Epochs are seeded by (seed, fold, epoch), so the
  restarted fold computes what an uninterrupted one would; only time is lost.

Example:
    >>> save_checkpoint(Path("run/fold-0/checkpoint.pt"), {"model": model.state_dict(), ...})  # doctest: +SKIP
    >>> checkpoint = load_checkpoint(Path("run/fold-0"), fold=0, warn=print)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_atomic
from FCDDetectLib.io.safe_load import UnsafeFileError, load_tensors

from FCDTrainLib.run_folder.layout import CHECKPOINT_NAME

_REQUIRED = ("model", "optimizer", "scheduler", "state", "rng")


def rng_states() -> dict[str, Any]:
    """torch, numpy and Python RNG states as tensors and plain values (loadable with weights_only=True)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [int(version), [int(v) for v in internal], gauss_next],
    }


def restore_rng(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), int(numpy_state["pos"]),
                         int(numpy_state["has_gauss"]), float(numpy_state["cached_gaussian"])))
    version, internal, gauss_next = states["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))


def save_tensors(path: Path, payload: Any) -> None:
    """``torch.save`` of ``payload`` to ``path``, atomically, through an open file.

    Given a file name, torch's writer reports a full disk as ``RuntimeError("... unexpected pos
    ...")``; through a Python file object the ``OSError`` (``ENOSPC``) is raised by our file, and
    torch's writer, closing, hides it behind a ``RuntimeError`` again: that ``OSError`` is raised
    instead, so the command can say what happened (:mod:`FCDTrainLib.run_folder.write_guard`).
    """
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            try:
                torch.save(payload, handle)
            except RuntimeError as error:
                cause = error.__context__
                while cause is not None and not isinstance(cause, OSError):
                    cause = cause.__context__
                if cause is None:
                    raise
                raise cause from None

    write_atomic(path, write)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (model/optimizer/scheduler state dicts, trainer state, rng) atomically."""
    save_tensors(path, payload)


def load_checkpoint(fold_dir: Path, fold: int, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The fold's last committed checkpoint, or None (none yet, or a damaged one discarded).

    Raises:
        FCDInputError: the file holds foreign pickle content (refused, never executed).
    """
    path = Path(fold_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        checkpoint = load_tensors(path, "training checkpoint")
    except UnsafeFileError as error:
        raise FCDInputError(f"{error}; to restart fold {fold} from its first epoch, delete it") from None
    except FCDInputError as error:
        checkpoint = None
        reason = str(error)
    else:
        reason = f"{path}: not a training checkpoint of this trainer (missing parts)"
        if isinstance(checkpoint, dict) and all(key in checkpoint for key in _REQUIRED):
            return checkpoint
    path.unlink(missing_ok=True)
    warn(f"{reason}; discarded, fold {fold} restarts from epoch 1 (same seeds: same result, more time)")
    return None


def load_best(fold_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    """The best-epoch weights ``fold-K/best-E.pt`` the checkpoint points to."""
    path = Path(fold_dir) / f"best-{epoch}.pt"
    state = load_tensors(path, "best-epoch weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FCDInputError(f"{path}: not a state_dict (a mapping of names to tensors)")
    return state
