"""Cohort discovery: the subjects of a BIDS root, a CSV/TSV manifest or a folder of images.

:func:`discover_subjects` finds each subject's image paths (in the model's modality order),
ROI, brain mask and DICOM choices, and returns them as :class:`CohortSubject` records; it
reads no image. The layouts:

- a BIDS root (``participants.tsv`` or ``sub-*/anat`` folders, the OpenNeuro ds004199
  layout): ``sub-X/[ses-Y/]anat/sub-X_[...]_<FLAIR|T1w>.nii[.gz]``, the ROI
  ``..._FLAIR_roi.nii[.gz]`` when present (the one with the FLAIR's ``acq`` label first).
  A subject with sessions (``sub-X/ses-Y/anat``, e.g. ``fcd synth --rescans``) gives one
  entry per session, ``sub-X_ses-Y``, each with its own session's images and ROI
  (``info``: ``subject``, ``session``), so every scan gets its own output folder;
- a CSV manifest: a ``subject`` (or ``participant_id``) column, one column per modality
  (``flair``, ``t1`` or ``image_<name>``), optional ``roi``, ``brain_mask``, ``series``
  (DICOM series choice) and ``roi_segment`` (``.seg.nrrd`` segment); paths relative to the CSV;
- a folder of images (one-modality models): each image file (any format of
  :mod:`FCDDetectLib.io.readers`) or DICOM series sub-folder is one subject.

This discovery only needs the image paths, so the engine does it itself (the trainer's
dataset loaders also read labels, protocols and grids, and the engine never imports the trainer).
The subjects are run by :mod:`FCDDetectLib.cohort.runner`.

Example:
    >>> from FCDDetectLib.cohort.discovery import discover_subjects
    >>> subjects = discover_subjects("ds004199/", modalities=["flair"])  # doctest: +SKIP
    >>> [s.subject_id for s in subjects][:2], subjects[0].error  # doctest: +SKIP
    (['sub-00001', 'sub-00002'], None)
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.ds004199_names import MODALITY_SUFFIX, anat_files, parse_name, roi_for, sorted_sessions
from FCDDetectLib.io.manifest_table import id_column, open_table, subject_rows
from FCDDetectLib.io.readers import is_image_file

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CohortSubject:
    """One subject of a cohort: its images in the model's modality order, optional ROI and brain mask.

    ``error`` holds a discovery problem (e.g. no FLAIR found): the subject is reported, not run.
    """

    subject_id: str
    images: list[Path]
    roi: Path | None = None
    brain_mask: Path | None = None
    series: str | None = None
    roi_segment: str | None = None
    error: str | None = None
    info: dict[str, str] = field(default_factory=dict)


def discover_subjects(data: str | Path, modalities: Sequence[str] = ("flair",), *,
                      exclude: Sequence[str | Path] = ()) -> list[CohortSubject]:
    """The subjects of a BIDS root, a CSV manifest or a folder of images, images in ``modalities`` order.

    Raises FCDInputError for a cohort that cannot be read at all (missing path, a manifest
    without the needed columns, duplicate subject ids, no subject, an ``exclude`` folder that
    is the data folder itself); a single subject's problem is kept in its ``error``: files
    it cannot find, an id that cannot be a folder name (not letters, digits, ``.``, ``_``,
    ``-``, over 255 bytes, or a name the run's own files use such as ``summary.csv``).
    ``exclude``: folders that are not subjects (the run's output folder inside the data folder,
    so that a rerun does not take its results for a subject); a folder holding a
    ``result.json`` (a detection's output) is never a subject either.

    Example:
        >>> subjects = discover_subjects("cohort.csv", modalities=["t1", "flair"])  # doctest: +SKIP
    """
    root = Path(data)
    modalities = [m.lower() for m in modalities]
    if not modalities:
        raise FCDInputError("cohort: no modality given")
    excluded = {_resolved(Path(p)) for p in exclude}
    if root.is_dir() and _resolved(root) in excluded:
        raise FCDInputError(f"{root}: the output folder is the data folder itself, so results would mix with the "
                            "scans; give --out a folder of its own (e.g. a sub-folder such as results/)")
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".tsv"):
            raise FCDInputError(f"{root}: expected a cohort folder (BIDS or images) or a .csv/.tsv manifest")
        subjects = _from_manifest(root, modalities)
    elif root.is_dir():
        if (root / "participants.tsv").is_file() or any(root.glob("sub-*/anat")) or any(root.glob("sub-*/ses-*/anat")):
            subjects = _from_bids(root, modalities)
        else:
            subjects = _from_folder(root, modalities, excluded)
    else:
        raise FCDInputError(f"{root}: cohort not found (no such folder or manifest file)")
    if not subjects:
        raise FCDInputError(f"{root}: no subject found")
    seen: set[str] = set()
    for subject in subjects:
        problem = id_problem(subject.subject_id)
        if problem:
            subject.error = f"{root}: subject id {_shown(subject.subject_id)} {problem}"
        elif subject.subject_id in seen:
            raise FCDInputError(f"{root}: subject {subject.subject_id} listed twice")
        seen.add(subject.subject_id)
    return subjects


MAX_ID_BYTES = 255
"""Longest subject id: it becomes a folder name, and file systems take names of at most 255 bytes."""
RESERVED_IDS = ("summary.csv",)
"""Names of the run's own files in the output folder, which no subject folder may take."""


def id_problem(subject_id: str) -> str | None:
    """Why ``subject_id`` cannot name the subject's output folder (None when it can).

    Example:
        >>> id_problem("sub-00001") is None, id_problem("summary.csv")
        (True, "is the name of the run's summary file; rename the subject")
    """
    if len(subject_id.encode("utf-8", "surrogateescape")) > MAX_ID_BYTES:
        return f"is {len(subject_id.encode('utf-8', 'surrogateescape'))} bytes long, more than the {MAX_ID_BYTES} a folder name may have"
    if subject_id.lower() in RESERVED_IDS:
        return "is the name of the run's summary file; rename the subject"
    if not _SAFE_ID.match(subject_id):
        return ("is not usable as a folder name (letters, digits, '.', '_' and '-', starting with a letter or "
                "digit); rename it")
    return None


def _shown(subject_id: str) -> str:
    return repr(subject_id if len(subject_id) <= 80 else subject_id[:80] + "...")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: compare it as written
        return path.absolute()


def _bids_participants(root: Path) -> list[str]:
    table = root / "participants.tsv"
    listed: list[str] = []
    if table.is_file():
        with table.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                subject_id = (row.get("participant_id") or "").strip()
                if subject_id:
                    listed.append(subject_id)
    folders = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
    return listed + [f for f in folders if f not in listed]


def _stem(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img"):
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


def _from_bids(root: Path, modalities: list[str]) -> list[CohortSubject]:
    subjects = []
    for subject_id in _bids_participants(root):
        files = anat_files(root, subject_id)
        names = {f: parse_name(f.name) for f in files}
        sessions = sorted_sessions(names[f].session for f in files)
        if not sessions:
            subjects.append(_bids_entry(root, subject_id, None, files, names, modalities))
            continue
        for session in sessions:
            own = [f for f in files if names[f].session == session]
            subjects.append(_bids_entry(root, subject_id, session, own, names, modalities))
    return subjects


def _bids_entry(root: Path, subject_id: str, session: str | None, files: list[Path], names: dict,
                modalities: list[str]) -> CohortSubject:
    """One scan of a BIDS subject: ``sub-X`` or, for a session, ``sub-X_ses-Y``."""
    folder = f"{subject_id}/anat" if session is None else f"{subject_id}/ses-{session}/anat"
    images: list[Path] = []
    missing = []
    for modality in modalities:
        suffix = MODALITY_SUFFIX.get(modality, modality)
        found = [f for f in files if names[f].suffix == suffix and not names[f].roi]
        if found:
            images.append(found[0])
        else:
            missing.append(f"{folder}/{subject_id}_*_{suffix}.nii.gz")
    error = f"{root / subject_id}: no {', '.join(missing)}" if missing else None
    roi = None
    rois = [f for f in files if names[f].roi and names[f].suffix == MODALITY_SUFFIX["flair"]]
    if images:
        roi, _ = roi_for(rois, images[0])
    if session is None:
        return CohortSubject(subject_id, images, roi=roi, error=error)
    return CohortSubject(f"{subject_id}_ses-{session}", images, roi=roi, error=error,
                         info={"subject": subject_id, "session": session})


def _from_manifest(table: Path, modalities: list[str]) -> list[CohortSubject]:
    with open_table(table) as (columns, lazy_rows):
        rows = list(lazy_rows)
    subject_column = id_column(table, columns)
    image_columns = {}
    for modality in modalities:
        column = next((c for c in (modality, f"image_{modality}") if c in columns), None)
        if column is None:
            raise FCDInputError(
                f"{table}: missing column {modality!r} (or image_{modality}) for the model's modality {modality}"
            )
        image_columns[modality] = column

    def resolve(value: str) -> Path | None:
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else table.parent / path

    subjects = []
    for subject_id, row in subject_rows(table, rows, subject_column):
        empty = [m for m, c in image_columns.items() if not row.get(c)]
        subjects.append(
            CohortSubject(
                subject_id,
                [p for p in (resolve(row.get(c, "")) for c in image_columns.values()) if p is not None],
                roi=resolve(row.get("roi", "")),
                brain_mask=resolve(row.get("brain_mask", "")),
                series=row.get("series") or None,
                roi_segment=row.get("roi_segment") or None,
                error=f"{table}: {subject_id}: empty {', '.join(empty)} cell" if empty else None,
            )
        )
    return subjects


def _from_folder(root: Path, modalities: list[str], excluded: set[Path] = frozenset()) -> list[CohortSubject]:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    candidates = [p for p in entries
                  if (p.is_file() and is_image_file(p) and not p.name.lower().endswith(".img"))
                  or (p.is_dir() and _resolved(p) not in excluded and not (p / "result.json").is_file())]
    if not candidates:
        return []
    if len(modalities) != 1:
        raise FCDInputError(
            f"{root}: a folder of images gives one image per subject, the model takes {len(modalities)} "
            f"({', '.join(modalities)}); use a BIDS folder or a CSV manifest"
        )
    return [CohortSubject(_stem(p), [p]) for p in candidates]
