"""What a failed write leaves: one error line instead of a traceback, and no empty folder behind.

The trainer's commands (``fcd train``, ``synth``, ``experiment``, ``evaluate``, ``demo``) run
inside :func:`guarded_writes` around their output folder:

- an ``OSError`` (a full disk, ``ENOSPC``; a quota; a file over the size limit, ``EFBIG``; a
  name the file system refuses; a link loop) becomes one :class:`FCDInputError` line naming
  the file (or the output folder when the system names none) and what the system said;
- on any failure (also Ctrl-C), folders that this invocation created under the output folder,
  or above it, and that are still empty are removed.

Each file itself is written atomically (:func:`FCDDetectLib.io.atomic_files.write_atomic`
removes its temporary file on failure), so what stays is the state before the failing
write: a fresh run that fails before its ``config.json`` leaves nothing, a run that fails
later resumes from its last finished epoch once there is space.

Example:
    >>> import errno
    >>> os_error_message(OSError(errno.ENOSPC, "No space left on device"), "runs/r18")
    'runs/r18: No space left on device (ENOSPC); free space there and run the same command again'
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from FCDDetectLib.errors import FCDInputError


def _short(name: object) -> str:
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return text if len(text) <= 200 else text[:200] + "..."


def os_error_message(error: OSError, where: str | os.PathLike) -> str:
    """One line for ``error``: the file(s) it names (else ``where``), the system's words and code."""
    names = [_short(name) for name in (error.filename, error.filename2) if name is not None]
    place = " -> ".join(names) or _short(where)
    reason = (error.strerror or str(error) or type(error).__name__).splitlines()[0]
    code = errno.errorcode.get(error.errno or 0)
    line = f"{place}: {reason}{f' ({code})' if code else ''}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        line += "; free space there and run the same command again"
    elif error.errno == errno.EFBIG:
        line += "; a file would exceed the size limit of this process or file system (see ulimit -f)"
    return line


def _folders(root: Path) -> set[str]:
    found: set[str] = set()
    if os.path.isdir(root):
        for folder, _dirs, _files in os.walk(root):
            found.add(folder)
    return found


def remove_new_empty_folders(root: Path, before: set[str], missing_above: list[Path]) -> None:
    """Remove the empty folders under ``root`` not in ``before``, then ``missing_above`` (innermost first)."""
    if os.path.isdir(root):  # False also for a name the system cannot look up
        for folder, _dirs, _files in os.walk(root, topdown=False):
            if folder not in before:
                try:
                    os.rmdir(folder)
                except OSError:
                    pass  # not empty: something of this run is in it
    for folder in missing_above:
        if not os.path.lexists(folder):  # never made (the failure came first), or a name too long
            continue
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: it and the folders above it stay


@contextmanager
def guarded_writes(out: str | os.PathLike) -> Iterator[None]:
    """Run a command writing into ``out``: OSError as one FCDInputError, no new empty folder left behind.

    Example:
        >>> with guarded_writes("runs/r18"):  # doctest: +SKIP
        ...     train_run(config, "runs/r18")
    """
    root = Path(out)
    missing = [p for p in (root, *root.parents) if not os.path.lexists(p)]
    before = _folders(root)
    try:
        yield
    except BaseException as error:
        try:
            remove_new_empty_folders(root, before, missing)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise FCDInputError(os_error_message(error, root)) from None
        raise
