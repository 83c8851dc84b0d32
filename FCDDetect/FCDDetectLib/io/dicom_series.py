"""A DICOM series given as a folder: find it, check it is one complete volume, read it.

pydicom reads the headers (fast, ``stop_before_pixels``): the files are grouped by
SeriesInstanceUID, the series is chosen (by UID or SeriesDescription when the folder holds
several) and checked: one orientation, one matrix, no two slices at one position, no gap,
equal spacing. SimpleITK (GDCM) then reads the voxels in that slice order, applying the
rescale slope/intercept. Slice ``k`` of the volume is ``DicomSeries.files[k]``; the DICOM
outputs for PACS (:mod:`FCDDetectLib.outputs.dicom_outputs`) rely on that.

Example:
    >>> series = find_series("DICOM/", "FLAIR 3D", "FLAIR DICOM/")  # doctest: +SKIP
    >>> data, affine = read_series(series, "FLAIR DICOM/")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.orientation import itk_array_to_ijk, sitk_image_to_ras_affine

_TOLERANCE_MM = 1e-3  # positions / orientations equal within this (scanners write ~1e-5 mm)


@dataclass
class DicomSeries:
    """One checked series: its files in slice order (ascending along the slice normal) and its identity."""

    folder: Path
    series_uid: str
    description: str
    study_uid: str
    frame_of_reference_uid: str
    files: list[Path]
    positions: np.ndarray  # (n, 3) ImagePositionPatient (LPS mm) per file, in ``files`` order
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    sop_instance_uids: list[str] = field(default_factory=list)


def _headers(folder: Path) -> list[tuple[Path, object]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError, AttributeError):
            continue  # not DICOM (a README, a DICOMDIR's companions, a damaged file)
        if "Rows" in ds and "SeriesInstanceUID" in ds:
            found.append((path, ds))
    return found


def _describe(uid: str, items: list) -> str:
    ds = items[0][1]
    description = str(getattr(ds, "SeriesDescription", "") or "no description")
    return f"{uid} '{description}' ({len(items)} files, {getattr(ds, 'Modality', '?')})"


def list_series(folder: str | Path) -> dict[str, list[tuple[Path, object]]]:
    """SeriesInstanceUID -> [(file, pydicom header)] of the image files under ``folder``."""
    groups: dict[str, list] = {}
    for path, ds in _headers(Path(folder)):
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    return groups


def find_series(folder: str | Path, series: str | None, label: str) -> DicomSeries:
    """The series in ``folder`` chosen by UID or SeriesDescription (or the only one), checked.

    Errors (FCDInputError starting with ``label``): no image series, several and no (or an
    unmatched) choice, listing each series found; a series whose files mix orientations or
    matrix sizes, share slice positions, miss slices or have unequal spacing (saying which);
    an enhanced multi-frame file; a single slice.
    """
    root = Path(folder)
    groups = list_series(root)
    if not groups:
        raise FCDInputError(
            f"{label}: is a folder with no DICOM image series in it (no file with pixel rows and a SeriesInstanceUID); "
            "give an image file or a DICOM series folder"
        )
    listing = "; ".join(_describe(uid, items) for uid, items in groups.items())
    if series is None:
        if len(groups) > 1:
            raise FCDInputError(
                f"{label}: folder holds {len(groups)} series, choose one by SeriesInstanceUID or "
                f"SeriesDescription (--series): {listing}"
            )
        uid = next(iter(groups))
    else:
        matches = [u for u in groups if u == series] or [
            u for u, items in groups.items()
            if str(getattr(items[0][1], "SeriesDescription", "")).strip().lower() == series.strip().lower()
        ]
        if not matches:
            raise FCDInputError(f"{label}: no series with UID or description {series!r}; series found: {listing}")
        if len(matches) > 1:
            raise FCDInputError(
                f"{label}: {len(matches)} series are described {series!r}; choose by SeriesInstanceUID: "
                + "; ".join(_describe(u, groups[u]) for u in matches)
            )
        uid = matches[0]
    return _checked(root, uid, groups[uid], label)


def _checked(root: Path, uid: str, items: list, label: str) -> DicomSeries:
    where = f"{label}: series {uid}"
    first = items[0][1]
    if int(getattr(first, "NumberOfFrames", 1) or 1) > 1:
        raise FCDInputError(f"{where}: enhanced multi-frame DICOM is not supported; export a classic single-frame series")
    if len(items) < 2:
        raise FCDInputError(f"{where}: a single slice (2D); expected a volume of several slices")
    missing = [p.name for p, ds in items if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds]
    if missing:
        raise FCDInputError(f"{where}: {len(missing)} file(s) without ImagePositionPatient/ImageOrientationPatient, e.g. {missing[0]}")
    orientations = np.array([[float(v) for v in ds.ImageOrientationPatient] for _, ds in items])
    if np.abs(orientations - orientations[0]).max() > _TOLERANCE_MM:
        distinct = len({tuple(np.round(o, 3)) for o in orientations})
        raise FCDInputError(f"{where}: mixed series, files have {distinct} different slice orientations")
    matrices = {(int(ds.Rows), int(ds.Columns)) for _, ds in items}
    if len(matrices) > 1:
        raise FCDInputError(f"{where}: mixed series, files have {len(matrices)} matrix sizes {sorted(matrices)}")
    row, column = orientations[0][:3], orientations[0][3:]
    normal = np.cross(row, column)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    items = [items[i] for i in order]
    steps = np.diff(along)
    if (steps < _TOLERANCE_MM).any():
        k = int(np.argmax(steps < _TOLERANCE_MM))
        raise FCDInputError(
            f"{where}: mixed series, {items[k][0].name} and {items[k + 1][0].name} lie at the same slice position "
            f"({along[k]:.3f} mm); several acquisitions or echoes share this series UID"
        )
    step = float(np.median(steps))
    gaps = np.flatnonzero(steps > 1.5 * step)
    if gaps.size:
        k = int(gaps[0])
        lost = int(round(steps[k] / step)) - 1
        raise FCDInputError(
            f"{where}: incomplete, about {lost} slice(s) missing between positions {along[k]:.2f} and "
            f"{along[k + 1]:.2f} mm (after {items[k][0].name}; slice spacing {step:.3g} mm)"
        )
    if np.abs(steps - step).max() > max(_TOLERANCE_MM, 0.01 * step):
        raise FCDInputError(
            f"{where}: unequal slice spacing, from {steps.min():.4g} to {steps.max():.4g} mm; "
            "resample the series to a regular grid first"
        )
    return DicomSeries(
        folder=root,
        series_uid=uid,
        description=str(getattr(first, "SeriesDescription", "") or ""),
        study_uid=str(getattr(first, "StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(getattr(first, "FrameOfReferenceUID", "") or ""),
        files=[p for p, _ in items],
        positions=positions,
        orientation=orientations[0],
        sop_instance_uids=[str(getattr(ds, "SOPInstanceUID", "")) for _, ds in items],
    )


def read_series(series: DicomSeries, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Voxels ((I, J, K): columns, rows, slices in ``series.files`` order; float32) and RAS affine."""
    import pydicom
    import SimpleITK as sitk

    from FCDDetectLib.io.voxel_limits import check_voxel_count, to_float32

    header = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    check_voxel_count((int(header.Columns), int(header.Rows), len(series.files)), label)
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # GDCM warnings would break the one-line stderr
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in series.files])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        reason = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), "unreadable")
        raise FCDInputError(f"{label}: series {series.series_uid} could not be read ({reason[:200]})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise FCDInputError(f"{label}: series {series.series_uid} is not a scalar 3D volume (colour or 2D images?)")
    affine = sitk_image_to_ras_affine(image)
    if np.abs(np.asarray(image.GetOrigin()) - series.positions[0]).max() > 1e-2:
        raise FCDInputError(f"{label}: series {series.series_uid}: reader's origin disagrees with the first slice's position")
    data = np.ascontiguousarray(itk_array_to_ijk(sitk.GetArrayFromImage(image)))
    return to_float32(data, label), affine
