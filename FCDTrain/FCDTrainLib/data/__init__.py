"""Data: dataset discovery (ds004199 BIDS layout or CSV manifest), protocol audit, synthetic cohorts.

Example:
    >>> from FCDTrainLib.data import load_dataset, audit_dataset
    >>> dataset = load_dataset("ds004199")  # doctest: +SKIP
    >>> audit = audit_dataset(dataset)  # doctest: +SKIP
    >>> audit.confounded, round(audit.loo_accuracy, 2)  # doctest: +SKIP
    (True, 0.75)

The synthetic cohort generator lives in :mod:`FCDTrainLib.data.synth` (needs nilearn).
"""

from __future__ import annotations

from pathlib import Path

from FCDDetectLib.errors import FCDInputError

from .audit import ProtocolAudit, audit_dataset
from .bids import load_bids
from .labels import LabelNames
from .manifest import load_manifest
from .types import FLAG_2D_FLAIR, FLAG_ROI_ACQ_MISMATCH, MODALITIES, Dataset, Subject

__all__ = [
    "FLAG_2D_FLAIR",
    "FLAG_ROI_ACQ_MISMATCH",
    "MODALITIES",
    "Dataset",
    "LabelNames",
    "ProtocolAudit",
    "Subject",
    "audit_dataset",
    "load_bids",
    "load_dataset",
    "load_manifest",
]


def load_dataset(path: str | Path, label_names: LabelNames | None = None) -> Dataset:
    """A BIDS root in the ds004199 layout (a folder) or a CSV/TSV manifest (a file).

    ``label_names`` adds label spellings (manifests and participants.tsv ``group``).

    Example:
        >>> ds = load_dataset("synthetic-cohort/")  # doctest: +SKIP
        >>> [s.subject_id for s in ds.subjects if s.label == 1][:2]  # doctest: +SKIP
        ['sub-00001', 'sub-00003']
    """
    target = Path(path)
    if target.is_file():
        if target.suffix.lower() not in (".csv", ".tsv"):
            raise FCDInputError(f"{target}: expected a dataset folder or a .csv/.tsv manifest")
        return load_manifest(target, label_names)
    if target.is_dir():
        return load_bids(target, label_names)
    raise FCDInputError(f"{target}: dataset not found (no such folder or manifest file)")
