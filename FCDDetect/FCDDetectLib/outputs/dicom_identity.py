"""Who and what the DICOM outputs belong to: the source series' patient, study, frame of reference and context.

Every DICOM output of :mod:`FCDDetectLib.outputs.dicom_outputs` is filed by a PACS under the
source's patient (PatientID, PatientName) and study (StudyInstanceUID), and lies in the source's
Frame of Reference. This module reads those from the source series, refuses a series the
outputs cannot be built from, and copies to each output what a PACS and the IODs expect:

- patient and study (highdicom's own copy of the Patient, General Study, Patient Study and
  Clinical Trial modules, the same as its Parametric Map and Segmentation make): name, ID,
  issuer, birth date, sex, age, de-identification flags, StudyDescription, AccessionNumber...;
- series context (General Series): BodyPartExamined, PatientPosition, Laterality,
  AnatomicalOrientationType. Laterality is written empty (Type 2C: "unknown") when the source
  has neither Laterality nor BodyPartExamined, since dciodvfy (and the standard, for a paired
  body part) then asks for it; a Segmentation gets no Laterality (dciodvfy: not permitted there);
- equipment: InstitutionName and InstitutionAddress (the derived object is made where the
  scan is kept), the scanner as Contributing Equipment (Manufacturer is this software's).

**Missing identity** (a series written by a converter, an anonymiser that blanked too much):
nothing is invented for the patient: an absent or empty PatientID / PatientName stays empty
in the outputs. A study or frame of reference must have a UID (Type 1): when the source has
none, or its files disagree, the outputs get a new one, and one warning names every
attribute that was missing, so the user knows a PACS will file them apart from the scan.

Example:
    >>> identity = source_identity(sources)  # doctest: +SKIP
    >>> identity.warning  # doctest: +SKIP
    'DICOM/: series 1.2.3 lacks PatientID, PatientName: ...'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.dicom_series import DicomSeries

MANUFACTURER = "fcd-detect (open-source research software)"
"""Manufacturer (General Equipment) of every DICOM output: this software made them."""

PATIENT_IDENTITY = ("PatientID", "PatientName")
"""Written as the source has them; when empty or absent they stay empty (never invented), with a warning."""

UID_IDENTITY = ("StudyInstanceUID", "FrameOfReferenceUID")
"""Required (Type 1) in every output: a new one when the source has none or its files disagree, with a warning."""

SERIES_CONTEXT = ("BodyPartExamined", "PatientPosition", "Laterality", "AnatomicalOrientationType")
"""General Series attributes copied from the source when it has them."""

INSTITUTION = ("InstitutionName", "InstitutionAddress")
"""General Equipment attributes copied from the source (the rest of the equipment is this software)."""

REQUIRED = ("SOPClassUID", "SOPInstanceUID", "PixelSpacing", "Rows", "Columns")
"""Per source file: what the outputs refer to or need for their geometry; a file without one is refused."""


@dataclass
class SourceIdentity:
    """The UIDs the outputs use and what the source lacked (empty ``missing``: nothing)."""

    study_uid: str
    frame_of_reference_uid: str
    missing: list[str] = field(default_factory=list)
    warning: str | None = None


def _value(dataset, keyword: str) -> str:
    return str(getattr(dataset, keyword, "") or "").strip()


def check_dicom_source(series: DicomSeries) -> None:
    """Refuse (FCDInputError naming the file) a series the DICOM outputs cannot be built from; before any work.

    Example:
        >>> check_dicom_source(find_series("DICOM/", None, "DICOM/"))  # doctest: +SKIP
    """
    import pydicom

    for path in series.files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        absent = [keyword for keyword in REQUIRED if not _value(dataset, keyword)]
        if absent:
            raise FCDInputError(
                f"--dicom-out: {path}: has no {', '.join(absent)}; DICOM outputs refer to each source file "
                "and need its pixel spacing"
            )


def source_identity(sources: Sequence, folder: Path | str, series_uid: str) -> SourceIdentity:
    """The outputs' study and frame-of-reference UIDs, and the one warning naming what the source lacked."""
    from pydicom.uid import generate_uid

    missing = [keyword for keyword in PATIENT_IDENTITY if not _value(sources[0], keyword)]
    uids: dict[str, str] = {}
    new: list[str] = []
    for keyword in UID_IDENTITY:
        values = {_value(ds, keyword) for ds in sources}
        if len(values) == 1 and "" not in values:
            uids[keyword] = values.pop()
        else:
            missing.append(keyword if values == {""} or len(values) == 1 else f"{keyword} (differs between files)")
            uids[keyword] = generate_uid()
            new.append(keyword)
    warning = None
    if missing:
        consequences = []
        if any(keyword in missing for keyword in PATIENT_IDENTITY):
            consequences.append("the patient is left empty in the outputs (not invented)")
        if new:
            consequences.append(
                f"the outputs get a new {' and '.join(new)}, so a PACS files them apart from the scan"
            )
        warning = (f"--dicom-out: {folder}: series {series_uid} lacks {', '.join(missing)}; "
                   + "; ".join(consequences))
    return SourceIdentity(uids["StudyInstanceUID"], uids["FrameOfReferenceUID"], missing, warning)


def apply_identity(sources: Sequence, identity: SourceIdentity) -> None:
    """Give the in-memory ``sources`` the outputs' study and frame-of-reference UIDs and (empty) patient
    attributes, so highdicom's constructors copy them (the files on disk are not touched)."""
    for dataset in sources:
        dataset.StudyInstanceUID = identity.study_uid
        dataset.FrameOfReferenceUID = identity.frame_of_reference_uid
        for keyword in PATIENT_IDENTITY:
            if keyword not in dataset:
                setattr(dataset, keyword, "")


def copy_context(target, source, *, laterality: bool = True) -> None:
    """Copy ``source``'s series context and institution to the output ``target`` (see the module docstring).

    ``laterality=False`` (a Segmentation): no Laterality at all; dciodvfy reports one in a SEG
    as an error (its condition is not met there), present or empty.
    """
    for keyword in (*SERIES_CONTEXT, *INSTITUTION):
        if keyword in source and _value(source, keyword) and (laterality or keyword != "Laterality"):
            setattr(target, keyword, getattr(source, keyword))
    if laterality and "Laterality" not in target and "BodyPartExamined" not in target:
        target.Laterality = ""


def scanner_equipment(source) -> list:
    """The source's scanner as highdicom Contributing Equipment (empty when the source names no Manufacturer)."""
    import highdicom as hd

    try:
        return [hd.ContributingEquipment.for_image_acquisition(source)]
    except (AttributeError, ValueError):  # highdicom's refusals: no Manufacturer, not an image
        return []
