"""One writer per run folder: a lock file holding the writer's pid, host and start time.

``fcd train`` and ``fcd experiment`` take the lock of their ``--out`` folder for as long
as they run, so a second writer (a second Start in Slicer after a restart, or a shell
command beside the panel) is refused with a clear error instead of two processes writing
one run. A lock left by a process that no longer exists on this machine is *stale* and is
taken over; a lock of another host is never taken over (its pid cannot be checked here).

Scopes: the whole run (``run.lock``) or one fold (``fold-N.lock``, for ``fcd train
--fold N``), so folds of one run can still be trained in parallel. A whole-run writer
conflicts with every fold writer, a fold writer with the whole-run writer and the same fold.

A lock file is a run file, so it is read as untrusted input: at most :data:`MAX_LOCK_BYTES`.
A file cut short by a kill while it was written (empty, or not JSON yet) is a garbled lock:
stale once :data:`_FRESH_SECONDS` old. Anything else that is not ``{"pid": int > 0, "host":
str, "started": number, ...}`` (another type, a nesting our writer never makes, a folder in
its place) cannot come from a writer of ours and is refused with an error naming it.

Hand-written (about 100 lines) because the well-kept lock libraries (filelock, portalocker)
lock by open file handle, which says nothing about *which* process holds a run, and are
not among the packages Slicer installs.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     holder(folder)["pid"] == os.getpid()
    True
    >>> holder(folder) is None
    True
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.stale_files import pid_alive  # the one liveness check (stale temp files, locks)

from FCDTrainLib.run_folder.layout import fold_name

LOCK_DIR = ".lock"
MAX_LOCK_BYTES = 64 << 10
"""Largest lock file read (64 kB): ours are about 100 bytes (pid, host name, time, scope)."""
_FRESH_SECONDS = 10.0  # an empty lock file younger than this is being written, not stale


def _lock_name(fold: int | None) -> str:
    return "run.lock" if fold is None else f"{fold_name(int(fold))}.lock"


def _damaged(path: Path, reason: str) -> FCDInputError:
    return FCDInputError(f"{path}: damaged run lock ({reason}); if no fcd process is writing "
                         f"{path.parent.parent}, delete it")


def _read(path: Path) -> dict[str, Any] | None:
    """The lock's content; None when there is no lock, ``{}`` when it is garbled (a write cut short).

    Raises:
        FCDInputError: the lock is damaged in a way no writer of ours can leave (see the module docstring).
    """
    try:
        if path.is_dir() or (path.exists() and not path.is_file()):
            raise _damaged(path, "not a file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_LOCK_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    if len(raw) > MAX_LOCK_BYTES:
        raise _damaged(path, f"larger than {MAX_LOCK_BYTES:,} bytes")
    try:
        info = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _damaged(path, "nested too deeply") from None
    except ValueError:  # empty or cut short by a kill during the write (json.JSONDecodeError, UnicodeDecodeError)
        return {}
    if not (isinstance(info, dict) and type(info.get("pid")) is int and info["pid"] > 0
            and isinstance(info.get("host"), str)
            and isinstance(info.get("started"), (int, float)) and not isinstance(info.get("started"), bool)):
        raise _damaged(path, 'expected {"pid": a positive integer, "host": a name, "started": a time}')
    return info


def _is_stale(path: Path, info: dict[str, Any]) -> bool:
    if not info:  # empty or garbled: stale once old enough
        try:
            return time.time() - path.stat().st_mtime > _FRESH_SECONDS
        except FileNotFoundError:
            return True
    if info.get("host") != socket.gethostname():
        return False
    return not pid_alive(info["pid"])


def holders(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Live locks of ``folder`` by file name (stale ones are left out)."""
    lock_dir = Path(folder) / LOCK_DIR
    if not lock_dir.is_dir():
        if os.path.lexists(lock_dir):
            raise FCDInputError(f"{lock_dir}: not a folder (the run's locks live there); if no fcd process is "
                                f"writing {folder}, delete it")
        return {}
    out = {}
    for path in sorted(lock_dir.glob("*.lock")):
        info = _read(path)
        if info is not None and not _is_stale(path, info):
            out[path.name] = info
    return out


def holder(folder: str | Path, fold: int | None = None) -> dict[str, Any] | None:
    """The live lock that would refuse a writer of ``fold`` (None: the folder is free)."""
    live = holders(folder)
    names = list(live) if fold is None else ["run.lock", _lock_name(fold)]
    return next((live[name] for name in names if name in live), None)


def describe(info: dict[str, Any]) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} since {when}"


class RunLock:
    """Context manager holding the lock of a run folder (or of one fold of it)."""

    def __init__(self, folder: str | Path, fold: int | None = None) -> None:
        self.folder = Path(folder)
        self.fold = fold
        self.path = self.folder / LOCK_DIR / _lock_name(fold)
        self._created: list[Path] = []
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                     "scope": "run" if fold is None else f"fold {fold}"}

    def acquire(self) -> RunLock:
        """Take the lock; raises FCDInputError naming the holder when another writer has it."""
        busy = holder(self.folder, self.fold)
        if busy is not None and busy.get("pid") != os.getpid():
            raise FCDInputError(f"{self.folder}: this run folder is being written by {describe(busy)}; "
                                "stop that process first (or wait for it to end)")
        self._created = [p for p in (*reversed(self.path.parent.parents), self.path.parent) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._take_over_if_stale()
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = _read(self.path) or {}
                raise FCDInputError(f"{self.folder}: this run folder is being written by {describe(info)}") from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(self.info, out)
            except BaseException:  # a full disk: no half-written lock stays
                self.path.unlink(missing_ok=True)
                raise
        except BaseException:
            self._remove_created()
            raise
        return self

    def _take_over_if_stale(self) -> None:
        """Move a stale lock aside; only the process whose rename moved *that* stale file wins."""
        info = _read(self.path)
        if info is None or not _is_stale(self.path, info):
            return
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        if _read(aside) != info:  # another process took it over between our read and rename
            try:
                os.link(aside, self.path)  # put its fresh lock back (fails if one is there)
            except OSError:
                pass
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        try:
            info = _read(self.path)
        except FCDInputError:  # replaced by something else while we held it: not ours to remove
            info = None
        if info and info.get("pid") == self.info["pid"] and info.get("started") == self.info["started"]:
            self.path.unlink(missing_ok=True)
        self._remove_created()

    def _remove_created(self) -> None:
        """Remove the lock folder and the folders :meth:`acquire` created, when empty (innermost first)."""
        for folder in (self.path.parent, *reversed(self._created)):  # leave no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
