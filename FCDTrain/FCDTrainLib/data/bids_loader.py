"""Discover subjects in a BIDS root laid out like OpenNeuro ds004199 (Bonn FCD-II).

``participants.tsv`` gives each subject's ``group`` (``fcd``/``hc``) and ``split``; the files
``sub-X/anat/sub-X_acq-<acq>_T1w.nii.gz``, ``..._FLAIR.nii.gz`` and ``..._FLAIR_roi.nii.gz``
are found whatever their acq label (ds004199 has 16), including sub-00048 whose ROI is
``acq-32ch10`` beside an ``acq-T2sel`` FLAIR. Only headers and JSON sidecars are read.

Sessions (``sub-X/ses-Y/anat``, e.g. ``fcd synth --rescans``): a subject is one record, made
from **one** session, the first (in natural order: ses-2 before ses-10) that has both a T1w and a FLAIR; its
images, ROI and flags all come from that session (``info["session"]``, and
``info["sessions"]`` lists them all). So a subject's rescans never land in different folds
(no leak of one person's anatomy and lesion from training into test) and never count twice;
one warning says how many subjects had further sessions. The rescans are for the
test-retest benchmark (``fcd detect --data`` reads every session).

Example:
    >>> dataset = load_bids("ds004199")  # doctest: +SKIP
    >>> len(dataset.subjects), sum(s.roi is not None for s in dataset.subjects)  # doctest: +SKIP
    (170, 85)
"""

from __future__ import annotations

import csv
from pathlib import Path

from FCDDetectLib.choices import MODALITIES
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import same_grid, voxel_sizes
from FCDDetectLib.io.ds004199_names import MODALITY_SUFFIX, anat_files, parse_name, roi_for, sorted_sessions

from FCDTrainLib.data.image_headers import is_thick_slice, read_grid, read_sidecar
from FCDTrainLib.data.labels import LabelNames, parse_label
from FCDTrainLib.data.records import FLAG_2D_FLAIR, FLAG_ROI_ACQ_MISMATCH, Dataset, Subject

_SUFFIX_TO_MODALITY = {MODALITY_SUFFIX[m]: m for m in MODALITIES}
_MISSING = {"", "n/a", "na", "nan"}


def read_participants(root: Path) -> list[dict[str, str]]:
    """Rows of ``root/participants.tsv`` (BOM and CRLF tolerated); FCDInputError if absent or malformed."""
    table = root / "participants.tsv"
    if not table.is_file():
        raise FCDInputError(
            f"{root}: no participants.tsv, so this is not a BIDS root in the ds004199 layout "
            "(give the dataset's top folder, or a CSV manifest)"
        )
    with table.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = [c.strip() for c in (reader.fieldnames or [])]
        for needed in ("participant_id", "group"):
            if needed not in columns:
                raise FCDInputError(f"{table}: missing column {needed!r} (has: {', '.join(columns) or 'none'})")
        rows = []
        for number, row in enumerate(reader, start=2):
            clean = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not clean.get("participant_id"):
                if any(clean.values()):
                    raise FCDInputError(f"{table}: line {number} has no participant_id")
                continue
            rows.append(clean)
    if not rows:
        raise FCDInputError(f"{table}: lists no participants")
    return rows


def _acq_name(path: Path, sidecar: dict) -> str:
    name = parse_name(path.name)
    if name and name.acq:
        return name.acq
    return str(sidecar.get("ProtocolName") or sidecar.get("SeriesDescription") or "unknown")


def _one_session(files: list[Path]) -> tuple[list[Path], str | None, list[str]]:
    """The files of the subject's training session (see the module docstring), that session, all sessions."""
    names = {f: parse_name(f.name) for f in files}
    sessions = sorted_sessions(n.session for n in names.values())
    if not sessions:
        return files, None, []
    for session in sessions:
        own = [f for f in files if names[f].session == session]
        suffixes = {names[f].suffix for f in own if not names[f].roi}
        if {MODALITY_SUFFIX["t1"], MODALITY_SUFFIX["flair"]} <= suffixes:
            return own, session, sessions
    return [f for f in files if names[f].session == sessions[0]], sessions[0], sessions


def _pick(files: list[Path], subject_id: str, what: str, warnings: list[str]) -> Path:
    if len(files) > 1:
        warnings.append(f"{subject_id}: {len(files)} {what} files, using {files[0].name}")
    return files[0]


def _subject(root: Path, row: dict[str, str], names: LabelNames, warnings: list[str]) -> Subject:
    subject_id = row["participant_id"]
    label = parse_label(row["group"], f"{root / 'participants.tsv'}: {subject_id} group", names)
    found: dict[str, list[Path]] = {"t1": [], "flair": [], "roi": []}
    files, session, sessions = _one_session(anat_files(root, subject_id))
    for path in files:
        name = parse_name(path.name)
        if name.suffix not in _SUFFIX_TO_MODALITY or (name.roi and name.suffix != MODALITY_SUFFIX["flair"]):
            continue
        key = "roi" if name.roi else _SUFFIX_TO_MODALITY[name.suffix]
        found[key].append(path)
    if not found["t1"] and not found["flair"]:
        raise FCDInputError(
            f"{subject_id}: listed in participants.tsv but has no images "
            f"(expected {subject_id}/anat/{subject_id}_acq-<acq>_T1w.nii.gz and _FLAIR.nii.gz)"
        )
    for modality, suffix in (("t1", "T1w"), ("flair", "FLAIR")):
        if not found[modality]:
            raise FCDInputError(f"{subject_id}: no {suffix} image ({subject_id}/anat/*_{suffix}.nii.gz is missing)")
    images = {m: _pick(found[m], subject_id, m, warnings) for m in MODALITIES}
    sidecars = {m: read_sidecar(p) for m, p in images.items()}
    acquisitions = {m: _acq_name(images[m], sidecars[m]) for m in images}
    flags: list[str] = []

    flair_grid = read_grid(images["flair"], "FLAIR")
    read_grid(images["t1"], "T1w")
    if str(sidecars["flair"].get("MRAcquisitionType", "")).upper() == "2D" or is_thick_slice(voxel_sizes(flair_grid[1])):
        flags.append(FLAG_2D_FLAIR)

    roi = None
    if found["roi"]:
        # Prefer the ROI whose acq label matches the FLAIR; else the only one (sub-00048).
        roi, same_acq = roi_for(found["roi"], images["flair"])
        if len(found["roi"]) > 1:
            warnings.append(f"{subject_id}: {len(found['roi'])} ROI files, using {roi.name}")
        if not same_acq:
            flags.append(FLAG_ROI_ACQ_MISMATCH)
            warnings.append(
                f"{subject_id}: ROI {roi.name} has another acq label than FLAIR {images['flair'].name}; "
                "used with that FLAIR (grids match)"
            )
        roi_grid = read_grid(roi, "ROI")
        if not same_grid(roi_grid, flair_grid):
            raise FCDInputError(
                f"{roi}: ROI grid (shape {roi_grid[0]}) differs from its FLAIR {images['flair'].name} "
                f"(shape {flair_grid[0]}); ROIs must be drawn on the FLAIR grid"
            )
        if label == 0:
            warnings.append(f"{subject_id}: control with an ROI file ({roi.name})")
    elif label == 1:
        warnings.append(f"{subject_id}: patient without an ROI (no Heat-Score for this subject)")

    split = row.get("split", "")
    info = {k: v for k, v in row.items() if k not in ("participant_id", "group", "split")}
    if session is not None:
        info.update(session=session, sessions=",".join(sessions))
    return Subject(
        subject_id=subject_id,
        label=label,
        images=images,
        roi=roi,
        protocol=f"{acquisitions['t1']}+{acquisitions['flair']}",
        split=None if split.lower() in _MISSING else split,
        flags=flags,
        acquisitions=acquisitions,
        info=info,
    )


def load_bids(path: str | Path, label_names: LabelNames | None = None) -> Dataset:
    """Read a BIDS root in the ds004199 layout into a :class:`Dataset` (headers only, no voxels).

    Errors (FCDInputError, one line naming the subject or file): no participants.tsv, a
    missing ``participant_id``/``group`` column, an unknown group, a listed subject without
    its T1w or FLAIR, an unreadable NIfTI header, an ROI whose grid differs from its FLAIR.

    Example:
        >>> ds = load_bids("ds004199")  # doctest: +SKIP
        >>> ds.subject("sub-00048").roi.name  # doctest: +SKIP
        'sub-00048_acq-32ch10_FLAIR_roi.nii.gz'
    """
    root = Path(path)
    if not root.is_dir():
        raise FCDInputError(f"{root}: dataset folder not found")
    rows = read_participants(root)
    warnings: list[str] = []
    seen: set[str] = set()
    subjects = []
    for row in rows:
        if row["participant_id"] in seen:
            raise FCDInputError(f"{root / 'participants.tsv'}: {row['participant_id']} listed twice")
        seen.add(row["participant_id"])
        subjects.append(_subject(root, row, label_names or LabelNames(), warnings))
    several = [s.subject_id for s in subjects if "," in s.info.get("sessions", "")]
    if several:
        warnings.append(f"{len(several)} subjects have several sessions (e.g. {several[0]}: "
                        f"{subjects[[s.subject_id for s in subjects].index(several[0])].info['sessions']}); "
                        "each trains and tests on its first session only, so rescans never split across folds")
    unlisted = sorted(p.name for p in root.glob("sub-*") if p.is_dir() and p.name not in seen)
    if unlisted:
        warnings.append(f"{len(unlisted)} subject folders not in participants.tsv, ignored: {', '.join(unlisted[:5])}")
    subjects.sort(key=lambda s: s.subject_id)
    return Dataset(root=root, subjects=subjects, warnings=warnings, source="bids")
