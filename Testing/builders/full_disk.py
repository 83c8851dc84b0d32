"""A full disk for the reliability tests and the probe: a tiny tmpfs, else a file-size limit.

What really fails a write here: a real file system that runs out of space. Where this process
may mount (root with CAP_SYS_ADMIN, as on the project's machines), :func:`tiny_filesystem`
mounts a tmpfs of a few hundred KiB on a test folder and :func:`fill` leaves only a few KiB
free on it, so writes fail with ENOSPC inside the kernel, wherever they come from (nibabel's
gzip, torch, matplotlib, our JSON). Where mounting is not allowed (an unprivileged CI), the
fallback is :func:`file_size_limit`: RLIMIT_FSIZE on the child process, so writing past that
many bytes fails with EFBIG (SIGXFSZ ignored), again in the kernel, not in a mock.

Example:
    >>> with tiny_filesystem(tmp_path / "disk", 512) as mounted:  # doctest: +SKIP
    ...     fill(tmp_path / "disk", leave=4096) if mounted else None
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["file_size_limit", "fill", "resize_tmpfs", "small_tmpfs", "tiny_filesystem"]


@contextlib.contextmanager
def tiny_filesystem(path: str | os.PathLike, size_kib: int, inodes: int | None = None) -> Iterator[bool]:
    """Mount a tmpfs of ``size_kib`` KiB on ``path`` (created) for the block; yields whether it is mounted.

    ``inodes`` caps the files and folders it can hold: a disk that reports enough free bytes (so
    a free-space check up front passes) and still fails a write with ``ENOSPC`` part way.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={int(size_kib)}k" + (f",nr_inodes={int(inodes)}" if inodes else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
        mounted = done.returncode == 0
    except (OSError, subprocess.SubprocessError):
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(path: str | os.PathLike, size_kib: int, inodes: int | None = None) -> Iterator[Path | None]:
    """:func:`tiny_filesystem`, yielding the mounted folder, or None where mounting is refused."""
    with tiny_filesystem(path, size_kib, inodes) as mounted:
        yield Path(path) if mounted else None


def resize_tmpfs(path: str | os.PathLike, size_kib: int) -> None:
    """Give the tmpfs mounted at ``path`` another size (free space for a resume)."""
    subprocess.run(["mount", "-o", f"remount,size={int(size_kib)}k", str(path)], check=True, capture_output=True)


def fill(path: str | os.PathLike, leave: int = 4096) -> Path:
    """Fill the file system of ``path`` with ``path/.filler``, then free ``leave`` bytes of it; returns the filler."""
    filler = Path(path) / ".filler"
    block = b"\0" * 65536
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    size = filler.stat().st_size
    with filler.open("r+b") as handle:
        handle.truncate(max(0, size - leave))
    return filler


def file_size_limit(nbytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess``: the child may write files of at most ``nbytes`` bytes (EFBIG past it)."""

    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(nbytes), int(nbytes)))

    return limit
