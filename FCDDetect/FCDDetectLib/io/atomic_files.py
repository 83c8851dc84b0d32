"""Atomic file writes and the one JSON policy of the project.

Every output (images, checkpoints, caches, PNGs, JSON, CSV, Markdown) is written to a
temporary file beside its target and renamed over it (``os.replace``): a reader never
sees half a file, and a failed write leaves the previous file as it was.

JSON: :func:`to_jsonable` is the only sanitiser. numpy scalars and arrays become
numbers and lists, paths become strings, tuples lists, and NaN/Inf become ``null``
(strict JSON has no NaN, and browsers, ``jq`` and pandas' strict readers reject it).
:func:`json_text` is that, dumped with ``allow_nan=False``; use it for every JSON
written or printed.

Example:
    >>> import numpy as np
    >>> json_text({"auc": float("nan"), "n": np.int64(3)}, indent=None)
    '{"auc": null, "n": 3}'
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_atomic(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file keeps the target's extension (nibabel picks gzip from ".nii.gz",
    matplotlib the format from ".png") and gets the umask's usual permissions; on any
    failure it is removed and a previous ``path`` is left as it was. Returns ``path``.

    Example:
        >>> write_atomic("checkpoint.pt", lambda tmp: torch.save(state, tmp))  # doctest: +SKIP
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if target.name.endswith(".nii.gz") else target.suffix
    # the writer's pid in the name lets a later run tell a killed writer's leftover from a live
    # one (FCDDetectLib.io.stale_files.remove_stale)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates owner-only files: give the result the umask's usual mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if error.filename is None:  # e.g. gzip's write on a full disk: name the file for the one-line message
            raise type(error)(error.errno, error.strerror or str(error), str(target)) from None
        raise
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically.

    Example:
        >>> write_text_atomic("report.md", "# Report\\n")  # doctest: +SKIP
    """
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    write_atomic(path, write)


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python, paths -> str, tuples -> lists, NaN/Inf -> None.

    Other objects are returned as they are (``json.dumps`` then raises TypeError for them).

    Example:
        >>> to_jsonable({"x": (np.float32(1.5), float("inf"))})
        {'x': [1.5, None]}
    """
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def json_text(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (through :func:`to_jsonable`; NaN/Inf -> ``null``).

    Example:
        >>> json_text([1, float("nan")], indent=None)
        '[1, null]'
    """
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically.

    numpy scalars and arrays become numbers and lists, paths become strings, and NaN/Inf
    become ``null`` (strict JSON readers reject NaN). Other objects raise TypeError.

    Example:
        >>> write_json_atomic("result.json", {"probability": 0.91, "auc": float("nan")})  # doctest: +SKIP
    """
    write_text_atomic(path, json_text(obj) + "\n")


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text of ``rows`` restricted to ``columns``; None becomes an empty cell (one writer for every table).

    Example:
        >>> csv_text([{"a": 1, "b": None}], ["a", "b"])
        'a,b\n1,\n'
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # rows as lists: 1.7x faster than DictWriter on 10,000 rows
    writer.writerow(list(columns))
    writer.writerows([("" if row.get(k) is None else row.get(k)) for k in columns] for row in rows)
    return buffer.getvalue()
