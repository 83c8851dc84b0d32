"""A full disk for the reliability tests: a real small file system, or the kernel's file size limit.

Two ways to make the kernel refuse a write, both without faking any Python function:

- ``tmpfs``: a RAM file system of a few hundred kB mounted on a folder (needs root, or the
  mount capability; :func:`small_tmpfs` returns None where ``mount`` is refused). Writes fail
  with ``ENOSPC`` once it is full, exactly as on a full disk.
- ``fsize``: the child process runs under ``RLIMIT_FSIZE`` (:func:`fsize_limit`), so writing
  past that many bytes into one file fails with ``EFBIG`` (Python ignores ``SIGXFSZ``). Works
  for every user on Linux; the code path (an ``OSError`` from ``write``) is the same.

Example:
    >>> with small_tmpfs(tmp_path / "disk", 300) as disk:  # doctest: +SKIP
    ...     done = run_fcd(["synth", "--out", str(disk / "cohort"), ...])
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _mount(folder: Path, size_kb: int) -> bool:
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return done.returncode == 0


def resize_tmpfs(folder: Path, size_kb: int) -> None:
    """Give the mounted tmpfs at ``folder`` another size (free space for a resume)."""
    subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(folder)], check=True, capture_output=True)


@contextmanager
def small_tmpfs(folder: Path, size_kb: int) -> Iterator[Path | None]:
    """A tmpfs of ``size_kb`` kB mounted on ``folder`` for the block (None where mounting is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount(folder, size_kb):
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def fsize_limit(max_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` limiting every file the child writes to ``max_bytes`` (``RLIMIT_FSIZE``)."""
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit
