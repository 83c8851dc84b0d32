"""A set of files committed as one unit into an output folder, write-ahead-log style.

:class:`OutputSet` writes the files of one result (``fcd detect``: ``heatmap.nii.gz``,
``result.json`` and whatever else a detection adds) into a private staging folder inside
the output folder, then commits them together, write-ahead-log style:

1. every file is written and fsynced in ``OUT/.fcd-staging-XXXX/``; the manifest
   (``result.json``) gets ``"files": {name: sha256}`` of the other files;
2. the commit journal ``OUT/.fcd-commit.json`` (staging name, files, files of the old set
   to remove) is written atomically: this is the commit point
   (:mod:`FCDDetectLib.io.commit_journal`);
3. the files are renamed into ``OUT`` (the manifest last), files of the previous set
   that the new one lacks are removed, the journal and the staging folder go.

A kill before step 2 leaves the old set untouched (the staging folder is stale and the
next writer removes it); a kill after it leaves a journal that the next writer or reader
(:meth:`OutputSet.__enter__`, :func:`read_output_set`) rolls forward before anything
else (:func:`~FCDDetectLib.io.stale_files.clean_stale`). So after recovery a folder holds
the old set or the new set, never a mix, and ``result.json``'s checksums let any reader
verify it. Writers of one folder are serialised by an advisory lock on the folder
(``fcntl.flock``; none on Windows).

Interrupted writers: SIGKILL stops a writer where it is. Ctrl-C (SIGINT) and SIGTERM (made
an exception by :func:`~FCDDetectLib.io.interrupts.raise_on_sigterm`) run ``__exit__``: before
the journal exists it removes the staging folder (the old set stays); once the journal
names this writer's staging folder it leaves both for the next writer to finish, exactly as
after a kill (undoing half a commit there would leave a mix). A folder the writer created
and left empty (a refused or failed first write, a full disk) is removed again.

The journal and the old ``result.json`` are untrusted: what is read from them is checked
before anything is moved or deleted (:mod:`FCDDetectLib.io.commit_journal`). Every command
checks its output folder before the work
(:func:`~FCDDetectLib.io.output_folder.check_output_folder`); tests interrupt or pause a
writer at the named points of the commit (:mod:`FCDDetectLib.io.commit_points`).

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

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.checksums import file_sha256, is_sha256
from FCDDetectLib.io.commit_journal import JOURNAL_NAME, check_journal, roll_forward, write_journal
from FCDDetectLib.io.commit_points import at_point
from FCDDetectLib.io.durable_files import fsync_dir, fsync_file
from FCDDetectLib.io.folder_entries import is_plain_name, is_regular_file, read_json_or_none
from FCDDetectLib.io.output_folder import create_folder, remove_created
from FCDDetectLib.io.stale_files import clean_stale
from FCDDetectLib.io.temp_names import STAGING_PREFIX, pid_prefix

__all__ = ["MANIFEST_NAME", "OutputSet", "read_output_set"]

MANIFEST_NAME = "result.json"


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
            self.folder = Path(tempfile.mkdtemp(prefix=pid_prefix(STAGING_PREFIX), dir=self.out))
        except BaseException:
            self._lock.__exit__()
            remove_created(self._created)
            raise
        return self

    def _journal_names_staging(self) -> bool:
        """Whether the journal on disk is this writer's (the commit point has passed)."""
        journal = read_json_or_none(self.out / JOURNAL_NAME)
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
            fsync_file(self.folder / name)
            checksums[name] = file_sha256(self.folder / name)
        write_json_atomic(self.folder / self.manifest_name, {**self.manifest, "files": checksums})
        fsync_dir(self.folder)
        at_point("staged")
        journal = {"staging": self.folder.name, "files": [*names, self.manifest_name],
                   "remove": self._old_members(set(checksums))}
        write_journal(self.out, journal)  # the commit point; flushes self.out
        at_point("journal")
        roll_forward(self.out, journal)

    def _old_members(self, keep: set[str]) -> dict[str, str]:
        """Files of the previous set that the new one lacks, still as that set wrote them (name -> sha256).

        The old ``result.json`` is untrusted: only plain names of regular files whose content
        still has the checksum it lists are taken (a file the user changed or put there stays).
        """
        old = read_json_or_none(self.out / self.manifest_name)
        old_files = old.get("files") if isinstance(old, dict) else None
        remove = {}
        for name, digest in (old_files if isinstance(old_files, dict) else {}).items():
            if (not is_plain_name(name) or name in keep or name in (self.manifest_name, JOURNAL_NAME)
                    or not is_sha256(digest)):
                continue
            path = self.out / name
            if is_regular_file(path) and file_sha256(path) == digest:
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
        check_journal(out, read_json_or_none(out / JOURNAL_NAME))  # refuse a hostile one even read-only
        raise FCDInputError(f"{out}: holds an unfinished commit ({JOURNAL_NAME}) and cannot be written to "
                            "finish it; open it where it can be written")
    manifest = read_json_or_none(manifest_path)
    if not isinstance(manifest, dict):
        raise FCDInputError(f"{manifest_path}: missing or not a JSON object")
    files = manifest.get("files") or {}
    if not isinstance(files, dict):
        raise FCDInputError(f"{manifest_path}: 'files' must map file names to checksums")
    for name, digest in files.items():
        if not is_plain_name(name) or name in (manifest_name, JOURNAL_NAME):
            raise FCDInputError(f"{manifest_path}: lists {str(name)[:80]!r}, not a plain file name inside {out}")
        path = out / name
        if os.path.lexists(path) and not is_regular_file(path):
            raise FCDInputError(f"{path}: listed in {manifest_path} but is a link or a folder (fcd writes files)")
        if not path.is_file():
            raise FCDInputError(f"{path}: listed in {manifest_path} but missing")
        if file_sha256(path) != digest:
            raise FCDInputError(f"{path}: differs from the checksum in {manifest_path} (changed after writing)")
    return manifest
