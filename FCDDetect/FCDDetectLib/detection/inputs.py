"""The images of one detection, read once: the scan's volumes, its ROI and brain mask, with their names.

A detection reads each file once. :meth:`DetectionInputs.load` reads files or checks
in-memory :class:`~FCDDetectLib.io.image_io.Image` objects; the same object then feeds the
network, the Heat-Score, the PNG overlay and the report, so ``fcd detect --png --report``
reads the scan and its ROI once, not three times.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.io.image_io import Image
    >>> scan = Image(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32), np.eye(4))
    >>> inputs = DetectionInputs.load([scan], labels=["flair"])
    >>> inputs.names, inputs.roi is None
    (['image 1'], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from FCDDetectLib.io.image_io import Image, load_image, load_mask, validate_array

__all__ = ["DetectionInputs", "ImageSource"]

ImageSource = str | Path | Image
"""A file (NIfTI, NRRD, MetaImage), a DICOM series folder, or an image already in memory."""


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
    ) -> DetectionInputs:
        """Read (or check) every volume; FCDInputError naming the file for any bad one.

        ``labels`` (the modalities) name in-memory images in error messages; ``names`` replace
        the recorded names (a cohort records its subjects' file paths).
        """
        if isinstance(images, (str, Path, Image)):
            images = [images]
        images = list(images)
        labels = list(labels) if labels is not None else [f"image {i + 1}" for i in range(len(images))]
        loaded = [
            _read(src, f"image {i + 1} ({labels[i]})" if i < len(labels) else f"image {i + 1}", series=series)
            for i, src in enumerate(images)
        ]
        return cls(
            images=loaded,
            names=list(names) if names is not None else [_source_name(s, f"image {i + 1}") for i, s in enumerate(images)],
            roi=_read(roi, "ROI", mask=True, segment=roi_segment) if roi is not None else None,
            roi_name=_source_name(roi, "ROI"),
            brain_mask=_read(brain_mask, "brain mask", mask=True) if brain_mask is not None else None,
            brain_mask_name=_source_name(brain_mask, "brain mask"),
            sources=images,
        )

    @property
    def reference(self) -> Image:
        """The first image: the grid every map of the detection lies on."""
        return self.images[0]
