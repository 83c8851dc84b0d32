"""Path fields of the panels: what counts as unset, and which folders may be scanned.

A ``ctkPathLineEdit`` bound to a ``pathlib.Path`` parameter shows ``"."`` when unset
(``Path("")`` is ``Path(".")``), and Slicer's working directory is not a folder the user
chose. So the panels keep paths as plain strings and treat ``""`` and ``"."`` as unset.

Example:
    >>> path_or_none(".") is None, path_or_none(" /data/run ")
    (True, '/data/run')
    >>> scan_refusal("/")
    'the filesystem root is too large to search; choose the folder that holds the models'
"""

from __future__ import annotations

import os
from pathlib import Path

_UNSET = ("", ".", "./")


def path_or_none(text: str | os.PathLike | None) -> str | None:
    """The path the user typed, or None when the field is unset ("" or ".")."""
    if text is None:
        return None
    value = str(text).strip()
    return None if value in _UNSET else value


def is_set(text: str | os.PathLike | None) -> bool:
    """True when ``text`` is a path the user chose (not "" and not ".")."""
    return path_or_none(text) is not None


def scan_refusal(text: str | os.PathLike | None) -> str | None:
    """Why ``text`` must not be searched for models (None: it may be).

    Refused: unset fields, a filesystem or drive root, the home folder itself, and a
    path that is not an existing folder. A root or home scan would walk the whole disk.
    """
    value = path_or_none(text)
    if value is None:
        return "no models folder chosen"
    path = Path(value).expanduser()
    try:
        resolved = path.resolve()
    except OSError:
        return f"{value}: not a folder"
    if resolved.parent == resolved:  # "/", "C:\\"
        return "the filesystem root is too large to search; choose the folder that holds the models"
    if resolved == Path.home().resolve():
        return "the home folder is too large to search; choose the folder that holds the models"
    if not resolved.is_dir():
        return f"{value}: no such folder"
    return None
