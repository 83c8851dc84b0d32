"""The cohort's records: ``summary.csv`` rows and the ``result.json`` a resumed run reads back.

:func:`summary_row` makes one row of ``summary.csv`` (:data:`SUMMARY_COLUMNS`) from a
subject's ``result.json`` dict or its error; :func:`write_summary` writes the rows atomically;
:class:`SummaryWriter` rewrites them in batches while a run goes on (at most about 1% of the
run's time, and once at the end); :func:`finished_result` reads a finished subject folder's
``result.json`` so that a run can skip it (resume) when :func:`result_identity` matches:
the same bundle content, the same input files and the same options, never just the same
model name; :func:`failed` picks the rows that failed. Used by
:mod:`FCDDetectLib.cohort.runner` and by the other executors (Slicer batch, Ray).

Example:
    >>> from FCDDetectLib.cohort.summary import failed, summary_row
    >>> rows = [summary_row("sub-1", {"probability": 0.9, "prediction": "fcd"}, None, "done"),
    ...         summary_row("sub-2", None, None, "error", "no FLAIR")]
    >>> rows[0]["probability"], [row["subject"] for row in failed(rows)]
    (0.9, ['sub-2'])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import csv_text, json_text, write_text_atomic
from FCDDetectLib.io.output_set import read_output_set

SUMMARY_COLUMNS = (
    "subject", "status", "probability", "prediction", "decision_source", "lesion_evidence", "lesion_evidence_threshold",
    "heat_score", "top_cluster", "error", "output", "seconds", "fold_votes", "n_folds",
)
"""Columns of ``summary.csv``. ``status``: ``done``, ``resumed`` (found finished), ``error``, ``pending`` (stopped
before it). ``probability`` is the classifier's p(FCD); ``prediction`` the decision, made from what
``decision_source`` names (``lesion_evidence`` for a lesion model: the score and threshold beside
it; ``classifier``: the probability). ``fold_votes`` / ``n_folds``: fold ensembles only."""

SUMMARY_NAME = "summary.csv"
RESULT_NAME = "result.json"


def _top_cluster(result: dict[str, Any], out: Path | None = None) -> str | None:
    """The first (highest-ranked) cluster, compact JSON; None when there is none.

    Read defensively: from ``result["clusters"]`` (a list, or a ``{"clusters": [...]}`` set), else
    from a ``clusters.json`` beside ``result.json``.
    """
    clusters = result.get("clusters")
    if clusters is None and out is not None and (out / "clusters.json").is_file():
        try:
            clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            clusters = None
    if isinstance(clusters, dict):  # {"clusters": [...], ...} summaries
        clusters = clusters.get("clusters")
    if isinstance(clusters, list) and clusters:
        return json.dumps(clusters[0], separators=(",", ":"), sort_keys=True)
    return None


def summary_row(subject_id: str, result: dict[str, Any] | None, out: Path | None, status: str,
                error: str | None = None, seconds: float | None = None) -> dict[str, Any]:
    """One ``summary.csv`` row from a ``result.json`` dict (or an error)."""
    result = result or {}
    evidence = result.get("lesion_evidence") if isinstance(result.get("lesion_evidence"), dict) else {}
    ensemble = result.get("ensemble") if isinstance(result.get("ensemble"), dict) else {}
    return {
        "subject": subject_id,
        "status": status,
        "probability": result.get("probability"),
        "prediction": result.get("prediction"),
        "decision_source": result.get("decision_source") or ("classifier" if result.get("prediction") else None),
        "lesion_evidence": evidence.get("score"),
        "lesion_evidence_threshold": evidence.get("threshold"),
        "fold_votes": ensemble.get("fold_votes"),
        "n_folds": ensemble.get("n_members"),
        "heat_score": result.get("heat_score"),
        "top_cluster": _top_cluster(result, out) if status in ("done", "resumed") else None,
        "error": error,
        "output": str(out) if out is not None and status in ("done", "resumed") else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
    }


IDENTITY_KEYS = ("model_sha256", "input_sha256", "options")
"""The ``result.json`` entries that say what made a result; a resumed run reuses it only when all match."""


def result_identity(model_sha256: str, input_sha256: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """What must match for a finished result to be reused: the bundle's content checksum, the
    inputs' checksums and every option that changes the output, as ``result.json`` stores them.

    Example:
        >>> result_identity("ab" * 32, {"images": ["cd" * 32], "roi": None, "brain_mask": None},
        ...                 {"layer": "layer4"})["options"]
        {'layer': 'layer4'}
    """
    identity = {"model_sha256": model_sha256, "input_sha256": input_sha256, "options": options}
    return json.loads(json_text(identity, indent=None))  # the JSON form: what result.json holds


def finished_result(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The ``result.json`` of a finished subject folder made from the same bundle, inputs and options, else None.

    The folder is read like any reader does (:func:`~FCDDetectLib.io.output_set.read_output_set`:
    recovered, every file's checksum verified); a folder that fails that, a result without a
    probability, or one whose :data:`IDENTITY_KEYS` differ from ``identity`` (another model
    with the same name, another scan, another layer or threshold) is not finished: None.
    """
    if not (out / RESULT_NAME).is_file():
        return None
    try:
        result = read_output_set(out)
    except (FCDInputError, OSError):
        return None
    if result.get("probability") is None:
        return None
    if any(result.get(key) != identity.get(key) for key in IDENTITY_KEYS):
        return None
    return result


def write_summary(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as ``summary.csv`` (:data:`SUMMARY_COLUMNS`), atomically."""
    write_text_atomic(path, csv_text(rows, SUMMARY_COLUMNS))
    return Path(path)


ROW_WRITE_SECONDS = 2e-5
"""About what one row of ``summary.csv`` costs to write (CSV text, write, fsync): 10,000 rows took 0.1-0.2 s
on a 2-core machine (``benchmarks/bench_summary_scale.py``). Only used to time the first rewrite."""


class SummaryWriter:
    """Keeps the cohort's rows and rewrites ``summary.csv`` in batches, not after every subject.

    Rewriting 10,000 rows after each of 10,000 subjects is quadratic (minutes of CSV for a
    run). Each rewrite is timed, and the next one waits until ``1 / budget`` times that long
    has passed (``budget`` 0.005: the rewrites during the run cost at most 0.5% of it), the
    first one until ``first_after`` seconds have passed (default: what the rows would cost to
    write at :data:`ROW_WRITE_SECONDS` each, over the budget, and at least 1 s: 4 s for 1,000
    subjects, 40 s for 10,000; a short run writes once, at the end).
    A small cohort of real detections still sees nearly every row at once, a large one a few
    times a minute. :meth:`flush` writes now (at the end, also when the run is interrupted).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "summary.csv"
        >>> writer = SummaryWriter(path, [summary_row("sub-1", None, None, "pending")])
        >>> writer.update(summary_row("sub-1", {"probability": 0.9}, None, "done"))
        >>> writer.flush()
        >>> path.read_text(encoding="utf-8").splitlines()[1].split(",")[:3]
        ['sub-1', 'done', '0.9']
    """

    def __init__(self, path: str | Path, rows: Sequence[dict[str, Any]], budget: float = 0.005,
                 clock: Callable[[], float] = time.perf_counter, first_after: float | None = None) -> None:
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {row["subject"]: row for row in rows}
        self.budget = budget
        self.clock = clock
        if first_after is None:  # the first write's cost is not known yet: estimate it from the rows
            first_after = max(1.0, len(self.rows) * ROW_WRITE_SECONDS / budget)
        self.due = clock() + first_after
        self.writes = 0
        self.seconds = 0.0
        self.dirty = True

    def update(self, row: dict[str, Any]) -> None:
        """Record ``row`` (replacing the subject's previous one); rewrite the file if a write is due."""
        self.rows[row["subject"]] = row
        self.dirty = True
        if self.clock() >= self.due:
            self.flush()

    def flush(self) -> None:
        """Write every row now (atomically), if anything changed since the last write."""
        if not self.dirty:
            return
        started = self.clock()
        write_summary(list(self.rows.values()), self.path)
        ended = self.clock()
        self.writes += 1
        self.seconds += ended - started
        self.dirty = False
        self.due = ended + (ended - started) / self.budget

    def values(self) -> list[dict[str, Any]]:
        """The rows, in the order the subjects were given."""
        return list(self.rows.values())


def failed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of subjects whose detection failed."""
    return [row for row in rows if row["status"] == "error"]
