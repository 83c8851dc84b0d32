"""Write one scan as NRRD, Slicer .seg.nrrd, MetaImage and a DICOM series, independently of the engine.

Test helper (not a test file). Each writer takes the engine's convention (array (I, J, K),
voxel -> RAS affine) and does its own LPS flip, so a reader bug in
:mod:`FCDDetectLib.io.orientation` cannot cancel out against the same bug here:

- :func:`write_nrrd` writes the NRRD text header and raw bytes by hand (the format is
  small; Slicer's fields: ``space``, ``space directions``, ``space origin``, ``kinds``).
- :func:`write_seg_nrrd` adds Slicer's ``SegmentN_*`` fields (multi-layer as a ``list`` axis).
- :func:`write_mha` uses SimpleITK with an origin/direction computed here.
- :func:`write_dicom_series` uses pydicom: one MR Image Storage file per slice.

Example:
    >>> write_nrrd(tmp_path / "scan.nrrd", volume, affine)  # doctest: +SKIP
    >>> files = write_dicom_series(tmp_path / "dicom", volume.astype("int16"), affine)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

_FLIP = np.diag([-1.0, -1.0, 1.0])
_NRRD_TYPES = {"uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32", "float32": "float", "float64": "double"}


def _lps(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 voxel axes in LPS mm as columns, origin LPS) of a RAS affine."""
    affine = np.asarray(affine, dtype=np.float64)
    return _FLIP @ affine[:3, :3], _FLIP @ affine[:3, 3]


def _vec(v: Sequence[float]) -> str:
    return "(" + ",".join(repr(float(x)) for x in v) + ")"


def write_nrrd(
    path: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    kinds: Sequence[str] | None = None,
    fields: dict[str, str] | None = None,
) -> Path:
    """Write ``array`` ((I, J, K), or (L, I, J, K) with a leading non-spatial axis) as a raw NRRD."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(array)
    axes, origin = _lps(affine)
    leading = data.ndim == 4
    kinds = list(kinds or (["list"] if leading else []) + ["domain"] * 3)
    directions = (["none"] if leading else []) + [_vec(axes[:, i]) for i in range(3)]
    lines = [
        "NRRD0004",
        f"type: {_NRRD_TYPES[data.dtype.name]}",
        f"dimension: {data.ndim}",
        "space: left-posterior-superior",
        "sizes: " + " ".join(str(n) for n in data.shape),
        "space directions: " + " ".join(directions),
        "kinds: " + " ".join(kinds),
        "endian: little",
        "encoding: raw",
        f"space origin: {_vec(origin)}",
    ]
    lines += [f"{key}:={value}" for key, value in (fields or {}).items()]
    # NRRD's first axis is the fastest: Fortran order of the (I, J, K) array
    payload = np.asarray(data, dtype=data.dtype.newbyteorder("<")).tobytes(order="F")
    path.write_bytes(("\n".join(lines) + "\n\n").encode("ascii") + payload)
    return path


def write_seg_nrrd(
    path: str | Path, layers: np.ndarray, affine: np.ndarray, segments: Sequence[dict]
) -> Path:
    """A Slicer segmentation: ``layers`` (I, J, K) or (L, I, J, K) uint8 labelmaps; ``segments`` dicts
    with ``name``, ``value`` and ``layer`` (0 for a single-layer file)."""
    fields: dict[str, str] = {}
    for index, segment in enumerate(segments):
        prefix = f"Segment{index}_"
        fields[prefix + "ID"] = f"Segment_{index + 1}"
        fields[prefix + "Name"] = segment["name"]
        fields[prefix + "LabelValue"] = str(segment["value"])
        fields[prefix + "Layer"] = str(segment.get("layer", 0))
        fields[prefix + "Color"] = "0.5 0.5 0.5"
    fields["Segmentation_MasterRepresentation"] = "Binary labelmap"
    return write_nrrd(path, np.asarray(layers, dtype=np.uint8), affine, fields=fields)


def write_mha(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """MetaImage through SimpleITK, geometry set from the LPS flip computed here."""
    import SimpleITK as sitk

    axes, origin = _lps(affine)
    spacing = np.linalg.norm(axes, axis=0)
    image = sitk.GetImageFromArray(np.asarray(array).transpose(2, 1, 0).copy())
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(v) for v in (axes / spacing).ravel()])
    sitk.WriteImage(image, str(path))
    return Path(path)


def write_dicom_series(
    folder: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_uid: str | None = None,
    description: str = "FLAIR 3D",
    skip_slices: Sequence[int] = (),
    shift_slice: tuple[int, float] | None = None,
    prefix: str = "IM",
) -> list[Path]:
    """One MR file per slice ``k`` of ``array`` ((I, J, K) int16): rows = J, columns = I.

    ``skip_slices`` leaves slices out (an incomplete series); ``shift_slice=(k, mm)`` moves one
    slice along the normal (unequal spacing). Files are written in shuffled name order so the
    reader has to sort by position.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    axes, origin = _lps(affine)
    spacing = np.linalg.norm(axes, axis=0)
    row_dir, col_dir = axes[:, 0] / spacing[0], axes[:, 1] / spacing[1]
    normal = axes[:, 2] / spacing[2]
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    data = np.asarray(array, dtype=np.int16)
    paths = []
    order = np.random.default_rng(0).permutation(data.shape[2])
    for k in range(data.shape[2]):
        if k in skip_slices:
            continue
        position = origin + axes[:, 2] * k
        if shift_slice and shift_slice[0] == k:
            position = position + normal * shift_slice[1]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Phantom", "PHANTOM01", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 3, k + 1
        ds.SeriesDescription = description
        ds.Manufacturer = "Testing"
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (J), column spacing (I)
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(data[:, :, k].T).tobytes()
        path = folder / f"{prefix}{int(order[k]):04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
