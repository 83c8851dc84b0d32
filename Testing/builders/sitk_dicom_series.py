"""An MR DICOM series written the way a new user would: SimpleITK's documented series-writing recipe.

Test helper (not a test file). SimpleITK's example "Dicom Series From Array"
(``Examples/DicomSeriesFromArray``, in the SimpleITK documentation) writes one file per slice
with ``ImageFileWriter`` and ``KeepOriginalImageUIDOn()``, setting per slice the series tags,
ImageOrientationPatient, ImagePositionPatient (``TransformIndexToPhysicalPoint``) and
InstanceNumber. The recipe alone is not a valid MR image (no patient, one StudyInstanceUID
per file, no Frame of Reference, no MR acquisition attributes): with ``identity=True`` the
tags a scanner writes are added to every slice, so that ``dciodvfy`` reports no error on the
input (checked by the tests before any output is judged); ``identity=False`` keeps the bare
recipe, an input that lacks patient and study identity.

The geometry is set from the RAS affine with its own LPS flip (not the engine's).

Example:
    >>> files = write_sitk_series(tmp_path / "dicom", volume.astype("int16"), affine)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCANNER_TAGS = {
    "0008|0008": "ORIGINAL\\PRIMARY\\OTHER",  # ImageType (value 3 is required for MR)
    "0008|0070": "Testing",  # Manufacturer
    "0008|0080": "Test Hospital",  # InstitutionName
    "0008|1030": "MRI brain epilepsy protocol",  # StudyDescription
    "0008|0050": "",  # AccessionNumber
    "0008|0090": "",  # ReferringPhysicianName
    "0010|0010": "Test^Phantom",  # PatientName
    "0010|0020": "PHANTOM01",  # PatientID
    "0010|0030": "",  # PatientBirthDate
    "0010|0040": "O",  # PatientSex
    "0018|0015": "BRAIN",  # BodyPartExamined
    "0018|5100": "HFS",  # PatientPosition
    "0018|0020": "SE\\IR",  # ScanningSequence
    "0018|0021": "SK\\SP",  # SequenceVariant
    "0018|0022": "",  # ScanOptions
    "0018|0023": "3D",  # MRAcquisitionType
    "0018|0080": "5000",  # RepetitionTime
    "0018|0081": "390",  # EchoTime
    "0018|0082": "1800",  # InversionTime
    "0018|0091": "1",  # EchoTrainLength
    "0020|0010": "1",  # StudyID
    "0020|0011": "3",  # SeriesNumber
    "0020|1040": "",  # PositionReferenceIndicator
}


def write_sitk_series(
    folder: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    identity: bool = True,
    description: str = "FLAIR 3D",
    uids: tuple[str, str, str] | None = None,
) -> list[Path]:
    """Write ``array`` ((I, J, K) int16, RAS ``affine``) as one MR file per slice with SimpleITK's recipe.

    ``identity``: add the scanner's patient, study, frame-of-reference and MR tags (a clean
    input); False: the recipe's tags only. ``uids``: (study, series, frame of reference).
    """
    import SimpleITK as sitk
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flip = np.diag([-1.0, -1.0, 1.0])
    axes, origin = flip @ np.asarray(affine, float)[:3, :3], flip @ np.asarray(affine, float)[:3, 3]
    spacing = np.linalg.norm(axes, axis=0)
    image = sitk.GetImageFromArray(np.asarray(array, np.int16).transpose(2, 1, 0).copy())
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in (axes / spacing).ravel()])
    study_uid, series_uid, frame_uid = uids or (generate_uid(), generate_uid(), generate_uid())
    date, time = "20260101", "120000"
    direction = image.GetDirection()
    series_tags = {  # the recipe's own
        "0008|0031": time, "0008|0021": date, "0008|0008": "DERIVED\\SECONDARY",
        "0020|000e": series_uid,
        "0020|0037": "\\".join(str(v) for v in (direction[0], direction[3], direction[6],
                                                   direction[1], direction[4], direction[7])),
        "0008|103e": description,
    }
    if identity:
        series_tags.update(SCANNER_TAGS)
        series_tags.update({"0020|000d": study_uid, "0020|0052": frame_uid, "0008|0020": date, "0008|0030": time,
                            "0018|0050": f"{spacing[2]:g}", "0018|0088": f"{spacing[2]:g}"})
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        for tag, value in series_tags.items():
            slice_image.SetMetaData(tag, value)
        slice_image.SetMetaData("0008|0012", date)  # InstanceCreationDate
        slice_image.SetMetaData("0008|0013", time)  # InstanceCreationTime
        slice_image.SetMetaData("0008|0060", "MR")  # Modality
        slice_image.SetMetaData("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))))
        slice_image.SetMetaData("0020|0013", str(k + 1))  # InstanceNumber
        path = folder / f"{k + 1}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(slice_image)
        paths.append(path)
    return paths
