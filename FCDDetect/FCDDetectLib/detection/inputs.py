"""The images of one detection, read once: the scan's volumes, its ROI and brain mask, with their names.

A detection reads each file once. :meth:`DetectionInputs.load` reads files or checks
in-memory :class:`~FCDDetectLib.io.image_io.Image` objects; the same object then feeds the
network, the Heat-Score, the PNG overlay and the report, so ``fcd detect --png --report``
reads the scan and its ROI once, not three times.

The inputs' identity: :func:`input_checksums` gives the SHA-256 of every input (a file's
bytes, a DICOM folder's files, an in-memory image's voxels and affine), computed once and
carried in :attr:`DetectionInputs.checksums` into ``result.json`` (``input_sha256``), where a
resumed cohort compares them: a result is reused only for the very same input files.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.io.image_io import Image
    >>> scan = Image(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32), np.eye(4))
    >>> inputs = DetectionInputs.load([scan], labels=["flair"])
    >>> inputs.names, inputs.roi is None
    (['image 1'], True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from FCDDetectLib.io.checksums import file_sha256
from FCDDetectLib.io.image_io import Image, load_image, load_mask, validate_array

__all__ = ["DetectionInputs", "ImageSource", "input_checksums", "source_sha256"]

ImageSource = str | Path | Image
"""A file (NIfTI, NRRD, MetaImage), a DICOM series folder, or an image already in memory."""


def source_sha256(source: ImageSource) -> str:
    """SHA-256 of one input: a file's bytes, a folder's files (a DICOM series: names and contents), an image's voxels.

    Example:
        >>> from FCDDetectLib.io.image_io import Image
        >>> a = source_sha256(Image(np.zeros((2, 2, 2), np.float32), np.eye(4)))
        >>> a == source_sha256(Image(np.zeros((2, 2, 2), np.float32), 2 * np.eye(4)))
        False
    """
    if isinstance(source, Image):
        digest = hashlib.sha256(b"image\n")
        array = np.ascontiguousarray(source.array)
        digest.update(f"{array.shape} {array.dtype.str}\n".encode())
        digest.update(array.tobytes())
        digest.update(np.asarray(source.affine, dtype="<f8").tobytes())
        return digest.hexdigest()
    path = Path(source)
    if path.is_dir():  # the files a DICOM series folder reader looks at (hidden ones are skipped)
        digest = hashlib.sha256(b"folder\n")
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
        return digest.hexdigest()
    return file_sha256(path)


def input_checksums(images: Sequence[ImageSource], roi: ImageSource | None = None,
                    brain_mask: ImageSource | None = None) -> dict[str, Any]:
    """The ``input_sha256`` record of one detection: ``{"images": [...], "roi": ..., "brain_mask": ...}``.

    Raises OSError for a file that cannot be read (callers treat that input as not reusable).

    Example:
        >>> from FCDDetectLib.io.image_io import Image
        >>> record = input_checksums([Image(np.ones((2, 2, 2), np.float32), np.eye(4))])
        >>> len(record["images"]), record["roi"]
        (1, None)
    """
    return {
        "images": [source_sha256(s) for s in images],
        "roi": source_sha256(roi) if roi is not None else None,
        "brain_mask": source_sha256(brain_mask) if brain_mask is not None else None,
    }


def _source_name(source: ImageSource | None, fallback: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else fallback


def _read(source: ImageSource, label: str, *, mask: bool = False, series: str | None = None,
          segment: str | None = None) -> Image:
    if isinstance(source, Image):
        array = source.array.astype(bool) if mask else source.array
        return validate_array(array, source.affine, label, constant_ok=mask)
    return load_mask(source, segment=segment, series=series) if mask else load_image(source, series=series)


@dataclass
class DetectionInputs:
    """A scan's volumes (in the model's modality order), its optional ROI and brain mask, read and checked."""

    images: list[Image]
    names: list[str]
    """What each image was read from (a path, or ``image N`` for an in-memory image)."""
    roi: Image | None = None
    roi_name: str = "ROI"
    brain_mask: Image | None = None
    brain_mask_name: str = "brain mask"
    sources: list[ImageSource] = field(default_factory=list)
    checksums: dict[str, Any] | None = None
    """:func:`input_checksums` of the sources (None: computed from the arrays on first use)."""

    @classmethod
    def load(
        cls,
        images: ImageSource | Sequence[ImageSource],
        roi: ImageSource | None = None,
        brain_mask: ImageSource | None = None,
        *,
        series: str | None = None,
        roi_segment: str | None = None,
        labels: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
        checksums: dict[str, Any] | None = None,
    ) -> DetectionInputs:
        """Read (or check) every volume; FCDInputError naming the file for any bad one.

        ``labels`` (the modalities) name in-memory images in error messages; ``names`` replace
        the recorded names (a cohort records its subjects' file paths). ``checksums``: the
        sources' :func:`input_checksums` when the caller has them already (else computed here).
        """
        if isinstance(images, (str, Path, Image)):
            images = [images]
        images = list(images)
        labels = list(labels) if labels is not None else [f"image {i + 1}" for i in range(len(images))]
        loaded = [
            _read(src, f"image {i + 1} ({labels[i]})" if i < len(labels) else f"image {i + 1}", series=series)
            for i, src in enumerate(images)
        ]
        roi_image = _read(roi, "ROI", mask=True, segment=roi_segment) if roi is not None else None
        mask_image = _read(brain_mask, "brain mask", mask=True) if brain_mask is not None else None
        if checksums is None:  # read: the files exist and can be read
            checksums = input_checksums(images, roi, brain_mask)
        return cls(
            images=loaded,
            names=list(names) if names is not None else [_source_name(s, f"image {i + 1}") for i, s in enumerate(images)],
            roi=roi_image,
            roi_name=_source_name(roi, "ROI"),
            brain_mask=mask_image,
            brain_mask_name=_source_name(brain_mask, "brain mask"),
            sources=images,
            checksums=checksums,
        )

    def identity_checksums(self) -> dict[str, Any]:
        """:attr:`checksums`, computed from the arrays when the inputs did not come with them."""
        if self.checksums is None:
            self.checksums = input_checksums(self.images, self.roi, self.brain_mask)
        return self.checksums

    @property
    def reference(self) -> Image:
        """The first image: the grid every map of the detection lies on."""
        return self.images[0]
