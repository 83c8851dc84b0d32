"""SIGTERM as an exception, so that an interrupted writer runs its clean-up like after Ctrl-C.

By default SIGTERM (what ``kill``, ``timeout``, a job scheduler and the Slicer modules' Stop
send first) ends Python at once, like SIGKILL: temporary files stay for the next run to
remove. :func:`raise_on_sigterm` turns it into :class:`Terminated`, a ``KeyboardInterrupt``,
so every ``except KeyboardInterrupt`` / ``finally`` / ``__exit__`` that handles Ctrl-C handles
SIGTERM the same way. ``fcd`` installs it before running a command.

Writers must then be correct under both: :class:`~FCDDetectLib.io.output_set.OutputSet` leaves
a written commit journal for the next writer instead of undoing half a commit.

Example:
    >>> import os, signal
    >>> previous = raise_on_sigterm()
    >>> try:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     import time; time.sleep(1)
    ... except Terminated:
    ...     print("terminated")
    terminated
    >>> _ = signal.signal(signal.SIGTERM, previous)
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["Terminated", "raise_on_sigterm"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (after :func:`raise_on_sigterm`)."""


def _raise(signum: int, frame: Any) -> None:
    raise Terminated(f"terminated by signal {signum}")


def raise_on_sigterm() -> Any:
    """Install the SIGTERM -> :class:`Terminated` handler; returns the previous handler.

    Only the main thread can install signal handlers: elsewhere (a Slicer worker thread)
    nothing changes and the current handler is returned.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return signal.getsignal(signal.SIGTERM) if hasattr(signal, "SIGTERM") else None
    return signal.signal(signal.SIGTERM, _raise)
