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



from .audit import ProtocolAudit, audit_dataset
from .bids import load_bids
from .dataset_loader import load_dataset  # noqa: F401
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
