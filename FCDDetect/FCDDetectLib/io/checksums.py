"""SHA-256 checksums of files: computed in one way, and recognised when read back.

Output sets list their files' checksums in ``result.json``, journals carry those of the files
to remove, bundles record their weights' and detections their inputs'. A checksum read from
a file that may come from anyone is used only when :func:`is_sha256` accepts it.

Example:
    >>> import tempfile, pathlib
    >>> note = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = note.write_text("hello")
    >>> is_sha256(file_sha256(note))
    True
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "is_sha256"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def is_sha256(value: Any) -> bool:
    """Whether ``value`` is a checksum as :func:`file_sha256` gives it (a string of 64 lowercase hex digits).

    Example:
        >>> is_sha256("2cf24dba" * 8), is_sha256("../victim"), is_sha256(None)
        (True, False, False)
    """
    return isinstance(value, str) and _SHA256.match(value) is not None
