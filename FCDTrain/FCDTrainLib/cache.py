"""Preprocess each subject once: a cache of model-grid input arrays under ``RUN/cache``.

Training reads many epochs over the same subjects; resampling every epoch would cost
more than the network. Each subject is run through the engine's
:func:`FCDDetectLib.preprocess.preprocess` (the same path ``fcd detect`` takes) once and
stored as ``RUN/cache/<key>/<subject>-<stamp>.npy`` (float32, (C, X, Y, Z)).

``key`` changes with spacing, shape, modalities, normalisation and engine version;
``stamp`` changes with the subject's source files (paths, sizes, modification times),
so a changed setting or a changed image never reuses a stale array. Files are written
to a temporary name and renamed, so a kill leaves no half file behind.

Example:
    >>> cache = VolumeCache("run/cache", spacing=[2, 2, 2], shape=[96, 112, 96], modalities=["flair"])
    >>> array = cache.get(subject)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from FCDDetectLib.files import write_atomic

CACHE_FORMAT = 1


def cache_key(spacing: Sequence[float], shape: Sequence[int], modalities: Sequence[str],
              normalisation: str = "zscore-head") -> str:
    """A short hash of everything that changes the preprocessed arrays."""
    from FCDDetectLib import __version__ as engine_version

    payload = {
        "format": CACHE_FORMAT,
        "spacing": [round(float(s), 6) for s in spacing],
        "shape": [int(s) for s in shape],
        "modalities": list(modalities),
        "normalisation": normalisation,
        "engine": engine_version,
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def source_stamp(paths: Iterable[Path]) -> str:
    """A short hash of the source files' paths, sizes and modification times."""
    parts = []
    for path in paths:
        stat = Path(path).stat()
        parts.append(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:10]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class VolumeCache:
    """Model-grid arrays of subjects for one (spacing, shape, modalities) configuration."""

    def __init__(self, root: str | Path, spacing: Sequence[float], shape: Sequence[int],
                 modalities: Sequence[str]) -> None:
        self.spacing = [float(s) for s in spacing]
        self.shape = [int(s) for s in shape]
        self.modalities = list(modalities)
        self.key = cache_key(self.spacing, self.shape, self.modalities)
        self.folder = Path(root) / self.key
        self.built = 0

    def sources(self, subject: Any) -> list[Path]:
        """The subject's image files in modality order."""
        return [Path(subject.images[m]) for m in self.modalities]

    def path_for(self, subject: Any) -> Path:
        """Where the subject's array lives (not necessarily built yet)."""
        stamp = source_stamp(self.sources(subject))
        return self.folder / f"{_safe(subject.subject_id)}-{stamp}.npy"

    def get(self, subject: Any) -> np.ndarray:
        """The subject's (C, X, Y, Z) float32 array, preprocessing it on first use."""
        path = self.path_for(subject)
        if path.exists():
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError):
                path.unlink(missing_ok=True)  # damaged by a crash outside our atomic writes
        return self._build(subject, path)

    def statistics(self, subject: Any) -> dict[str, float]:
        """The subject's input statistics (:func:`FCDDetectLib.ood.input_statistics`), made with its array."""
        path = self.path_for(subject).with_suffix(".stats.json")
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(stats, dict):
                return stats
        except (OSError, ValueError):
            pass
        self._build(subject, self.path_for(subject))  # a cache made before statistics existed
        return json.loads(path.read_text(encoding="utf-8"))

    def _build(self, subject: Any, path: Path) -> np.ndarray:
        from FCDDetectLib.files import write_json_atomic
        from FCDDetectLib.image_io import load_image
        from FCDDetectLib.ood import input_statistics
        from FCDDetectLib.preprocess import preprocess

        images = [load_image(p) for p in self.sources(subject)]
        prep = preprocess(images, self.spacing, self.shape)
        array = prep.tensor.numpy().astype(np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path.with_suffix(".stats.json"), input_statistics(images[0], prep))
        write_atomic(path, lambda tmp: np.save(tmp, array))
        self.built += 1
        return array

    def build(self, subjects: Sequence[Any], progress: Callable[[int, int, str], None] | None = None) -> None:
        """Make sure every subject is cached; ``progress(done, total, subject_id)`` after each."""
        for index, subject in enumerate(subjects):
            self.get(subject)
            if progress is not None:
                progress(index + 1, len(subjects), subject.subject_id)

    def stack(self, subjects: Sequence[Any]) -> np.ndarray:
        """(N, C, X, Y, Z) float32 array of the subjects, in order."""
        return np.stack([self.get(s) for s in subjects]).astype(np.float32, copy=False)
