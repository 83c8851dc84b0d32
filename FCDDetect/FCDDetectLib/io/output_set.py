"""Output folders: checked before any work, and a set of files committed as one unit.

:func:`check_output_folder` refuses, with one :class:`~FCDDetectLib.errors.FCDInputError`
line, an output folder that cannot be written (a file, a read-only place, a folder where
an output file goes). Every command calls it before computing anything.

:class:`OutputSet` writes the files of one result (``fcd detect``: ``heatmap.nii.gz``,
``result.json`` and whatever else a detection adds) into a private staging folder inside
the output folder, then commits them together, write-ahead-log style:

1. every file is written and fsynced in ``OUT/.fcd-staging-XXXX/``; the manifest
   (``result.json``) gets ``"files": {name: sha256}`` of the other files;
2. the commit journal ``OUT/.fcd-commit.json`` (staging name, files, files of the old set
   to remove) is written atomically: this is the commit point;
3. the files are renamed into ``OUT`` (the manifest last), files of the previous set
   that the new one lacks are removed, the journal and the staging folder go.

A kill before step 2 leaves the old set untouched (the staging folder is stale and the
next writer removes it); a kill after it leaves a journal that the next writer or reader
(:meth:`OutputSet.__enter__`, :func:`read_output_set`) rolls forward before anything
else. So after recovery a folder holds the old set or the new set, never a mix, and
``result.json``'s checksums let any reader verify it. Writers of one folder are
serialised by an advisory lock on the folder (``fcntl.flock``; none on Windows).

Tests (and ``benchmarks/probe_hostile.py``) kill or pause a writer at named points
through environment variables: ``FCD_TEST_KILL_AT=renamed:heatmap.nii.gz`` sends SIGKILL
to the process right after that rename; ``FCD_TEST_PAUSE_AT=journal`` prints
``paused at journal`` on stderr and sleeps. Points: ``staged``, ``journal``,
``renamed:<file>``, ``committed``.

Example:
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> with OutputSet(out) as staged:
    ...     _ = (staged.folder / "notes.txt").write_text("hello")
    ...     staged.manifest = {"probability": 0.9}
    >>> sorted(p.name for p in out.iterdir())
    ['notes.txt', 'result.json']
    >>> read_output_set(out)["files"]["notes.txt"][:8]
    '2cf24dba'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

__all__ = ["JOURNAL_NAME", "MANIFEST_NAME", "OutputSet", "check_output_folder", "clean_stale", "read_output_set",
           "remove_stale"]

MANIFEST_NAME = "result.json"
JOURNAL_NAME = ".fcd-commit.json"
STAGING_PREFIX = ".fcd-staging-"
PROBE_PREFIX = ".fcd-write-test-"


def _pid_prefix(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-"
# Temporary names of our writers, each with the writer's pid: write_atomic's files
# ".NAME.PID.<8 random>.tmp[.ext]", save_bundle's folders ".NAME.PID.tmp-<8>" / ".NAME.PID.old-<8>",
# staging folders ".fcd-staging-PID-<8>" and write probes ".fcd-write-test-PID-<8>".
_TEMP_NAME = re.compile(
    r"^\.(?:(?P<target>.+)\.(?P<pid>\d+)\.(?:[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9.]+)?|(?P<kind>tmp|old)-[a-z0-9_]{8})"
    r"|fcd-(?:staging|write-test)-(?P<pid2>\d+)-[a-z0-9_]{8})$")
_OLD_FORMAT_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")  # before the pid was added
_OLD_FORMAT_AGE_S = 3600.0


def _hook(point: str) -> None:
    """Test hook: kill or pause this process at a named point (see the module docstring)."""
    if point in os.environ.get("FCD_TEST_KILL_AT", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    if point in os.environ.get("FCD_TEST_PAUSE_AT", "").split(","):
        print(f"paused at {point}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("FCD_TEST_PAUSE_SECONDS", "60")))


def check_output_folder(path: str | os.PathLike, files: Iterable[str] = (), option: str = "--out") -> Path:
    """Refuse an output folder that cannot be written; call it before computing anything.

    Checks: ``path`` is not a file; the folder (or, when it does not exist yet, its first
    existing parent) accepts a new file (a real write probe, so read-only mounts and
    permissions are seen as they are, also for root); none of ``files`` exists there as
    a folder. Nothing is created. Returns ``path`` as a Path.

    Example:
        >>> check_output_folder("/proc/version", option="--out")  # doctest: +SKIP
        FCDInputError: --out /proc/version: is a file, expected a folder
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise FCDInputError(f"{option} {folder}: is a file, expected a folder")
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise FCDInputError(f"{option} {folder}: {existing} is a file, so the folder cannot be created")
    try:
        fd, probe = tempfile.mkstemp(prefix=_pid_prefix(PROBE_PREFIX), dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise FCDInputError(
            f"{option} {folder}: cannot write into {existing} ({error.strerror or type(error).__name__})"
        ) from None
    for name in files:
        target = folder / name
        if target.is_dir():
            raise FCDInputError(f"{target}: is a folder where the output file {name} goes; remove or rename it")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _write_journal(path: Path, journal: dict[str, Any]) -> None:
    from FCDDetectLib.io.atomic_files import write_json_atomic

    write_json_atomic(path, journal)


def _roll_forward(out: Path, journal: dict[str, Any]) -> None:
    """Finish a commit described by ``journal`` (idempotent: a rename already done is skipped)."""
    staging = out / str(journal.get("staging", ""))
    names = [n for n in journal.get("files", []) if _plain_name(n)]
    for name in names:
        source = staging / name
        if source.is_file():
            os.replace(source, out / name)
            _hook(f"renamed:{name}")
    for name in journal.get("remove", []):
        if _plain_name(name) and name not in names:
            (out / name).unlink(missing_ok=True)
    _fsync_dir(out)
    (out / JOURNAL_NAME).unlink(missing_ok=True)
    _hook("committed")
    if _plain_name(journal.get("staging")) and str(journal["staging"]).startswith(STAGING_PREFIX):
        shutil.rmtree(staging, ignore_errors=True)


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
    return True


def remove_stale(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files and folders that killed writers (dead pids) left in ``folder``.

    A ``save_bundle`` killed between its two renames left the previous bundle in its
    ``.old-`` folder: it is put back when the bundle itself is missing. Live writers'
    files (pid still running on this machine) are kept. Returns the names removed.

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
        match = _TEMP_NAME.match(name)
        if match:
            pid = int(match.group("pid") or match.group("pid2"))
            if pid_alive(pid):
                continue
            if match.group("kind") == "old":
                target = folder / match.group("target")
                inner = entry / match.group("target")
                if not target.exists() and inner.is_dir():
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

    A commit journal is rolled forward, then :func:`remove_stale` runs. Call it holding the
    folder's lock (:class:`OutputSet` and :func:`read_output_set` do).
    """
    out = Path(out)
    done: list[str] = []
    journal_path = out / JOURNAL_NAME
    if journal_path.is_file():
        journal = _read_json(journal_path)
        if isinstance(journal, dict):
            _roll_forward(out, journal)
            done.append(f"{JOURNAL_NAME} (rolled forward)")
        else:
            journal_path.unlink(missing_ok=True)
            done.append(JOURNAL_NAME)
    return done + remove_stale(out)


class _FolderLock:
    """Advisory exclusive lock on a folder (flock on its descriptor); a no-op where unsupported."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> _FolderLock:
        try:
            import fcntl
        except ImportError:  # Windows: writers of one folder are not serialised
            return self
        self.fd = os.open(self.folder, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


class OutputSet:
    """Write files into ``staged.folder`` and set ``staged.manifest``; all land in ``out`` together.

    ``manifest`` (a JSON-ready dict) becomes ``OUT/result.json`` with ``"files"`` added.
    On an exception inside the ``with`` block nothing is committed and the staging
    folder is removed; the previous set stays as it was.

    Example:
        >>> with OutputSet("out") as staged:  # doctest: +SKIP
        ...     save_image(staged.folder / "heatmap.nii.gz", heat, affine)
        ...     staged.manifest = result.to_json()
    """

    def __init__(self, out: str | os.PathLike, manifest_name: str = MANIFEST_NAME) -> None:
        self.out = Path(out)
        self.manifest_name = manifest_name
        self.manifest: dict[str, Any] | None = None
        self.folder = self.out  # set to the staging folder on entry
        self._lock = _FolderLock(self.out)

    def __enter__(self) -> OutputSet:
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock.__enter__()
        try:
            clean_stale(self.out)
            self.folder = Path(tempfile.mkdtemp(prefix=_pid_prefix(STAGING_PREFIX), dir=self.out))
        except BaseException:
            self._lock.__exit__()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self.folder != self.out:
                shutil.rmtree(self.folder, ignore_errors=True)
            self._lock.__exit__()

    def _commit(self) -> None:
        from FCDDetectLib.io.atomic_files import write_json_atomic

        if self.manifest is None:
            raise ValueError("OutputSet: no manifest set; nothing to commit")
        names = sorted(p.name for p in self.folder.iterdir() if p.is_file() and p.name != self.manifest_name)
        checksums = {}
        for name in names:
            _fsync_file(self.folder / name)
            checksums[name] = _sha256(self.folder / name)
        write_json_atomic(self.folder / self.manifest_name, {**self.manifest, "files": checksums})
        _fsync_dir(self.folder)
        _hook("staged")
        old = _read_json(self.out / self.manifest_name)
        old_files = old.get("files") if isinstance(old, dict) else None
        remove = sorted(n for n in (old_files or {}) if _plain_name(n) and n not in checksums)
        journal = {"staging": self.folder.name, "files": [*names, self.manifest_name], "remove": remove}
        _write_journal(self.out / JOURNAL_NAME, journal)
        _fsync_dir(self.out)
        _hook("journal")
        _roll_forward(self.out, journal)


def read_output_set(out: str | os.PathLike, manifest_name: str = MANIFEST_NAME) -> dict[str, Any]:
    """Read ``OUT/result.json`` after recovering the folder, and verify every listed file's checksum.

    Raises:
        FCDInputError: no manifest, or a file missing or different from what the manifest lists.

    Example:
        >>> read_output_set("out")["probability"]  # doctest: +SKIP
        0.91
    """
    out = Path(out)
    manifest_path = out / manifest_name
    if out.is_dir() and os.access(out, os.W_OK):
        with _FolderLock(out):
            clean_stale(out)
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise FCDInputError(f"{manifest_path}: missing or not a JSON object")
    for name, digest in (manifest.get("files") or {}).items():
        path = out / name
        if not _plain_name(name) or not path.is_file():
            raise FCDInputError(f"{path}: listed in {manifest_path} but missing")
        if _sha256(path) != digest:
            raise FCDInputError(f"{path}: differs from the checksum in {manifest_path} (changed after writing)")
    return manifest
