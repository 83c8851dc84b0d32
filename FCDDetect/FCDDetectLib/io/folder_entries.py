"""Names and files of a folder that may come from anyone, judged before they are used.

A results folder, its ``result.json`` and a commit journal may come from anyone: a name read
from them is used only when it is a plain file name (:func:`is_plain_name`: no path, at most
:data:`MAX_NAME_BYTES`), a file is moved, trusted or removed only when it is a regular file
itself (:func:`is_regular_file`: a link, even to a file, is not), and their JSON is read with
:func:`read_json_or_none`, which gives None for a missing, unreadable or damaged file.

Example:
    >>> is_plain_name("heatmap.nii.gz"), is_plain_name("../victim"), is_plain_name("a/b")
    (True, False, False)
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["MAX_NAME_BYTES", "is_plain_name", "is_regular_file", "read_json_or_none"]

MAX_NAME_BYTES = 255
"""Longest file or folder name (one path component, in bytes) that Linux, macOS and Windows file systems accept."""


def is_plain_name(name: Any) -> bool:
    """Whether ``name`` is one file name inside a folder (a string; no ``..``, separator or NUL; not too long).

    Example:
        >>> is_plain_name("result.json"), is_plain_name(".."), is_plain_name("x" * 256)
        (True, False, False)
    """
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and len(os.fsencode(name)) <= MAX_NAME_BYTES)


def is_regular_file(path: Path) -> bool:
    """A regular file itself (a link, even to a file, is not).

    Example:
        >>> import tempfile, pathlib
        >>> is_regular_file(pathlib.Path(tempfile.mkdtemp()))
        False
    """
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_json_or_none(path: Path) -> Any:
    """The JSON in file ``path``, or None when it is missing, unreadable, not UTF-8 or not JSON.

    Example:
        >>> import tempfile, pathlib
        >>> read_json_or_none(pathlib.Path(tempfile.mkdtemp()) / "result.json") is None
        True
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
