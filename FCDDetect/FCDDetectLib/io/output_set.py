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

Interrupted writers: SIGKILL stops a writer where it is. Ctrl-C (SIGINT) and SIGTERM (made
an exception by :func:`~FCDDetectLib.io.interrupts.raise_on_sigterm`) run ``__exit__``: before
the journal exists it removes the staging folder (the old set stays); once the journal
names this writer's staging folder it leaves both for the next writer to finish, exactly as
after a kill (undoing half a commit there would leave a mix). A folder the writer created
and left empty (a refused or failed first write, a full disk) is removed again.

The journal (and the old ``result.json``) are untrusted: a results folder may come from
anyone. Every name read from them must be a plain file name inside ``OUT``, the staging
folder one of ours (``.fcd-staging-PID-XXXXXXXX``, a real folder, no link), every file
moved a regular file; a journal that breaks any of this is refused with one
:class:`~FCDDetectLib.errors.FCDInputError` naming it, before anything is moved or deleted.
Files of the old set are removed only when their content still has the checksum the old
``result.json`` recorded for it (the journal carries it), so a file the user put there or
changed is never deleted.

Tests (and ``benchmarks/probe_hostile.py``) interrupt or pause a writer at named points
through environment variables: ``FCD_TEST_KILL_AT=renamed:heatmap.nii.gz`` sends a signal
to the process right after that rename (``FCD_TEST_KILL_SIGNAL``: ``SIGKILL``, the default,
``SIGINT`` or ``SIGTERM``); ``FCD_TEST_PAUSE_AT=journal`` prints ``paused at journal`` on
stderr and sleeps. Points: ``staged``, ``journal``, ``renamed:<file>``, ``committed``.

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
import stat
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

__all__ = ["JOURNAL_NAME", "MANIFEST_NAME", "OutputSet", "check_output_folder", "clean_stale", "create_folder",
           "file_sha256", "read_output_set", "remove_created", "remove_stale"]

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
_STAGING_NAME = re.compile(r"^\.fcd-staging-\d+-[a-z0-9_]{8}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TEST_SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM")


def _hook(point: str) -> None:
    """Test hook: signal or pause this process at a named point (see the module docstring)."""
    if point in os.environ.get("FCD_TEST_KILL_AT", "").split(","):
        name = os.environ.get("FCD_TEST_KILL_SIGNAL", "SIGKILL").upper()
        os.kill(os.getpid(), getattr(signal, name if name in _TEST_SIGNALS else "SIGKILL"))
        time.sleep(0.5)  # a handled signal (SIGINT, SIGTERM) raises here, in the main thread
    if point in os.environ.get("FCD_TEST_PAUSE_AT", "").split(","):
        print(f"paused at {point}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("FCD_TEST_PAUSE_SECONDS", "60")))


MAX_NAME_BYTES = 255
"""Longest file or folder name (one path component, in bytes) that Linux, macOS and Windows file systems accept."""


def _long_component(path: Path) -> str | None:
    return next((part for part in path.parts if len(os.fsencode(part)) > MAX_NAME_BYTES), None)


def _dangling_link(path: Path) -> Path | None:
    """The first of ``path`` and its parents that is a link leading nowhere (a loop or a missing target)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate) and not os.path.exists(candidate):
            return candidate
    return None


def check_output_folder(path: str | os.PathLike, files: Iterable[str] = (), option: str = "--out") -> Path:
    """Refuse an output folder that cannot be written; call it before computing anything.

    Checks: no name in ``path`` is longer than :data:`MAX_NAME_BYTES`; no part of it is a
    link that leads nowhere (a link loop); ``path`` is not a file; the folder (or, when it
    does not exist yet, its first existing parent) accepts a new file (a real write probe,
    so read-only mounts and permissions are seen as they are, also for root); none of
    ``files`` exists there as a folder; an unfinished commit journal there is one of ours
    (a planted one is refused now, before the work). Nothing is created. Returns ``path`` as a Path.

    Example:
        >>> check_output_folder("/proc/version", option="--out")  # doctest: +SKIP
        FCDInputError: --out /proc/version: is a file, expected a folder
    """
    folder = Path(path)
    long_part = _long_component(folder)
    if long_part is not None:
        raise FCDInputError(f"{option} {str(folder)[:80]}...: the name {long_part[:40]}... is "
                            f"{len(os.fsencode(long_part))} bytes long, over the {MAX_NAME_BYTES} a file system accepts")
    try:
        dangling = _dangling_link(folder)
        if dangling is not None:
            raise FCDInputError(f"{option} {folder}: {dangling} is a link that leads nowhere (a link loop or a "
                                "missing target); give a real folder")
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
        journal = folder / JOURNAL_NAME
        if os.path.lexists(journal):  # an unfinished commit: refused now if it is not ours, not after the work
            if not _regular_file(journal):
                raise _refuse_journal(journal, "is a link or a folder, not a journal")
            _checked_journal(folder, _read_json(journal))
    except OSError as error:  # e.g. a path the system cannot look up at all
        raise FCDInputError(f"{option} {folder}: cannot be used ({error.strerror or type(error).__name__})") from None
    return folder


def create_folder(path: str | os.PathLike) -> list[Path]:
    """Create ``path`` and its missing parents; returns the folders created, outermost first.

    Hand the list to :func:`remove_created` when the work that needed the folder fails, so
    that no empty folder is left behind.

    Example:
        >>> import tempfile, pathlib
        >>> base = pathlib.Path(tempfile.mkdtemp())
        >>> [p.name for p in create_folder(base / "a" / "b")]
        ['a', 'b']
    """
    folder = Path(path)
    missing = []
    candidate = folder
    while not candidate.exists() and candidate.parent != candidate:
        missing.append(candidate)
        candidate = candidate.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_created(created: Iterable[Path]) -> None:
    """Remove the folders of :func:`create_folder` that are still empty, innermost first."""
    for folder in reversed(list(created)):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (something was written) or gone: keep it and its parents


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (hex).

    Example:
        >>> import tempfile, pathlib
        >>> note = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> _ = note.write_text("hello")
        >>> file_sha256(note)[:8]
        '2cf24dba'
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
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
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and len(os.fsencode(name)) <= MAX_NAME_BYTES)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None


def _regular_file(path: Path) -> bool:
    """A regular file itself (a link, even to a file, is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _write_journal(path: Path, journal: dict[str, Any]) -> None:
    from FCDDetectLib.io.atomic_files import write_json_atomic

    write_json_atomic(path, journal)


def _refuse_journal(path: Path, reason: str) -> FCDInputError:
    return FCDInputError(
        f"{path}: {reason}; refused, nothing was moved or deleted (fcd never writes such a journal: "
        f"check where this folder comes from, then delete {JOURNAL_NAME} to use the folder)")


def _checked_journal(out: Path, journal: Any) -> tuple[Path, list[str], dict[str, str]]:
    """The staging folder, the files to move and the files to remove (name -> sha256) of a journal.

    Raises FCDInputError naming the journal for anything that could reach outside ``out`` or
    is not what :class:`OutputSet` writes: nothing has been touched then.
    """
    path = out / JOURNAL_NAME
    if not isinstance(journal, dict):
        raise _refuse_journal(path, "not a JSON object (damaged or not written by fcd)")
    staging_name = journal.get("staging")
    if not isinstance(staging_name, str) or not _STAGING_NAME.match(staging_name):
        raise _refuse_journal(path, f"its staging folder {str(staging_name)[:80]!r} is not one of fcd's "
                                    f"(.fcd-staging-PID-XXXXXXXX inside {out})")
    staging = out / staging_name
    if os.path.lexists(staging) and (staging.is_symlink() or not staging.is_dir()):
        raise _refuse_journal(path, f"{staging_name} is a link or a file, not a staging folder")
    names = journal.get("files")
    if not isinstance(names, list) or not all(_plain_name(n) for n in names):
        raise _refuse_journal(path, "its 'files' must be plain file names inside the folder (no '..', '/', links)")
    for name in names:
        if name == JOURNAL_NAME or name.startswith(STAGING_PREFIX):
            raise _refuse_journal(path, f"its 'files' names {name!r}, a file of the commit itself")
        source = staging / name
        if os.path.lexists(source) and not _regular_file(source):
            raise _refuse_journal(path, f"{staging_name}/{name} is a link or a folder, not a file it wrote")
        target = out / name
        if os.path.lexists(target) and not target.is_symlink() and target.is_dir():
            raise _refuse_journal(path, f"{name} is a folder in {out}; the commit cannot put a file there")
    remove = journal.get("remove", {})
    if isinstance(remove, list):  # journals of engines before issue 25: no checksums, so nothing is removed
        remove = {}
    if not isinstance(remove, dict) or not all(
            _plain_name(n) and isinstance(d, str) and _SHA256.match(d) for n, d in remove.items()):
        raise _refuse_journal(path, "its 'remove' must map plain file names inside the folder to SHA-256 checksums")
    return staging, list(names), {n: d for n, d in remove.items() if n not in names and n != JOURNAL_NAME}


def _roll_forward(out: Path, journal: Any) -> None:
    """Finish a commit described by ``journal`` (idempotent: a rename already done is skipped).

    The journal is checked first (:func:`_checked_journal`); a file of the old set is
    removed only when it is a regular file whose content still has the recorded checksum.
    """
    staging, names, remove = _checked_journal(out, journal)
    for name in names:
        source = staging / name
        if _regular_file(source):
            os.replace(source, out / name)
            _hook(f"renamed:{name}")
    for name, digest in remove.items():
        target = out / name
        if _regular_file(target) and file_sha256(target) == digest:
            target.unlink(missing_ok=True)
    _fsync_dir(out)
    (out / JOURNAL_NAME).unlink(missing_ok=True)
    _hook("committed")
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
        match = _TEMP_NAME.match(name)
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
    :func:`remove_stale` runs. Call it holding the folder's lock (:class:`OutputSet` and
    :func:`read_output_set` do).
    """
    out = Path(out)
    done: list[str] = []
    journal_path = out / JOURNAL_NAME
    if os.path.lexists(journal_path):
        if not _regular_file(journal_path):
            raise _refuse_journal(journal_path, "is a link or a folder, not a journal")
        _roll_forward(out, _read_json(journal_path))
        done.append(f"{JOURNAL_NAME} (rolled forward)")
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
    folder is removed; the previous set stays as it was. An interruption (Ctrl-C,
    SIGTERM) after the commit journal was written leaves the journal and the staging
    folder: the next writer or reader finishes the commit. A folder this writer created
    and leaves empty is removed.

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
        self._created: list[Path] = []

    def __enter__(self) -> OutputSet:
        self._created = create_folder(self.out)
        try:
            self._lock.__enter__()
        except BaseException:
            remove_created(self._created)
            raise
        try:
            clean_stale(self.out)
            self.folder = Path(tempfile.mkdtemp(prefix=_pid_prefix(STAGING_PREFIX), dir=self.out))
        except BaseException:
            self._lock.__exit__()
            remove_created(self._created)
            raise
        return self

    def _journal_names_staging(self) -> bool:
        """Whether the journal on disk is this writer's (the commit point has passed)."""
        journal = _read_json(self.out / JOURNAL_NAME)
        return isinstance(journal, dict) and journal.get("staging") == self.folder.name

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            try:
                if self.folder != self.out and not self._journal_names_staging():
                    shutil.rmtree(self.folder, ignore_errors=True)
            finally:
                self._lock.__exit__()
                remove_created(self._created)  # only what is still empty: a failed first write

    def _commit(self) -> None:
        from FCDDetectLib.io.atomic_files import write_json_atomic

        if self.manifest is None:
            raise ValueError("OutputSet: no manifest set; nothing to commit")
        names = sorted(p.name for p in self.folder.iterdir() if p.is_file() and p.name != self.manifest_name)
        checksums = {}
        for name in names:
            _fsync_file(self.folder / name)
            checksums[name] = file_sha256(self.folder / name)
        write_json_atomic(self.folder / self.manifest_name, {**self.manifest, "files": checksums})
        _fsync_dir(self.folder)
        _hook("staged")
        journal = {"staging": self.folder.name, "files": [*names, self.manifest_name],
                   "remove": self._old_members(set(checksums))}
        _write_journal(self.out / JOURNAL_NAME, journal)
        _fsync_dir(self.out)
        _hook("journal")
        _roll_forward(self.out, journal)

    def _old_members(self, keep: set[str]) -> dict[str, str]:
        """Files of the previous set that the new one lacks, still as that set wrote them (name -> sha256).

        The old ``result.json`` is untrusted: only plain names of regular files whose content
        still has the checksum it lists are taken (a file the user changed or put there stays).
        """
        old = _read_json(self.out / self.manifest_name)
        old_files = old.get("files") if isinstance(old, dict) else None
        remove = {}
        for name, digest in (old_files if isinstance(old_files, dict) else {}).items():
            if (not _plain_name(name) or name in keep or name in (self.manifest_name, JOURNAL_NAME)
                    or not isinstance(digest, str) or not _SHA256.match(digest)):
                continue
            path = self.out / name
            if _regular_file(path) and file_sha256(path) == digest:
                remove[name] = digest
        return remove


def read_output_set(out: str | os.PathLike, manifest_name: str = MANIFEST_NAME) -> dict[str, Any]:
    """Read ``OUT/result.json`` after recovering the folder, and verify every listed file's checksum.

    Raises:
        FCDInputError: no manifest, a journal that is not ours or reaches outside ``out``,
            a listed name that is not a plain file name or is a link, or a file missing or
            different from what the manifest lists.

    Example:
        >>> read_output_set("out")["probability"]  # doctest: +SKIP
        0.91
    """
    out = Path(out)
    manifest_path = out / manifest_name
    if out.is_dir() and os.access(out, os.W_OK):
        with _FolderLock(out):
            clean_stale(out)
    elif os.path.lexists(out / JOURNAL_NAME):
        _checked_journal(out, _read_json(out / JOURNAL_NAME))  # refuse a hostile one even read-only
        raise FCDInputError(f"{out}: holds an unfinished commit ({JOURNAL_NAME}) and cannot be written to "
                            "finish it; open it where it can be written")
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise FCDInputError(f"{manifest_path}: missing or not a JSON object")
    files = manifest.get("files") or {}
    if not isinstance(files, dict):
        raise FCDInputError(f"{manifest_path}: 'files' must map file names to checksums")
    for name, digest in files.items():
        if not _plain_name(name) or name in (manifest_name, JOURNAL_NAME):
            raise FCDInputError(f"{manifest_path}: lists {str(name)[:80]!r}, not a plain file name inside {out}")
        path = out / name
        if os.path.lexists(path) and not _regular_file(path):
            raise FCDInputError(f"{path}: listed in {manifest_path} but is a link or a folder (fcd writes files)")
        if not path.is_file():
            raise FCDInputError(f"{path}: listed in {manifest_path} but missing")
        if file_sha256(path) != digest:
            raise FCDInputError(f"{path}: differs from the checksum in {manifest_path} (changed after writing)")
    return manifest
