"""Supported Slicer versions (one place) and the message shown on an older Slicer.

Slicer 5.10 or newer (Python 3.12) is supported. The engine targets Python 3.10+,
so ``zip(strict=True)`` and ``X | Y`` annotations are fine; Slicer 5.6/5.8 ship Python 3.9
and their ``parameterNodeWrapper.connectGui`` returns no tag (``disconnectGui`` then does
nothing). The module files check the version *before* importing the engine and, on an
older Slicer, load :mod:`.unsupported` instead, which shows this message.

Plain Python that parses on 3.9 and imports nothing (not even the engine), so the check runs
first; importable without Qt for the tests.

Example:
    >>> slicer_version_problem(5, 10) is None
    True
    >>> slicer_version_problem(5, 8)[:38]
    'FCD Detection needs Slicer 5.10 or new'
"""

from __future__ import annotations

MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)


def slicer_version_problem(major: int, minor: int, python: tuple[int, int] | None = None) -> str | None:
    """A message for the user when this Slicer (or its Python) is too old, else None."""
    import sys

    python = python or (sys.version_info.major, sys.version_info.minor)
    if (int(major), int(minor)) >= MINIMUM_SLICER and tuple(python) >= MINIMUM_PYTHON:
        return None
    return (f"FCD Detection needs Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or newer "
            f"(Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]}+); this is Slicer {major}.{minor} with Python "
            f"{python[0]}.{python[1]}. Install a newer Slicer from https://download.slicer.org.")
