"""The range of a seed, checked once for every place that takes one (``fcd synth``, ``train``, ``demo``).

Training seeds numpy's legacy generator (``np.random.seed``), which takes 0 .. 2**32 - 1;
torch and Python's ``random`` take more, numpy's ``default_rng`` takes any non-negative
integer. One range for all keeps a seed that works in one command working in the others.

Example:
    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    FCDDetectLib.errors.FCDInputError: --seed -1: expected an integer from 0 to 4294967295
"""

from __future__ import annotations

from typing import Any

from FCDDetectLib.errors import FCDInputError

SEED_MAX = 2**32 - 1
"""The largest seed: numpy's legacy ``np.random.seed`` (used by training) takes 0 .. 2**32 - 1."""


def check_seed(seed: Any, name: str = "--seed") -> int:
    """``seed`` when it is an integer in 0 .. :data:`SEED_MAX` (not a bool, not a float); else FCDInputError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise FCDInputError(f"{name} {seed!r}: expected an integer from 0 to {SEED_MAX}")
    return seed
