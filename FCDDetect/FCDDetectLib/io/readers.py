"""Every image file format the engine reads, behind one function: :func:`read_volume`.

- NIfTI (``.nii``, ``.nii.gz``, NIfTI ``.hdr/.img`` pairs): nibabel, as before this module
  existed (its qform/sform rules are the NIfTI standard's; ``Testing/engine/test_readers.py``
  checks SimpleITK reads the same array and affine from the same file).
- NRRD / NHDR (``.nrrd``, ``.nhdr``, Slicer's ``.seg.nrrd``), MetaImage (``.mha``, ``.mhd``):
  SimpleITK.
- A DICOM series given as a folder: :mod:`FCDDetectLib.io.dicom_series` (pydicom reads the
  headers to pick and check the series, SimpleITK reads the voxels).

Why SimpleITK and not nibabel + pydicom alone: nibabel reads NRRD only through a community
plugin and no MetaImage; pydicom gives slices, not volumes (sorting, spacing, rescaling
would be ours to write and keep). SimpleITK (ITK's NRRD, MetaImage and GDCM readers, the
readers Slicer itself uses) covers all three with one geometry model; it is a single wheel
with no further dependencies. nibabel stays for NIfTI because every earlier result of this
project was read through it and its qform/sform handling is the reference one.

Every reader returns the voxels in the engine's (I, J, K) order with a voxel -> RAS affine
(the LPS/RAS flip happens in :mod:`FCDDetectLib.io.orientation` only), after refusing with one
:class:`~FCDDetectLib.errors.FCDInputError` line: a volume over
:data:`~FCDDetectLib.io.voxel_limits.MAX_VOXELS` (checked from the header, before reading), a NIfTI
without orientation (qform and sform codes 0) or an Analyze file, a gzip file named ``.nii``,
an NRRD with a non-spatial axis, values that do not fit float32, and for ``.seg.nrrd`` a
missing or ambiguous segment.

Example:
    >>> data, affine = read_volume("FLAIR.nrrd", "FLAIR FLAIR.nrrd")  # doctest: +SKIP
    >>> roi, _ = read_volume("Segmentation.seg.nrrd", "ROI", segment="lesion")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.orientation import itk_array_to_ijk, sitk_image_to_ras_affine
from FCDDetectLib.io.voxel_limits import check_voxel_count, to_float32

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
"""File endings read as images (a folder is read as a DICOM series)."""

_SPATIAL_KINDS = ("domain", "space")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path``'s name ends like an image this module reads (``.seg.nrrd`` included)."""
    name = Path(path).name.lower()
    return name.endswith(IMAGE_SUFFIXES) and not name.endswith(".img.gz")


def read_volume(
    path: str | os.PathLike,
    label: str,
    *,
    series: str | None = None,
    segment: str | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels ((I, J, K), float32, or uint8 0/1 for a chosen segment) and the RAS affine of ``path``.

    ``label`` starts every error message (e.g. ``"FLAIR scan.nrrd"``). ``series`` picks a DICOM
    series in a folder (SeriesInstanceUID or SeriesDescription). ``segment`` picks a segment of a
    ``.seg.nrrd`` (name, ID or label value) or a label value of any other labelmap.

    Example:
        >>> data, affine = read_volume("scan.mha", "scan.mha")  # doctest: +SKIP
    """
    file = Path(path)
    if not file.exists():
        raise FCDInputError(f"{label}: file not found")
    if file.is_dir():
        from FCDDetectLib.io.dicom_series import find_series, read_series

        data, affine = read_series(find_series(file, series, label), label)
    else:
        name = file.name.lower()
        if name.endswith(ITK_SUFFIXES):
            data, affine = _read_itk(file, label, segment)
            if segment is not None and not name.endswith(".seg.nrrd"):
                data = _label_value(data, segment, label)
            return data, affine
        data, affine = _read_nifti(file, label)
    if segment is not None:
        data = _label_value(data, segment, label)
    return data, affine


def _label_value(data: np.ndarray, segment: str | int, label: str) -> np.ndarray:
    """Voxels equal to the label value ``segment`` of a plain labelmap, as uint8 0/1."""
    try:
        value = float(segment)
    except ValueError:
        raise FCDInputError(
            f"{label}: segment {segment!r} chosen by name, but this file is a plain labelmap with no segment "
            "names; give a label value (e.g. 1) or a Slicer .seg.nrrd"
        ) from None
    chosen = data == value
    if not chosen.any():
        values = ", ".join(f"{v:g}" for v in np.unique(data)[:10])
        raise FCDInputError(f"{label}: no voxel has label value {value:g} (values present: {values})")
    return chosen.astype(np.uint8)


# ---------------------------------------------------------------- NIfTI (nibabel)


def _read_nifti(file: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    name = file.name.lower()
    with file.open("rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b" and not name.endswith(".gz"):
        raise FCDInputError(f"{label}: file is gzip-compressed but named {file.suffix}; rename it to {file.name}.gz")
    if name.endswith(".nii.gz") and magic != b"\x1f\x8b" and file.stat().st_size >= 348:
        with file.open("rb") as handle:
            handle.seek(344)
            nifti_magic = handle.read(4)
        if nifti_magic in (b"n+1\0", b"n+2\0"):
            raise FCDInputError(f"{label}: file is an uncompressed NIfTI named .nii.gz; rename it to {file.name[:-3]}")
    if not name.endswith(NIFTI_SUFFIXES + (".gz",)):
        raise FCDInputError(
            f"{label}: unknown image format (expected .nii, .nii.gz, .nrrd, .nhdr, .seg.nrrd, .mha, .mhd "
            "or a DICOM series folder)"
        )
    try:
        image = nib.load(str(file))
    except Exception as error:  # nibabel raises many types for a damaged or foreign file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FCDInputError(f"{label}: not a readable NIfTI image ({reason})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti1Pair, nib.Nifti2Image, nib.Nifti2Pair)):
        raise FCDInputError(
            f"{label}: Analyze file ({type(image).__name__}) has no reliable orientation "
            "(Analyze 7.5 stores none); convert it to NIfTI with a known orientation first"
        )
    header = image.header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise FCDInputError(
            f"{label}: orientation unknown (NIfTI qform_code and sform_code are both 0); "
            "nibabel would guess an affine and left/right could be wrong. Set the orientation (e.g. "
            "fslorient, or load and save it in Slicer after checking it) and try again"
        )
    check_voxel_count(tuple(header.get_data_shape()), label)
    try:
        data = np.asanyarray(image.dataobj)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FCDInputError(f"{label}: not a readable NIfTI image ({reason})") from None
    return to_float32(data, label), affine


# ---------------------------------------------------------------- NRRD, MetaImage (SimpleITK)


def _nrrd_kinds(file: Path) -> list[str]:
    """The ``kinds:`` field of an NRRD/NHDR header (for messages); [] when absent."""
    with file.open("rb") as handle:
        head = handle.read(65536)
    text = head.split(b"\n\n", 1)[0].decode("latin-1")
    for line in text.splitlines():
        if line.lower().startswith("kinds:"):
            return line.split(":", 1)[1].split()
    return []


def _read_itk(file: Path, label: str, segment: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # ITK warnings would break the one-line stderr
    is_seg = file.name.lower().endswith(".seg.nrrd")
    nrrd = file.suffix.lower() in (".nrrd", ".nhdr")
    if nrrd:
        # checked before ITK, which fails on some non-spatial axes with an unhelpful message
        kinds = _nrrd_kinds(file)
        extra = [k for k in kinds if k.lower() not in _SPATIAL_KINDS]
        layers_ok = is_seg and len(extra) == 1 and kinds[0].lower() in ("list", "vector")
        if extra and not layers_ok:
            raise FCDInputError(
                f"{label}: image has a non-spatial axis ({', '.join(extra)}; kinds: {' '.join(kinds)}); "
                "expected a single 3D scalar volume"
            )
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        reason = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), "unreadable")
        raise FCDInputError(f"{label}: not a readable {file.suffix} image ({reason[:200]})") from None
    size = tuple(reader.GetSize())
    components = reader.GetNumberOfComponents()
    if reader.GetDimension() != 3 or (components > 1 and not is_seg):
        raise FCDInputError(
            f"{label}: image has {reader.GetDimension()} axes with {components} component(s) per voxel; "
            "expected a single 3D scalar volume"
        )
    check_voxel_count((*size, components), label)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        reason = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), "unreadable")
        raise FCDInputError(f"{label}: not a readable {file.suffix} image ({reason[:200]})") from None
    affine = sitk_image_to_ras_affine(image)
    data = itk_array_to_ijk(sitk.GetArrayFromImage(image))
    if is_seg:
        metadata = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
        return _segment(data, metadata, segment, label), affine
    return to_float32(np.ascontiguousarray(data), label), affine


def _segments(metadata: dict[str, str]) -> list[dict[str, str]]:
    """Slicer's ``SegmentN_*`` header fields, one dict per segment (name, id, label value, layer)."""
    found = []
    index = 0
    while f"Segment{index}_ID" in metadata or f"Segment{index}_Name" in metadata:
        key = f"Segment{index}_"
        found.append(
            {
                "name": metadata.get(key + "Name", ""),
                "id": metadata.get(key + "ID", ""),
                "value": metadata.get(key + "LabelValue", str(index + 1)),
                "layer": metadata.get(key + "Layer", "0"),
            }
        )
        index += 1
    return found


def _segment(data: np.ndarray, metadata: dict[str, str], segment: str | int | None, label: str) -> np.ndarray:
    """The voxels of one segment of a Slicer segmentation ((I, J, K) or (I, J, K, layers)) as uint8 0/1."""
    segments = _segments(metadata)
    listing = ", ".join(f"{s['name'] or s['id']} (label {s['value']}, layer {s['layer']})" for s in segments)
    if not segments:
        raise FCDInputError(f"{label}: .seg.nrrd without Segment0_* fields; not a Slicer segmentation")
    if segment is None:
        if len(segments) != 1:
            raise FCDInputError(f"{label}: holds {len(segments)} segments ({listing}); choose one by name or label value")
        chosen = segments[0]
    else:
        key = str(segment).strip()
        by_name = [s for s in segments if key.lower() in (s["name"].lower(), s["id"].lower())]
        by_value = [s for s in segments if s["value"] == key]
        matches = by_name or by_value
        if not matches:
            raise FCDInputError(f"{label}: no segment named or labelled {key!r} (segments: {listing})")
        if len(matches) > 1:
            raise FCDInputError(f"{label}: {len(matches)} segments match {key!r} ({listing}); choose by name")
        chosen = matches[0]
    layers = data if data.ndim == 4 else data[..., None]
    layer = int(chosen["layer"])
    if not 0 <= layer < layers.shape[-1]:
        raise FCDInputError(f"{label}: segment {chosen['name']!r} lies on layer {layer}, the file has {layers.shape[-1]}")
    return (layers[..., layer] == int(chosen["value"])).astype(np.uint8)
