"""The commit journal of an output set: its commit point, checked before use, rolled forward.

``OUT/.fcd-commit.json`` (:data:`JOURNAL_NAME`) names the staging folder, the files to move
out of it into ``OUT`` (the manifest last) and the files of the old set to remove, each with
the checksum the old ``result.json`` recorded for it. :func:`write_journal` writes it
atomically: the commit point of :class:`~FCDDetectLib.io.output_set.OutputSet`.
:func:`roll_forward` then renames the files into ``OUT``, removes the old set's leftovers and
deletes the journal and the staging folder; the next writer or reader rolls forward a journal
that a killed writer left.

The journal (and the old ``result.json``) are untrusted: a results folder may come from
anyone. Every name read from them must be a plain file name inside ``OUT``, the staging
folder one of ours (``.fcd-staging-PID-XXXXXXXX``, a real folder, no link), every file
moved a regular file; a journal that breaks any of this is refused with one
:class:`~FCDDetectLib.errors.FCDInputError` naming it, before anything is moved or deleted
(:func:`check_journal`). Files of the old set are removed only when their content still has
the checksum the old ``result.json`` recorded for it (the journal carries it), so a file the
user put there or changed is never deleted.

Example:
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / JOURNAL_NAME).write_text(json.dumps({"staging": "../victim", "files": []}))
    >>> check_journal(out, read_journal(out))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FCDDetectLib.errors.FCDInputError: .../.fcd-commit.json: its staging folder '../victim' is not one of fcd's ...
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.checksums import file_sha256, is_sha256
from FCDDetectLib.io.commit_points import at_point
from FCDDetectLib.io.durable_files import fsync_dir
from FCDDetectLib.io.folder_entries import is_plain_name, is_regular_file, read_json_or_none
from FCDDetectLib.io.temp_names import STAGING_NAME, STAGING_PREFIX

__all__ = ["JOURNAL_NAME", "check_journal", "read_journal", "roll_forward", "write_journal"]

JOURNAL_NAME = ".fcd-commit.json"


def _refuse_journal(path: Path, reason: str) -> FCDInputError:
    return FCDInputError(
        f"{path}: {reason}; refused, nothing was moved or deleted (fcd never writes such a journal: "
        f"check where this folder comes from, then delete {JOURNAL_NAME} to use the folder)")


def read_journal(out: Path) -> Any:
    """The journal in ``out`` as read (None when damaged); call it where one exists (``os.path.lexists``).

    Raises FCDInputError naming the journal when it is a link or a folder, not a file.

    Example:
        >>> if os.path.lexists(out / JOURNAL_NAME):  # doctest: +SKIP
        ...     roll_forward(out, read_journal(out))
    """
    path = out / JOURNAL_NAME
    if not is_regular_file(path):
        raise _refuse_journal(path, "is a link or a folder, not a journal")
    return read_json_or_none(path)


def write_journal(out: Path, journal: dict[str, Any]) -> None:
    """Write ``journal`` as ``out``'s commit journal, atomically, and flush ``out``: the commit point.

    Example:
        >>> write_journal(out, {"staging": staging.name, "files": [*names, "result.json"],  # doctest: +SKIP
        ...                     "remove": {"overlay.png": digest}})
    """
    from FCDDetectLib.io.atomic_files import write_json_atomic

    write_json_atomic(out / JOURNAL_NAME, journal)
    fsync_dir(out)


def check_journal(out: Path, journal: Any) -> tuple[Path, list[str], dict[str, str]]:
    """The staging folder, the files to move and the files to remove (name -> sha256) of a journal.

    Raises FCDInputError naming the journal for anything that could reach outside ``out`` or
    is not what :class:`~FCDDetectLib.io.output_set.OutputSet` writes: nothing has been touched then.

    Example:
        >>> check_journal(out, read_journal(out))  # doctest: +SKIP
        (PosixPath('out/.fcd-staging-4242-k2j3h4g5'), ['heatmap.nii.gz', 'result.json'], {})
    """
    path = out / JOURNAL_NAME
    if not isinstance(journal, dict):
        raise _refuse_journal(path, "not a JSON object (damaged or not written by fcd)")
    staging_name = journal.get("staging")
    if not isinstance(staging_name, str) or not STAGING_NAME.match(staging_name):
        raise _refuse_journal(path, f"its staging folder {str(staging_name)[:80]!r} is not one of fcd's "
                                    f"(.fcd-staging-PID-XXXXXXXX inside {out})")
    staging = out / staging_name
    if os.path.lexists(staging) and (staging.is_symlink() or not staging.is_dir()):
        raise _refuse_journal(path, f"{staging_name} is a link or a file, not a staging folder")
    names = journal.get("files")
    if not isinstance(names, list) or not all(is_plain_name(n) for n in names):
        raise _refuse_journal(path, "its 'files' must be plain file names inside the folder (no '..', '/', links)")
    for name in names:
        if name == JOURNAL_NAME or name.startswith(STAGING_PREFIX):
            raise _refuse_journal(path, f"its 'files' names {name!r}, a file of the commit itself")
        source = staging / name
        if os.path.lexists(source) and not is_regular_file(source):
            raise _refuse_journal(path, f"{staging_name}/{name} is a link or a folder, not a file it wrote")
        target = out / name
        if os.path.lexists(target) and not target.is_symlink() and target.is_dir():
            raise _refuse_journal(path, f"{name} is a folder in {out}; the commit cannot put a file there")
    remove = journal.get("remove", {})
    if isinstance(remove, list):  # journals of engines before issue 25: no checksums, so nothing is removed
        remove = {}
    if not isinstance(remove, dict) or not all(is_plain_name(n) and is_sha256(d) for n, d in remove.items()):
        raise _refuse_journal(path, "its 'remove' must map plain file names inside the folder to SHA-256 checksums")
    return staging, list(names), {n: d for n, d in remove.items() if n not in names and n != JOURNAL_NAME}


def roll_forward(out: Path, journal: Any) -> None:
    """Finish a commit described by ``journal`` (idempotent: a rename already done is skipped).

    The journal is checked first (:func:`check_journal`); a file of the old set is
    removed only when it is a regular file whose content still has the recorded checksum.

    Example:
        >>> roll_forward(out, read_journal(out))  # doctest: +SKIP
    """
    staging, names, remove = check_journal(out, journal)
    for name in names:
        source = staging / name
        if is_regular_file(source):
            os.replace(source, out / name)
            at_point(f"renamed:{name}")
    for name, digest in remove.items():
        target = out / name
        if is_regular_file(target) and file_sha256(target) == digest:
            target.unlink(missing_ok=True)
    fsync_dir(out)
    (out / JOURNAL_NAME).unlink(missing_ok=True)
    at_point("committed")
    shutil.rmtree(staging, ignore_errors=True)
