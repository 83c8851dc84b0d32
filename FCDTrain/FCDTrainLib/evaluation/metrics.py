"""Classification and Heat-Score figures: one module for folds, evaluation, experiments and the demo.

Accuracy, sensitivity and specificity use the bundle's threshold on the FCD probability;
ROC-AUC is scikit-learn's (None with one class only). Every standard deviation of the
project is the sample one, ``ddof=1`` (:data:`SD_DDOF`): folds and subjects are samples of
what a new dataset would give, and the paper reports mean ± sd over 5 folds the same way.

Example:
    >>> m = classification_metrics([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1], threshold=0.5)
    >>> m["accuracy"], m["sensitivity"], m["specificity"], m["roc_auc"]
    (0.75, 0.5, 1.0, 1.0)
    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

SD_DDOF = 1
"""Degrees of freedom removed by every standard deviation (sample sd)."""


def finite(value: Any) -> float | None:
    """``float(value)`` when finite, else None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (``ddof=1``) of the finite values, and their count."""
    clean = [v for v in (finite(x) for x in values) if v is not None]
    if not clean:
        return None, None, 0
    array = np.asarray(clean, dtype=np.float64)
    std = float(array.std(ddof=SD_DDOF)) if array.size > SD_DDOF else None
    return float(array.mean()), std, int(array.size)


def classification_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float) -> dict[str, Any]:
    """Counts, accuracy, ROC-AUC (None with one class only), sensitivity and specificity (scikit-learn)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    predictions = (probs >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel()
    return {
        "n": int(labels.size),
        "n_fcd": int(labels.sum()),
        "n_control": int((labels == 0).sum()),
        "accuracy": float(accuracy_score(labels, predictions)) if labels.size else None,
        "roc_auc": float(roc_auc_score(labels, probs)) if len(set(labels.tolist())) == 2 else None,
        "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
        "threshold": float(threshold),
    }


def summarise_heat(scores: Mapping[str, float | None]) -> dict[str, Any]:
    """Mean, sample sd, count and how many exceed 1 of the finite Heat-Scores (subject -> score)."""
    mean, std, n = mean_std(scores.values())
    values = [v for v in (finite(x) for x in scores.values()) if v is not None]
    return {"heat_score": mean, "heat_score_std": std, "heat_score_n": n,
            "heat_score_above_1": int(sum(v > 1 for v in values))}


def summarise_folds(per_fold: Mapping[Any, Mapping[str, Any]],
                    metrics: Sequence[str] = ("accuracy", "roc_auc", "heat_score")) -> dict[str, Any]:
    """``{metric: {"mean", "std", "n"}}`` over folds (sample sd)."""
    out = {}
    for metric in metrics:
        mean, std, n = mean_std(m.get(metric) for m in per_fold.values())
        out[metric] = {"mean": mean, "std": std, "n": n}
    return out
