"""The cohort's records: ``summary.csv`` rows and the ``result.json`` a resumed run reads back.

:func:`summary_row` makes one row of ``summary.csv`` (:data:`SUMMARY_COLUMNS`) from a
subject's ``result.json`` dict or its error; :func:`write_summary` writes the rows atomically;
:func:`finished_result` reads a finished subject folder's ``result.json`` so that a run can
skip it (resume); :func:`failed` picks the rows that failed. Used by
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.io.atomic_files import csv_text, write_text_atomic

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


def finished_result(out: Path, model_name: str, method: str) -> dict[str, Any] | None:
    """The ``result.json`` of a finished subject folder made by the same model and method, else None."""
    try:
        result = json.loads((out / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("probability") is None:
        return None
    if result.get("model") != model_name or result.get("method") != method:
        return None
    return result


def write_summary(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as ``summary.csv`` (:data:`SUMMARY_COLUMNS`), atomically."""
    write_text_atomic(path, csv_text(rows, SUMMARY_COLUMNS))
    return Path(path)


def failed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of subjects whose detection failed."""
    return [row for row in rows if row["status"] == "error"]
