"""Output folders, checked before any work: refused with one line when they cannot be written.

:func:`check_output_folder` refuses, with one :class:`~FCDDetectLib.errors.FCDInputError`
line, an output folder that cannot be written (a file, a read-only place, a folder where
an output file goes, a name too long, a link leading nowhere, a planted commit journal).
Every command calls it before computing anything. :func:`create_folder` and
:func:`remove_created` make a missing folder and take it away again when the work that
needed it failed, so that no empty folder is left behind.

Example:
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_folder(base / "result", files=["result.json"]) == base / "result"
    True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.commit_journal import JOURNAL_NAME, check_journal, read_journal
from FCDDetectLib.io.folder_entries import MAX_NAME_BYTES
from FCDDetectLib.io.temp_names import PROBE_PREFIX, pid_prefix

__all__ = ["check_output_folder", "create_folder", "remove_created"]


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

    Checks: no name in ``path`` is longer than :data:`~FCDDetectLib.io.folder_entries.MAX_NAME_BYTES`;
    no part of it is a link that leads nowhere (a link loop); ``path`` is not a file; the folder (or, when it
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
            fd, probe = tempfile.mkstemp(prefix=pid_prefix(PROBE_PREFIX), dir=existing)
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
        # an unfinished commit: refused now if it is not ours, not after the work
        if os.path.lexists(folder / JOURNAL_NAME):
            check_journal(folder, read_journal(folder))
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
