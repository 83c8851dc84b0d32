"""Preprocess each subject once: a cache of model-grid input arrays under ``RUN/cache``.

Training reads many epochs over the same subjects; resampling every epoch would cost
more than the network. Each subject is run through the engine's
:func:`FCDDetectLib.grid.preprocess.preprocess` (the same path ``fcd detect`` takes) once and
stored as ``RUN/cache/<key>/<subject>-<stamp>.npy`` (float32, (C, X, Y, Z)).

``key`` changes with spacing, shape, modalities, normalisation and engine version;
``stamp`` changes with the subject's source files (paths, sizes, modification times),
so a changed setting or a changed image never reuses a stale array. Files are written
to a temporary name and renamed, so a kill leaves no half file behind.

A cache entry is a run file, so it is untrusted when read: one that is not a float32
``.npy`` of the configuration's shape (checked in its header before the data is read), or
that holds NaN or infinite values, is refused with an error naming it, when the cache is
checked before training starts (:meth:`VolumeCache.build`), never after an epoch.
Deleting the file makes the next run rebuild it from the subject's images.

Lesion supervision also needs each patient's ROI on the same model grid: it is resampled
through the very same preprocessing (:func:`FCDDetectLib.grid.preprocess.mask_to_model_grid`:
world coordinates onto the image's model grid, linear, so a voxel holds the share of it
inside the ROI) and cached beside the image as ``<subject>-<roi stamp>.roi.npy`` (float32,
(1, X, Y, Z)). The ROI stamp covers the image files *and* the ROI file (and
:data:`ROI_RESAMPLING`), so a new ROI, a new image or another resampling never reuses a
stale target; the image arrays and the folder key are those of the classifier-only runs,
which share them.

Example:
    >>> cache = VolumeCache("run/cache", spacing=[2, 2, 2], shape=[96, 112, 96], modalities=["flair"])
    >>> array = cache.get(subject)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_atomic

from FCDTrainLib.run_folder.run_files import read_json_object

CACHE_FORMAT = 2
"""2: anti-aliased resampling (FCDDetectLib.grid.antialias) and statistics over every input image."""
ROI_RESAMPLING = "linear-world-v1"  # part of every cached ROI's stamp


def cache_key(spacing: Sequence[float], shape: Sequence[int], modalities: Sequence[str],
              normalisation: str = "zscore-head") -> str:
    """A short hash of everything that changes the preprocessed arrays."""
    from FCDDetectLib.version import __version__ as engine_version

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


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` of ``array`` to ``path``, atomically, with a full disk reported as ``ENOSPC``.

    Into a real file numpy writes with C ``fwrite`` and reports a short write as
    ``OSError("N requested and M written")`` without an errno; written from memory through a
    Python file the system's ``OSError`` (``ENOSPC``, ``EDQUOT``) comes as it is. The arrays are
    a few MB (one subject on the model grid).
    """
    buffer = io.BytesIO()
    np.save(buffer, array)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())

    write_atomic(path, write)


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

    def roi_path_for(self, subject: Any) -> Path:
        """Where the subject's model-grid ROI lives (the subject must have an ROI)."""
        stamp = source_stamp([*self.sources(subject), Path(subject.roi)])
        tag = hashlib.sha1(f"{stamp}|{ROI_RESAMPLING}".encode()).hexdigest()[:10]
        return self.folder / f"{_safe(subject.subject_id)}-{tag}.roi.npy"

    def _read(self, path: Path, channels: int) -> np.ndarray | None:
        """The cached (channels, X, Y, Z) float32 array at ``path``; None when there is none yet.

        Raises:
            FCDInputError: naming the file when it is not such an array (checked in the header,
                before the data is read) or holds NaN or infinite values.
        """
        if not path.exists():
            return None
        expected = (channels, *self.shape)

        def damaged(reason: str) -> FCDInputError:
            return FCDInputError(f"{path}: damaged cache entry ({reason}); delete it and run the same command "
                                 "again (it is rebuilt from the subject's images)")

        try:
            with path.open("rb") as handle:
                version = np.lib.format.read_magic(handle)
                if version not in ((1, 0), (2, 0)):  # what np.save writes for plain float arrays
                    raise damaged(f".npy format {version[0]}.{version[1]}")
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(handle)
                if dtype != np.float32 or tuple(shape) != expected:
                    raise damaged(f"{dtype} {tuple(shape)}, expected float32 {expected}")
                array = np.load(path, allow_pickle=False)
        except FCDInputError:
            raise
        except (ValueError, OSError, EOFError) as error:
            raise damaged(f"{str(error).splitlines()[0][:120] or type(error).__name__}") from None
        if array.shape != expected or array.dtype != np.float32:
            raise damaged(f"{array.dtype} {array.shape}, expected float32 {expected}")
        if not np.isfinite(array).all():
            raise damaged("it holds NaN or infinite values")
        return array

    def statistics(self, subject: Any) -> dict[str, float]:
        """The subject's input statistics (:func:`FCDDetectLib.grid.ood.input_statistics`), made with its array."""
        path = self.path_for(subject).with_suffix(".stats.json")
        if not path.exists():
            self._build(subject, with_roi=False)  # a cache made before statistics existed
        stats = read_json_object(path, "cache statistics")
        if not all(isinstance(v, (int, float)) or v is None for v in stats.values()):
            raise FCDInputError(f"{path}: damaged cache statistics (values must be numbers); delete it and run again")
        return stats

    def _build(self, subject: Any, with_roi: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocess the subject once; write its image array and statistics (and its ROI when asked)."""
        from FCDDetectLib.grid.ood import input_statistics
        from FCDDetectLib.grid.preprocess import mask_to_model_grid, preprocess
        from FCDDetectLib.io.atomic_files import write_json_atomic
        from FCDDetectLib.io.image_io import load_image, load_mask

        images = [load_image(p) for p in self.sources(subject)]
        prep = preprocess(images, self.spacing, self.shape)
        array = prep.tensor.numpy().astype(np.float32)
        if not np.isfinite(array).all():
            raise FCDInputError(f"{self.sources(subject)[0]}: preprocessing gives NaN or infinite values "
                                f"({subject.subject_id}); check the image")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(subject)
        write_json_atomic(path.with_suffix(".stats.json"), input_statistics(images, prep))
        save_array(path, array)
        self.built += 1
        roi = None
        if with_roi:
            roi = mask_to_model_grid(load_mask(subject.roi), prep, name=str(subject.roi))[None]
            save_array(self.roi_path_for(subject), roi)
        return array, roi

    def get(self, subject: Any) -> np.ndarray:
        """The subject's (C, X, Y, Z) float32 array, preprocessing it on first use."""
        array = self._read(self.path_for(subject), len(self.modalities))
        return array if array is not None else self._build(subject, with_roi=False)[0]

    def get_roi(self, subject: Any) -> np.ndarray | None:
        """The lesion target (1, X, Y, Z) in [0, 1]: the ROI for a patient, zeros for a control.

        None for a patient without an ROI (its lesion target is unknown).
        """
        if int(subject.label) != 1:
            return np.zeros((1, *self.shape), dtype=np.float32)
        if subject.roi is None:
            return None
        roi = self._read(self.roi_path_for(subject), 1)
        return roi if roi is not None else self._build(subject, with_roi=True)[1]

    def build(self, subjects: Sequence[Any], progress: Callable[[int, int, str], None] | None = None,
              with_rois: bool = False) -> None:
        """Make sure every subject (and, with ``with_rois``, every patient's ROI) is cached.

        ``progress(done, total, subject_id)`` after each subject.
        """
        for index, subject in enumerate(subjects):
            wants_roi = with_rois and int(subject.label) == 1 and subject.roi is not None
            if wants_roi and self._read(self.roi_path_for(subject), 1) is None:
                self._build(subject, with_roi=True)  # one preprocessing for the image and its ROI
            else:
                self.get(subject)  # an existing entry is read and checked: a damaged one stops here
            if progress is not None:
                progress(index + 1, len(subjects), subject.subject_id)

    def stack(self, subjects: Sequence[Any]) -> np.ndarray:
        """(N, C, X, Y, Z) float32 array of the subjects, in order."""
        return np.stack([self.get(s) for s in subjects]).astype(np.float32, copy=False)

    def stack_rois(self, subjects: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, X, Y, Z) lesion targets and (N,) bool "target known" (False: patient without ROI)."""
        targets, known = [], []
        for subject in subjects:
            roi = self.get_roi(subject)
            known.append(roi is not None)
            targets.append(roi if roi is not None else np.zeros((1, *self.shape), dtype=np.float32))
        if not targets:
            return np.zeros((0, 1, *self.shape), np.float32), np.zeros(0, bool)
        return np.stack(targets).astype(np.float32, copy=False), np.asarray(known, dtype=bool)
