"""Test a trained model on subjects: probabilities, accuracy, ROC-AUC and Heat-Scores.

Probabilities come from the cached model-grid arrays (the same preprocessing ``fcd
detect`` runs). The Heat-Score of every patient with an ROI is computed by
:func:`FCDDetectLib.detect.detect` itself: Grad-CAM (by default) on the model grid,
mapped back onto the reference image's own grid (the first modality), the ROI
resampled onto that grid (nearest neighbour) when it lies elsewhere, then section 2.5's
formula with the whole grid outside the ROI as background. So the number a fold reports
for a patient is exactly the number ``fcd detect --roi`` prints for that patient and
bundle.

Example:
    >>> rows, metrics = evaluate_subjects(bundle, subjects, cache, device="cpu")  # doctest: +SKIP
    >>> metrics["accuracy"], metrics["roc_auc"], metrics["heat_score"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.files import csv_text  # noqa: F401  (re-exported: evaluate.py and report.py use it here)

from .metrics import classification_metrics, summarise_heat

PREDICTION_COLUMNS = ["subject", "label", "probability", "prediction", "heat_score"]


def predict_arrays(model: Any, arrays: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """FCD probabilities (softmax of class 1) of (N, C, X, Y, Z) arrays, model in eval mode."""
    import torch

    from .trainer import evaluate_loss

    x = torch.from_numpy(np.ascontiguousarray(arrays))
    y = torch.zeros(x.shape[0], dtype=torch.long)
    _, probs = evaluate_loss(model, x, y, batch_size, torch.device(device))
    return probs.astype(np.float64)


def heat_scores(bundle: Any, subjects: Sequence[Any], method: str = "gradcam",
                device: str = "cpu") -> tuple[dict[str, float | None], list[str]]:
    """Heat-Score of each patient with an ROI (subject id -> score) and warnings.

    A subject whose ROI cannot be scored (empty, outside the grid...) gets None and a
    warning naming it, rather than stopping the run.
    """
    from FCDDetectLib.detect import detect

    scores: dict[str, float | None] = {}
    warnings: list[str] = []
    modalities = list(bundle.metadata.modalities)
    for subject in subjects:
        if int(subject.label) != 1 or subject.roi is None:
            continue
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=subject.roi,
                            method=method, device=device)
            if result.heat_score is None:
                scores[subject.subject_id] = None
                warnings.append(f"{subject.subject_id}: no Heat-Score ({result.heat_score_details.note})")
            else:
                scores[subject.subject_id] = float(result.heat_score)
        except FCDInputError as error:
            scores[subject.subject_id] = None
            warnings.append(f"{subject.subject_id}: no Heat-Score ({error})")
    return scores, warnings


def evaluate_subjects(bundle: Any, subjects: Sequence[Any], cache: Any, device: str = "cpu",
                      method: str = "gradcam", batch_size: int = 4,
                      with_heat: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prediction rows (one per subject) and metrics of ``bundle`` on ``subjects``.

    ``cache`` is a :class:`~FCDTrainLib.cache.VolumeCache` on the bundle's grid.
    """
    threshold = float(bundle.metadata.threshold)
    probs = predict_arrays(bundle.model, cache.stack(subjects), batch_size, device) if subjects else np.zeros(0)
    scores, warnings = heat_scores(bundle, subjects, method, device) if with_heat else ({}, [])
    rows = []
    for subject, prob in zip(subjects, probs, strict=True):
        rows.append({
            "subject": subject.subject_id,
            "label": int(subject.label),
            "probability": float(prob),
            "prediction": int(prob >= threshold),
            "heat_score": scores.get(subject.subject_id),
        })
    metrics = classification_metrics([r["label"] for r in rows], probs, threshold)
    metrics.update(summarise_heat(scores))
    metrics["heat_score_method"] = method
    metrics["warnings"] = warnings
    return rows, metrics


def predictions_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``predictions.csv`` text: subject, label, probability, prediction, heat_score."""
    return csv_text(rows, PREDICTION_COLUMNS)
