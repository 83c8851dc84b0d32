"""Named points of an output set's commit, where tests interrupt or pause the writer.

Tests (and ``benchmarks/probe_hostile.py``) interrupt or pause a writer at named points
through environment variables: ``FCD_TEST_KILL_AT=renamed:heatmap.nii.gz`` sends a signal
to the process right after that rename (``FCD_TEST_KILL_SIGNAL``: ``SIGKILL``, the default,
``SIGINT`` or ``SIGTERM``); ``FCD_TEST_PAUSE_AT=journal`` prints ``paused at journal`` on
stderr and sleeps (``FCD_TEST_PAUSE_SECONDS``, 60 by default). Points: ``staged``,
``journal`` (:class:`~FCDDetectLib.io.output_set.OutputSet`), ``renamed:<file>``,
``committed`` (:func:`~FCDDetectLib.io.commit_journal.roll_forward`). Both variables take
several points separated by commas; unset, :func:`at_point` does nothing.

Example:
    >>> at_point("staged")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
import sys
import time

__all__ = ["at_point"]

_TEST_SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM")


def at_point(point: str) -> None:
    """Test hook: signal or pause this process at a named point (see the module docstring).

    Example:
        >>> at_point(f"renamed:{name}")  # doctest: +SKIP
    """
    if point in os.environ.get("FCD_TEST_KILL_AT", "").split(","):
        name = os.environ.get("FCD_TEST_KILL_SIGNAL", "SIGKILL").upper()
        os.kill(os.getpid(), getattr(signal, name if name in _TEST_SIGNALS else "SIGKILL"))
        time.sleep(0.5)  # a handled signal (SIGINT, SIGTERM) raises here, in the main thread
    if point in os.environ.get("FCD_TEST_PAUSE_AT", "").split(","):
        print(f"paused at {point}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("FCD_TEST_PAUSE_SECONDS", "60")))
