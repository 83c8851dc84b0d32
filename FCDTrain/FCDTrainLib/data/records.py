"""The dataset records every loader returns: :class:`Subject` and :class:`Dataset`.

Example:
    >>> from pathlib import Path
    >>> s = Subject("sub-00001", 1, {"t1": Path("t1.nii.gz"), "flair": Path("flair.nii.gz")})
    >>> s.label_name, s.has_roi
    ('fcd', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Modality keys of Subject.images, in the order models take them (the one list is the engine's).

FLAG_2D_FLAIR = "2d-flair"
"""Flag of a subject whose FLAIR is a thick-slice 2D acquisition (slices >= 3 mm)."""

FLAG_ROI_ACQ_MISMATCH = "roi-acq-mismatch"
"""Flag of a subject whose ROI file carries another acq label than its FLAIR (ds004199 sub-00048)."""


@dataclass
class Subject:
    """One subject: label (1 = FCD/patient/positive, 0 = control/negative), image files, ROI.

    ``protocol`` is a string naming the acquisition protocol (ds004199: ``"<T1 acq>+<FLAIR acq>"``,
    e.g. ``"iso08+T2sel"``; a manifest: its ``protocol`` or ``site`` column), ``None`` when unknown.
    ``acquisitions`` maps modality -> acquisition label (BIDS ``acq-`` entity or the sidecar's
    ProtocolName). ``info`` keeps the subject's other participants.tsv / manifest columns.
    """

    subject_id: str
    label: int
    images: dict[str, Path]
    roi: Path | None = None
    protocol: str | None = None
    split: str | None = None
    flags: list[str] = field(default_factory=list)
    acquisitions: dict[str, str] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)

    @property
    def label_name(self) -> str:
        """``"fcd"`` for label 1, ``"control"`` for label 0."""
        return "fcd" if self.label == 1 else "control"

    @property
    def has_roi(self) -> bool:
        return self.roi is not None


@dataclass
class Dataset:
    """Subjects found under ``root`` (a BIDS folder or a CSV manifest) and non-fatal ``warnings``."""

    root: Path
    subjects: list[Subject]
    warnings: list[str] = field(default_factory=list)
    source: str = "bids"

    def __len__(self) -> int:
        return len(self.subjects)

    def subject(self, subject_id: str) -> Subject:
        """The subject called ``subject_id`` (KeyError if absent)."""
        for candidate in self.subjects:
            if candidate.subject_id == subject_id:
                return candidate
        raise KeyError(subject_id)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.subjects]

    @property
    def protocols(self) -> list[str | None]:
        return [s.protocol for s in self.subjects]

    def summary(self) -> dict:
        """Counts for a JSON report: subjects, patients, controls, with ROI, per split, flags."""
        splits: dict[str, int] = {}
        flags: dict[str, int] = {}
        for s in self.subjects:
            splits[s.split or "none"] = splits.get(s.split or "none", 0) + 1
            for flag in s.flags:
                flags[flag] = flags.get(flag, 0) + 1
        return {
            "root": str(self.root),
            "source": self.source,
            "subjects": len(self.subjects),
            "patients": sum(s.label == 1 for s in self.subjects),
            "controls": sum(s.label == 0 for s in self.subjects),
            "with_roi": sum(s.roi is not None for s in self.subjects),
            "splits": splits,
            "flags": flags,
            "warnings": list(self.warnings),
        }
