"""Every image file format the engine reads, behind one function: :func:`read_volume`.

- NIfTI (``.nii``, ``.nii.gz``, NIfTI ``.hdr/.img`` pairs): nibabel, as before this module
  existed (its qform/sform rules are the NIfTI standard's; ``Testing/engine/test_readers.py``
  checks SimpleITK reads the same array and affine from the same file). Where nibabel and
  SimpleITK (the reader 3D Slicer uses) would place a scan differently, the file is refused
  with one line saying what to fix (:func:`nifti_geometry_problem`; docs/formats.md): a
  negative or zero voxel size in ``pixdim``, ``pixdim`` voxel sizes that differ from the
  sform's, a sheared sform, or a qform and sform that differ while ``sform_code`` is not 1
  (nibabel takes the sform, ITK the qform). ``Testing/engine/test_header_agreement.py``
  reads a grid of such headers through both readers: every file accepted here lies where
  SimpleITK puts it.
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

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    try:
        return _read_volume(Path(path), label, series, segment)
    except OSError as error:  # a name over 255 bytes, a link loop, a file that vanished or cannot be read
        raise FCDInputError(f"{label}: cannot be read ({error.strerror or type(error).__name__})") from None


def _read_volume(file: Path, label: str, series: str | None, segment: str | int | None) -> tuple[np.ndarray, np.ndarray]:
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
        with _quiet_nibabel():  # its header fixes ("setting to abs of pixdim values") are checked below instead
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
    problem = nifti_geometry_problem(_raw_header(image))
    if problem:
        raise FCDInputError(f"{label}: {problem}")
    try:
        data = np.asanyarray(image.dataobj)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FCDInputError(f"{label}: not a readable NIfTI image ({reason})") from None
    return to_float32(data, label), affine


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """nibabel's header log lines (unprefixed, on stderr) off while it reads."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _raw_header(image: Any) -> Any:
    """The NIfTI header as stored in the file (nibabel's loaded header has pixdim already "fixed")."""
    from nibabel.openers import ImageOpener

    holder = image.file_map.get("header") or image.file_map["image"]
    with ImageOpener(holder.filename) as handle:
        return type(image.header).from_fileobj(handle, check=False)


_RELATIVE_TOLERANCE = 1e-4  # float32 header fields carry ~1e-7 relative rounding
_SFORM_SCANNER = 1  # NIFTI_XFORM_SCANNER_ANAT: the only sform code ITK prefers over a qform


def nifti_geometry_problem(header: Any) -> str | None:
    """Why nibabel and SimpleITK (Slicer's reader) would place this NIfTI header differently; None if they agree.

    nibabel uses the sform whenever ``sform_code`` > 0, else the qform built from the
    quaternion and ``abs(pixdim)`` (0 becomes 1 mm). ITK takes its voxel sizes from ``pixdim``
    as stored (a negative one mirrors the axis), its directions from the sform only when
    ``sform_code`` is 1 or there is no qform, and refuses a sheared sform. The headers on
    which these rules give different answers are refused (``header`` as stored:
    :func:`_raw_header`).

    Example:
        >>> import nibabel as nib, numpy as np
        >>> header = nib.Nifti1Header()
        >>> header.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
        >>> nifti_geometry_problem(header) is None
        True
        >>> header["pixdim"][1] = -2.0
        >>> nifti_geometry_problem(header).split(";")[0]
        'pixdim[1] is -2 (a negative voxel size) in a header oriented by its qform'
    """
    pixdim = [float(v) for v in header["pixdim"][1:4]]
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    for axis, size in enumerate(pixdim, start=1):
        if not math.isfinite(size) or size <= 0:
            what = "a negative voxel size" if size < 0 else "no voxel size"
            if sform_code > 0:
                return (f"pixdim[{axis}] is {size:g} ({what}) while the sform gives voxel sizes: Slicer (ITK) "
                        "takes pixdim, nibabel the sform, and they would place the scan differently; make them "
                        "agree (e.g. fslorient -copysform2qform FILE)")
            return (f"pixdim[{axis}] is {size:g} ({what}) in a header oriented by its qform; nibabel reads "
                    f"{'abs(pixdim)' if size < 0 else '1 mm'}, Slicer (ITK) "
                    f"{'mirrors that axis' if size < 0 else 'guesses too'}, so the scan would lie in different "
                    "places; set the true positive voxel sizes (a flip belongs in the qform's qfac), or write the "
                    "file again from its DICOM")
    if sform_code <= 0:
        return None
    sform = np.asarray(header.get_sform(), dtype=np.float64)
    if not np.all(np.isfinite(sform)):
        return "the sform holds NaN or infinite values; fix the header's orientation"
    columns = sform[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms == 0):
        return "the sform has a zero column (a collapsed axis); fix the header's orientation"
    if not np.allclose(norms, pixdim, rtol=_RELATIVE_TOLERANCE, atol=1e-6):
        return (f"pixdim voxel sizes ({', '.join(f'{v:g}' for v in pixdim)} mm) differ from the sform's "
                f"({', '.join(f'{v:g}' for v in norms)} mm): Slicer (ITK) takes pixdim, nibabel the sform; make them "
                "agree (e.g. fslorient -copysform2qform FILE)")
    unit = columns / norms
    if not np.allclose(unit.T @ unit, np.eye(3), atol=_RELATIVE_TOLERANCE):
        return ("the sform shears the voxel grid (its axes are not orthogonal): Slicer (ITK) cannot use it and falls "
                "back to the qform or refuses the file; resample the scan onto an orthogonal grid")
    if sform_code != _SFORM_SCANNER and qform_code > 0:
        fixed = header.copy()
        fixed["pixdim"][0] = -1.0 if float(header["pixdim"][0]) == -1.0 else 1.0  # qfac 0 reads as 1 in both
        try:
            qform = np.asarray(fixed.get_qform(), dtype=np.float64)
        except Exception as error:  # nibabel's HeaderDataError for an impossible quaternion
            return f"the qform cannot be computed ({error}); fix the header's orientation"
        scale = float(norms.max())
        if not np.allclose(qform, sform, rtol=0, atol=_RELATIVE_TOLERANCE * max(scale, 1.0) + 1e-3):
            return (f"the qform and the sform differ and sform_code is {sform_code} (not 1, scanner): nibabel "
                    "places the scan by the sform, Slicer (ITK) by the qform; make them agree (fslorient "
                    "-copysform2qform FILE when the sform is right, -copyqform2sform when the qform is)")
    return None


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
