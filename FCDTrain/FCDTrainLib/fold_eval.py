"""Test a trained model on subjects: probabilities, accuracy, ROC-AUC and Heat-Scores.

Probabilities come from the cached model-grid arrays (the same preprocessing ``fcd
detect`` runs). The Heat-Score of every patient with an ROI is computed by
:func:`FCDDetectLib.detect.detect` itself: Grad-CAM (by default) on the model grid,
mapped back onto the reference image's own grid (the first modality), the ROI
resampled onto that grid (nearest neighbour) when it lies elsewhere, then section 2.5's
formula with the whole grid outside the ROI as background. So the number a fold reports
for a patient is exactly the number ``fcd detect --roi`` prints for that patient and
bundle.

The same detection gives the lesion-level figures (``FCDDetectLib.lesion_metrics``): the
heatmap's clusters on every subject (controls too: specificity and FP clusters per
control need them), detected / FP clusters / peak-in-ROI / Dice per patient with an ROI,
and the cohort figures per fold (``metrics["lesion"]`` and flat ``lesion_*`` keys).

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

PREDICTION_COLUMNS = ["subject", "label", "probability", "prediction", "heat_score",
                      "detected", "n_clusters", "fp_clusters", "peak_in_roi", "dice"]
LESION_FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "peak_in_roi_rate",
                  "dice_mean")
"""Cohort lesion figures copied into a fold's metrics as ``lesion_<name>`` (tables, summaries)."""
SUMMARY_FIGURES = ("accuracy", "roc_auc", "heat_score", *(f"lesion_{name}" for name in LESION_FIGURES))
"""The per-fold figures given as mean +/- std over folds (run summaries, ``fcd evaluate``)."""
_LESION_ROW_KEYS = ("detected", "n_clusters", "fp_clusters", "peak_in_roi", "dice")


def predict_arrays(model: Any, arrays: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """FCD probabilities (softmax of class 1) of (N, C, X, Y, Z) arrays, model in eval mode."""
    import torch

    from .trainer import evaluate_loss

    x = torch.from_numpy(np.ascontiguousarray(arrays))
    y = torch.zeros(x.shape[0], dtype=torch.long)
    _, probs = evaluate_loss(model, x, y, batch_size, torch.device(device))
    return probs.astype(np.float64)


def lesion_scores(bundle: Any, subjects: Sequence[Any], method: str = "gradcam", device: str = "cpu",
                  layer: str | None = None, cluster_threshold: float | None = None,
                  min_cluster_mm3: float | None = None,
                  ) -> tuple[dict[str, float | None], dict[str, dict[str, Any]], list[str]]:
    """Heat-Scores (patients with an ROI), lesion rows (every subject) and warnings.

    One :func:`FCDDetectLib.detect.detect` per subject: patients with an ROI get their
    Heat-Score and lesion figures, controls (and patients without ROI) their clusters.
    A subject that cannot be scored (empty ROI, outside the grid...) gets None and a
    warning naming it, rather than stopping the run.

    Example:
        >>> scores, lesion_rows, warnings = lesion_scores(bundle, subjects, layer="layer3")  # doctest: +SKIP
    """
    from FCDDetectLib.clusters import DEFAULT_MIN_SIZE_MM3, DEFAULT_THRESHOLD
    from FCDDetectLib.detect import detect

    scores: dict[str, float | None] = {}
    lesion_rows: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    modalities = list(bundle.metadata.modalities)
    for subject in subjects:
        patient = int(subject.label) == 1
        roi = subject.roi if patient else None
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=roi, method=method,
                            device=device, layer=layer,
                            cluster_threshold=DEFAULT_THRESHOLD if cluster_threshold is None else cluster_threshold,
                            min_cluster_mm3=DEFAULT_MIN_SIZE_MM3 if min_cluster_mm3 is None else min_cluster_mm3)
        except FCDInputError as error:
            if patient and roi is not None:
                scores[subject.subject_id] = None
            warnings.append(f"{subject.subject_id}: no Heat-Score or clusters ({error})")
            continue
        lesion_rows[subject.subject_id] = {**result.lesion, "label": int(subject.label)}
        if roi is None:
            continue
        if result.heat_score is None:
            scores[subject.subject_id] = None
            warnings.append(f"{subject.subject_id}: no Heat-Score ({result.heat_score_details.note})")
        else:
            scores[subject.subject_id] = float(result.heat_score)
    return scores, lesion_rows, warnings


def heat_scores(bundle: Any, subjects: Sequence[Any], method: str = "gradcam",
                device: str = "cpu", layer: str | None = None) -> tuple[dict[str, float | None], list[str]]:
    """Heat-Score of each patient with an ROI (subject id -> score) and warnings.

    ``layer`` is the stage of the CAM methods (None: the bundle's default, else layer4).
    A subject whose ROI cannot be scored (empty, outside the grid...) gets None and a
    warning naming it, rather than stopping the run.
    """
    patients = [s for s in subjects if int(s.label) == 1 and s.roi is not None]
    scores, _, warnings = lesion_scores(bundle, patients, method, device, layer)
    return scores, warnings


def summarise_lesion(lesion_rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cohort lesion figures (``lesion``) plus their flat ``lesion_<name>`` copies.

    Example:
        >>> summarise_lesion({})["lesion_detection_rate"] is None
        True
    """
    from FCDDetectLib.lesion_metrics import cohort_lesion_metrics

    cohort = cohort_lesion_metrics(list(lesion_rows.values()))
    return {"lesion": cohort, **{f"lesion_{name}": cohort[name] for name in LESION_FIGURES}}


def evaluate_subjects(bundle: Any, subjects: Sequence[Any], cache: Any, device: str = "cpu",
                      method: str = "gradcam", batch_size: int = 4,
                      with_heat: bool = True, layer: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prediction rows (one per subject) and metrics of ``bundle`` on ``subjects``.

    ``cache`` is a :class:`~FCDTrainLib.cache.VolumeCache` on the bundle's grid. With
    ``with_heat`` each subject is also explained (``method``, ``layer``): Heat-Scores and
    the lesion-level figures (see the module docstring) join the rows and the metrics.
    """
    threshold = float(bundle.metadata.threshold)
    probs = predict_arrays(bundle.model, cache.stack(subjects), batch_size, device) if subjects else np.zeros(0)
    scores, lesion_rows, warnings = (
        lesion_scores(bundle, subjects, method, device, layer) if with_heat else ({}, {}, [])
    )
    rows = []
    for subject, prob in zip(subjects, probs, strict=True):
        lesion = lesion_rows.get(subject.subject_id, {})
        rows.append({
            "subject": subject.subject_id,
            "label": int(subject.label),
            "probability": float(prob),
            "prediction": int(prob >= threshold),
            "heat_score": scores.get(subject.subject_id),
            **{key: lesion.get(key) for key in _LESION_ROW_KEYS},
        })
    metrics = classification_metrics([r["label"] for r in rows], probs, threshold)
    metrics.update(summarise_heat(scores))
    if with_heat:
        metrics.update(summarise_lesion(lesion_rows))
    metrics["heat_score_method"] = method
    metrics["heat_score_layer"] = layer
    metrics["warnings"] = warnings
    return rows, metrics


def predictions_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``predictions.csv`` text: subject, label, probability, prediction, heat_score and the lesion columns."""
    return csv_text(rows, PREDICTION_COLUMNS)
