"""Reading a run folder's own files as untrusted input: bounded JSON, paths confined to the folder.

A run folder may sit on a shared disk or come from a colleague, so whatever it holds is
checked before it is used:

- JSON files (``config.json``, ``folds.json``, ``metrics.json``, ``dataset.json``, cache
  statistics) are read by :func:`read_json`: at most ``max_bytes`` (checked before the file
  is read), UTF-8, real JSON, not nested deeper than Python's parser goes. Anything else is
  one :class:`FCDInputError` naming the file, never a traceback.
- Paths: every file the trainer reads or writes is a fixed name under the run folder
  (:mod:`FCDTrainLib.run_folder.layout`). :func:`check_links` refuses a run folder holding a
  symbolic link that leads outside it (or nowhere), so that none of those names can reach
  another place: a planted ``fold-1 -> /home/someone`` would otherwise receive checkpoints
  and have its ``best-*.pt`` files deleted. Names read from a file (an experiment's run
  names) must be plain folder names (:func:`plain_name`). The dataset path of
  ``config.json`` (``data``) is the user's own and may point anywhere; it is only read.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "folds.json").write_text("[[[1]]]")
    >>> read_json(folder / "folds.json", "fold splits")
    [[[1]]]
    >>> plain_name("resnet18-none-flair"), plain_name("../elsewhere")
    (True, False)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

MAX_CONFIG_BYTES = 1 << 20
"""Largest ``config.json`` read (1 MiB): ours are about 1 kB; the longest dataset path is 4 kB."""

MAX_RUN_JSON_BYTES = 64 << 20
"""Largest other JSON file of a run read (64 MiB): ``folds.json`` and ``dataset.json`` grow with
the subjects (about 150 bytes per subject in ``dataset.json``; 10,000 subjects: 1.5 MB), the
others are a few kB."""


def read_json(path: str | os.PathLike, what: str, max_bytes: int = MAX_RUN_JSON_BYTES) -> Any:
    """The JSON value of the file ``path`` (a ``what`` of a run); FCDInputError naming it when it cannot be.

    Refused: a missing file or one that is not a regular file, more than ``max_bytes``, not
    UTF-8, not JSON, nested deeper than the parser's recursion limit.

    Example:
        >>> read_json("/no/such/config.json", "run configuration")
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: /no/such/config.json: run configuration not found
    """
    path = Path(path)
    try:
        if not path.exists():
            raise FCDInputError(f"{path}: {what} not found")
        if not path.is_file():
            raise FCDInputError(f"{path}: damaged {what}: not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # never more than the bound, even if the file grows
    except OSError as error:
        raise FCDInputError(f"{path}: cannot read the {what} ({error.strerror or type(error).__name__})") from None
    if len(raw) > max_bytes:
        raise FCDInputError(f"{path}: damaged {what}: larger than {max_bytes:,} bytes (ours are far smaller)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise FCDInputError(f"{path}: damaged {what}: not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise FCDInputError(f"{path}: damaged {what}: not JSON ({error.msg}, line {error.lineno})") from None
    except RecursionError:
        raise FCDInputError(f"{path}: damaged {what}: nested too deeply to be one of ours") from None


def read_json_object(path: str | os.PathLike, what: str, max_bytes: int = MAX_RUN_JSON_BYTES) -> dict[str, Any]:
    """:func:`read_json` of a file that must hold a JSON object (``metrics.json``, ``config.json``)."""
    value = read_json(path, what, max_bytes)
    if not isinstance(value, dict):
        raise FCDInputError(f"{path}: damaged {what}: a JSON object was expected, found {type(value).__name__}")
    return value


def plain_name(name: Any) -> bool:
    """Whether ``name`` is one ordinary folder name: a string, no separator, not ``.``/``..``, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and len(os.fsencode(name)) <= 255)


def inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path``, with every link resolved, is ``root`` or lies under it (also resolved)."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    return target == base or base in target.parents


def check_links(root: str | os.PathLike, what: str = "run folder", marker: str = "config.json") -> None:
    """Refuse ``root`` when a symbolic link in it leads outside it, or nowhere (a loop, a missing target).

    Links that stay inside are fine. ``root`` itself may be a link (the user typed it).
    The whole tree is checked when ``root`` holds ``marker`` (it is a run, or with
    ``"events.jsonl"`` an experiment); otherwise only its own entries, so that a wrong ``--out``
    (a home folder) is not walked before it is refused as a folder that holds no run.

    Raises:
        FCDInputError: naming the first such link and where it leads.
    """
    base = Path(root)
    if not base.is_dir():
        return
    resolved = base.resolve()
    deep = (base / marker).is_file()
    for folder, dirs, files in os.walk(base, followlinks=False):
        entries = [*dirs, *files]
        if not deep:
            dirs.clear()  # this level only
        for name in entries:
            entry = Path(folder) / name
            if not entry.is_symlink():
                continue
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError):  # RuntimeError: a link loop on Python < 3.13
                raise FCDInputError(f"{entry}: a link that leads nowhere (a loop or a missing target) inside "
                                    f"the {what} {base}; remove it") from None
            if target != resolved and resolved not in target.parents:
                raise FCDInputError(f"{entry}: a link to {target}, outside the {what} {base}; the files of a "
                                    f"{what} stay inside it, so it is refused (remove the link)")
