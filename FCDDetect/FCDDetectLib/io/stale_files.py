"""What killed writers left in a folder: found by the pid in its name and removed, or finished.

Every temporary name of ours carries its writer's pid (:mod:`FCDDetectLib.io.temp_names`):
:func:`remove_stale` deletes those whose process is gone and keeps a live writer's;
:func:`clean_stale` first rolls an unfinished commit forward (the commit journal,
:mod:`FCDDetectLib.io.commit_journal`), then removes them. :func:`pid_alive` is the one
liveness check (also of run locks).

Example:
    >>> import os
    >>> pid_alive(os.getpid())
    True
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

from FCDDetectLib.io.commit_journal import JOURNAL_NAME, read_journal, roll_forward
from FCDDetectLib.io.temp_names import TEMP_NAME

__all__ = ["clean_stale", "pid_alive", "remove_stale"]

_OLD_FORMAT_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")  # before the pid was added
_OLD_FORMAT_AGE_S = 3600.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (never signals it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # a pid no system has (from a planted name)
        return False
    return True


def remove_stale(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files and folders that killed writers (dead pids) left in ``folder``.

    A ``save_bundle`` killed between its two renames left the previous bundle in its
    ``.old-`` folder: it is put back when the bundle itself is missing. Live writers'
    files (pid still running on this machine) are kept. A link named like a temporary
    file is removed as a link (never followed: we never write links). Returns the names removed.

    Example:
        >>> remove_stale("runs/r18/fold-0")  # doctest: +SKIP
        ['.checkpoint.pt.4242.k2j3h4g5.tmp.pt']
    """
    folder = Path(folder)
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        name = entry.name
        match = TEMP_NAME.match(name)
        if entry.is_symlink():
            if match or _OLD_FORMAT_TMP.match(name):
                entry.unlink(missing_ok=True)
                removed.append(name)
            continue
        if match:
            pid = int(match.group("pid") or match.group("pid2"))
            if pid_alive(pid):
                continue
            if match.group("kind") == "old":
                target = folder / match.group("target")
                inner = entry / match.group("target")
                if not os.path.lexists(target) and inner.is_dir() and not inner.is_symlink():
                    os.replace(inner, target)  # the previous bundle goes back
        elif _OLD_FORMAT_TMP.match(name):
            try:
                if time.time() - entry.stat().st_mtime < _OLD_FORMAT_AGE_S:
                    continue
            except OSError:
                continue
        else:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(name)
    return removed


def clean_stale(out: str | os.PathLike) -> list[str]:
    """Recover ``out`` after a killed writer; returns the names of what was removed or finished.

    A commit journal is checked and rolled forward (a journal that is not ours, or reaches
    outside ``out``, raises FCDInputError naming it and nothing is touched), then
    :func:`remove_stale` runs. Call it holding the folder's lock
    (:class:`~FCDDetectLib.io.output_set.OutputSet` and
    :func:`~FCDDetectLib.io.output_set.read_output_set` do).
    """
    out = Path(out)
    done: list[str] = []
    if os.path.lexists(out / JOURNAL_NAME):
        roll_forward(out, read_journal(out))
        done.append(f"{JOURNAL_NAME} (rolled forward)")
    return done + remove_stale(out)
