"""The names our writers give their temporary files and folders, each with the writer's pid.

The pid in the name tells a killed writer's leftover from a live writer's
(:func:`~FCDDetectLib.io.stale_files.remove_stale`): ``write_atomic``'s files
``.NAME.PID.<8 random>.tmp[.ext]``, ``save_bundle``'s folders ``.NAME.PID.tmp-<8>`` /
``.NAME.PID.old-<8>``, output sets' staging folders ``.fcd-staging-PID-<8>``
(:data:`STAGING_PREFIX`) and the write probes of output folder checks
``.fcd-write-test-PID-<8>`` (:data:`PROBE_PREFIX`). :data:`TEMP_NAME` matches them all.

Example:
    >>> bool(TEMP_NAME.match(".fcd-staging-4242-k2j3h4g5")), bool(STAGING_NAME.match(".fcd-staging-x"))
    (True, False)
"""

from __future__ import annotations

import os
import re

__all__ = ["PROBE_PREFIX", "STAGING_NAME", "STAGING_PREFIX", "TEMP_NAME", "pid_prefix"]

STAGING_PREFIX = ".fcd-staging-"
PROBE_PREFIX = ".fcd-write-test-"


def pid_prefix(prefix: str) -> str:
    """``prefix`` followed by this process's pid and a dash: the start of a temporary name of ours.

    Example:
        >>> pid_prefix(STAGING_PREFIX) == f".fcd-staging-{os.getpid()}-"
        True
    """
    return f"{prefix}{os.getpid()}-"


TEMP_NAME = re.compile(
    r"^\.(?:(?P<target>.+)\.(?P<pid>\d+)\.(?:[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9.]+)?|(?P<kind>tmp|old)-[a-z0-9_]{8})"
    r"|fcd-(?:staging|write-test)-(?P<pid2>\d+)-[a-z0-9_]{8})$")
"""Every temporary name of the module docstring; groups ``pid`` or ``pid2`` (the writer), ``target`` and ``kind``."""
STAGING_NAME = re.compile(r"^\.fcd-staging-\d+-[a-z0-9_]{8}$")
"""A staging folder's name as :class:`~FCDDetectLib.io.output_set.OutputSet` makes it (checked in journals)."""
