"""What a run was trained on: ``RUN/dataset.json``, checked by every later ``fcd train`` and ``fcd evaluate``.

A run's ``config.json`` names its dataset by path; the files at that path can change (a
new export, another cohort copied over the old one). The first ``fcd train`` into a run
folder records, per subject it uses, the label and the SHA-256 of each image the run reads
and of the ROI. A resume (``fcd train`` again, another ``--fold``) and ``fcd evaluate`` on
the run's own test folds compare the dataset with that record and refuse a change: a
subject gone or added, another label, another image or ROI. Without the check a fold could
be trained on one cohort and the next on another, and ``fcd evaluate`` would score the
run's models on subjects they were trained on.

Runs made before this record existed have no ``dataset.json``; for them the fold splits
are compared instead (what ``fcd train`` always did: other subjects or labels give other
splits).

Checksums are of file contents, so a dataset copied elsewhere (new paths and times) still
matches. Each file is hashed once per process (memo on path, size, time and inode).

Example:
    >>> record = dataset_record(subjects, ["flair"])  # doctest: +SKIP
    >>> check_dataset("runs/r18", record, "cohort/")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.checksums import file_sha256, is_sha256

from FCDTrainLib.run_folder.layout import RunLayout
from FCDTrainLib.run_folder.run_files import read_json_object

RECORD_FORMAT = 1
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def _digest(path: str | os.PathLike) -> str:
    """SHA-256 of ``path``, computed once per (resolved path, size, modification time, inode)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(resolved)
    return _DIGESTS[key]


def dataset_record(subjects: Sequence[Any], modalities: Sequence[str]) -> dict[str, Any]:
    """``{"format", "subjects": {id: {"label", "files": {modality: sha256}, "roi": sha256 | None}}}``."""
    return {"format": RECORD_FORMAT, "subjects": {
        subject.subject_id: {
            "label": int(subject.label),
            "files": {modality: _digest(subject.images[modality]) for modality in modalities},
            "roi": _digest(subject.roi) if subject.roi is not None else None,
        } for subject in subjects}}


def _checked(path: Path, record: Any) -> dict[str, dict[str, Any]]:
    def damaged(reason: str) -> FCDInputError:
        return FCDInputError(f"{path}: damaged dataset record: {reason}")

    subjects = record.get("subjects")
    if record.get("format") != RECORD_FORMAT or not isinstance(subjects, dict):
        raise damaged(f"expected format {RECORD_FORMAT} with a 'subjects' object")
    for subject, entry in subjects.items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if (not isinstance(files, dict) or type(entry.get("label")) is not int
                or not all(is_sha256(v) for v in files.values())
                or not (entry.get("roi") is None or is_sha256(entry["roi"]))):
            raise damaged(f"subject {subject[:60]!r} is not {{label, files: {{modality: sha256}}, roi}}")
    return subjects


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:3])
    return shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def dataset_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two records, one phrase per kind of change (empty: the same dataset).

    Example:
        >>> old = {"subjects": {"a": {"label": 1, "files": {"flair": "1"}, "roi": None}}}
        >>> new = {"subjects": {"a": {"label": 0, "files": {"flair": "1"}, "roi": None}}}
        >>> dataset_changes(old, new)
        ['1 subject with another label (a)']
    """
    old, new = recorded["subjects"], current["subjects"]
    common = sorted(set(old) & set(new))
    groups = (
        ("gone", sorted(set(old) - set(new))),
        ("added", sorted(set(new) - set(old))),
        ("with another label", [i for i in common if old[i]["label"] != new[i]["label"]]),
        ("with other images or ROI", [i for i in common if (old[i]["files"], old[i]["roi"])
                                      != (new[i]["files"], new[i]["roi"])]),
    )
    return [f"{len(ids)} subject{'s' if len(ids) > 1 else ''} {what} ({_listed(ids)})" for what, ids in groups if ids]


def check_dataset(run_dir: str | os.PathLike, current: dict[str, Any], data: str | os.PathLike) -> bool:
    """Compare the dataset (its :func:`dataset_record`) with ``RUN/dataset.json``.

    Returns False when the run has no record (made before records existed, or not started).

    Raises:
        FCDInputError: naming the dataset and what changed, or naming a damaged record.
    """
    path = RunLayout(run_dir).dataset
    if not path.exists():
        return False
    recorded = {"subjects": _checked(path, read_json_object(path, "dataset record"))}
    changes = dataset_changes(recorded, current)
    if changes:
        raise FCDInputError(f"{data}: the dataset changed since this run was trained ({'; '.join(changes)}); "
                            f"{path} records what the run was trained on: restore that data, or train into "
                            "a new --out")
    return True


def write_dataset_record(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``RUN/dataset.json`` atomically; returns its path."""
    from FCDDetectLib.io.atomic_files import write_json_atomic

    path = RunLayout(run_dir).dataset
    write_json_atomic(path, record)
    return path
