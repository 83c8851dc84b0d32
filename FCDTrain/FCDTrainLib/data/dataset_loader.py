"""Load a dataset from a path: a BIDS root in the ds004199 layout (a folder) or a CSV/TSV manifest.

Example:
    >>> from FCDTrainLib.data.dataset_loader import load_dataset
    >>> load_dataset("no-such-folder")
    Traceback (most recent call last):
    ...
    FCDDetectLib.errors.FCDInputError: no-such-folder: dataset not found (no such folder or manifest file)
"""

from __future__ import annotations

from pathlib import Path

from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.data.bids_loader import load_bids
from FCDTrainLib.data.labels import LabelNames
from FCDTrainLib.data.manifest_loader import load_manifest
from FCDTrainLib.data.records import Dataset

__all__ = ["load_dataset"]


def load_dataset(path: str | Path, label_names: LabelNames | None = None) -> Dataset:
    """A BIDS root in the ds004199 layout (a folder) or a CSV/TSV manifest (a file).

    ``label_names`` adds label spellings (manifests and participants.tsv ``group``).

    Example:
        >>> ds = load_dataset("synthetic-cohort/")  # doctest: +SKIP
        >>> [s.subject_id for s in ds.subjects if s.label == 1][:2]  # doctest: +SKIP
        ['sub-00001', 'sub-00003']
    """
    target = Path(path)
    try:
        target.stat()
    except FileNotFoundError:
        pass
    except OSError as error:  # a name over 255 bytes, a link loop: the system cannot look it up
        raise FCDInputError(f"{str(target)[:200]}: dataset cannot be read ({error.strerror or error})") from None
    if target.is_file():
        if target.suffix.lower() not in (".csv", ".tsv"):
            raise FCDInputError(f"{target}: expected a dataset folder or a .csv/.tsv manifest")
        return load_manifest(target, label_names)
    if target.is_dir():
        return load_bids(target, label_names)
    raise FCDInputError(f"{target}: dataset not found (no such folder or manifest file)")
