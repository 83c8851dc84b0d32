"""Flushing to disk (fsync): a file's bytes, and a folder's entries after files were renamed into it.

An output set's commit flushes its staged files and the staging folder before it writes the
commit journal, and the output folder after the journal and after the renames, so that each
step is on disk before the next one starts. A folder cannot be flushed on Windows
(:func:`fsync_dir` does nothing there).

Example:
    >>> import tempfile, pathlib
    >>> fsync_dir(pathlib.Path(tempfile.mkdtemp()))
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "fsync_file"]


def fsync_file(path: Path) -> None:
    """Flush the bytes of file ``path`` to disk.

    Example:
        >>> fsync_file(pathlib.Path("out/.fcd-staging-4242-k2j3h4g5/heatmap.nii.gz"))  # doctest: +SKIP
    """
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush the entries of folder ``path`` (renames into it, files removed) to disk; nothing on Windows.

    Example:
        >>> fsync_dir(pathlib.Path("out"))  # doctest: +SKIP
    """
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
