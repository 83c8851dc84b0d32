"""The models folders both modules share: one settings key each, one class to use them.

FCDDetect lists the bundles of its models folder and of every folder FCDTrain trained
into; FCDTrain registers a finished run here instead of reaching into FCDDetect's widget.
The FCDDetect panel reads the registry each time it is shown (``enter``).

The store is anything with QSettings' ``value(key, default)`` / ``setValue(key, value)``:
``qt.QSettings()`` in Slicer, a dict-backed fake in the tests. Unset paths ("" or ".")
and folders that must not be searched (filesystem root, home) are never stored.

Example:
    >>> registry = ModelsFolderRegistry(DictSettings())
    >>> registry.set_current(".")
    False
    >>> registry.current is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.paths import path_or_none, scan_refusal

MODELS_FOLDER_KEY = "FCDDetect/ModelsFolder"
EXTRA_MODEL_FOLDERS_KEY = "FCDDetect/ExtraModelFolders"


class SettingsStore(Protocol):
    """The part of ``QSettings`` the registry uses."""

    def value(self, key: str, defaultValue: Any = None) -> Any: ...

    def setValue(self, key: str, value: Any) -> None: ...


class DictSettings:
    """An in-memory :class:`SettingsStore` (tests, console scripts without Qt)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def value(self, key: str, defaultValue: Any = None) -> Any:
        return self.values.get(key, defaultValue)

    def setValue(self, key: str, value: Any) -> None:
        self.values[key] = value


def _as_list(raw: Any) -> list[str]:
    """QSettings returns a str for a one-item list, a tuple or list otherwise, None when unset."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    return [str(item) for item in raw]


class ModelsFolderRegistry:
    """The user's models folder plus the folders FCDTrain trained into."""

    def __init__(self, store: SettingsStore) -> None:
        self.store = store

    @property
    def current(self) -> str | None:
        """The models folder chosen in FCDDetect, or None."""
        return path_or_none(self.store.value(MODELS_FOLDER_KEY, ""))

    def set_current(self, path: str | None) -> bool:
        """Remember ``path`` as the models folder; an unset path ("" or ".") is not stored."""
        value = path_or_none(path)
        if value is None:
            return False
        self.store.setValue(MODELS_FOLDER_KEY, value)
        return True

    def extra_folders(self) -> list[str]:
        """Registered run folders that still exist (unset and unsafe entries dropped)."""
        out: list[str] = []
        for folder in _as_list(self.store.value(EXTRA_MODEL_FOLDERS_KEY, [])):
            if scan_refusal(folder) is None and folder not in out:
                out.append(folder)
        return out

    def register(self, folder: str | Path | None) -> str:
        """Add a run folder to the list; raises FCDInputError for unset or unsafe folders."""
        refusal = scan_refusal(folder)
        if refusal is not None:
            raise FCDInputError(f"not registered as a models folder: {refusal}")
        value = str(Path(str(folder)).expanduser().resolve())
        stored = _as_list(self.store.value(EXTRA_MODEL_FOLDERS_KEY, []))
        if value not in stored:
            self.store.setValue(EXTRA_MODEL_FOLDERS_KEY, stored + [value])
        return value

    def folders(self) -> list[str]:
        """Every folder to list bundles from: the current one first, then the run folders."""
        current = self.current
        first = [current] if current is not None and scan_refusal(current) is None else []
        return first + [f for f in self.extra_folders() if f not in first]
