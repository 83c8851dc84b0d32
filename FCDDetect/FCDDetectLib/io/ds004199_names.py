"""The file names of the ds004199 BIDS layout, read in one place by the engine and the trainer.

OpenNeuro ds004199 (Bonn FCD-II) stores ``sub-X/[ses-Y/]anat/sub-X_[ses-Y_][acq-A_][...]_<suffix>
.nii[.gz]`` with the suffixes ``T1w`` and ``FLAIR``, and the lesion outline beside its FLAIR as
``..._FLAIR_roi.nii.gz`` (not a BIDS name; the dataset's ``.bidsignore`` lists it). The ROI's
``acq`` label is normally the FLAIR's; sub-00048's ROI is ``acq-32ch10`` beside an ``acq-T2sel``
FLAIR, so a subject's ROI is the one with the FLAIR's label if there is one, else the first.

The engine's cohort discovery (:mod:`FCDDetectLib.cohort.discovery`) and the trainer's BIDS
dataset loader both read names through :func:`parse_name`.

Example:
    >>> name = parse_name("sub-00048_acq-32ch10_FLAIR_roi.nii.gz")
    >>> name.subject, name.acq, name.suffix, name.roi
    ('sub-00048', '32ch10', 'FLAIR', True)
    >>> parse_name("sub-01_ses-2_acq-mprage_T1w.nii").session
    '2'
    >>> parse_name("participants.tsv") is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODALITY_SUFFIX", "ROI_MARK", "BidsName", "anat_files", "parse_name", "roi_for", "sorted_sessions"]

MODALITY_SUFFIX: dict[str, str] = {"flair": "FLAIR", "t1": "T1w", "t2": "T2w"}
"""The BIDS suffix of each modality name the engine and the trainer use."""
ROI_MARK = "_roi"
"""What ds004199 appends to a FLAIR's name for its lesion outline."""

_NAME = re.compile(
    r"^(?P<subject>sub-[A-Za-z0-9]+)(?:_ses-(?P<session>[A-Za-z0-9]+))?"
    r"(?P<entities>(?:_[a-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)(?P<roi>_roi)?\.nii(?:\.gz)?$"
)


@dataclass(frozen=True)
class BidsName:
    """The parts of one anatomical file name (``acq`` and ``session`` are ``None`` when absent)."""

    subject: str
    session: str | None
    acq: str | None
    suffix: str
    roi: bool


def parse_name(name: str) -> BidsName | None:
    """The parts of a ds004199-style NIfTI file name, or ``None`` for any other name."""
    match = _NAME.match(name)
    if match is None:
        return None
    acq = re.search(r"_acq-([A-Za-z0-9]+)", match["entities"])
    return BidsName(match["subject"], match["session"], acq[1] if acq else None, match["suffix"], bool(match["roi"]))


def anat_files(root: Path, subject_id: str) -> list[Path]:
    """The subject's NIfTI files under ``anat/`` and ``ses-*/anat/`` whose names parse as its own."""
    folder = root / subject_id
    files = sorted(folder.glob("anat/*.nii*")) + sorted(folder.glob("ses-*/anat/*.nii*"))
    named = [(f, parse_name(f.name)) for f in files]
    return [f for f, name in named if name is not None and name.subject == subject_id]


def sorted_sessions(labels: Iterable[str | None]) -> list[str]:
    """The distinct session labels (``None`` dropped) in natural order: numbers by value, then the rest.

    Example:
        >>> sorted_sessions(["10", "2", None, "1", "pre"])
        ['1', '2', '10', 'pre']
    """
    distinct = {label for label in labels if label is not None}
    return sorted(distinct, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def roi_for(rois: Sequence[Path], flair: Path | None) -> tuple[Path | None, bool]:
    """The ROI of a FLAIR among ``rois``: (the one with the FLAIR's ``acq`` label, else the first;
    whether the labels matched). ``(None, False)`` when there is none.

    Example:
        >>> roi_for([Path("sub-1_acq-a_FLAIR_roi.nii.gz")], Path("sub-1_acq-b_FLAIR.nii.gz"))
        (PosixPath('sub-1_acq-a_FLAIR_roi.nii.gz'), False)
    """
    if not rois:
        return None, False
    flair_name = parse_name(flair.name) if flair is not None else None
    flair_acq = flair_name.acq if flair_name else None
    same = [r for r in rois if (parse_name(r.name) or BidsName("", None, None, "", True)).acq == flair_acq]
    return (same or list(rois))[0], bool(same)
