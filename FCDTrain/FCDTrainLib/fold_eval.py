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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.files import csv_text  # noqa: F401  (re-exported: evaluate.py and report.py use it here)

from .metrics import classification_metrics, finite, summarise_heat

PREDICTION_COLUMNS = ["subject", "label", "probability", "prediction", "heat_score", "detected", "n_clusters",
                      "peak_in_roi", "lesion_heat_score"]


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
    evaluation = detect_subjects(bundle, [s for s in subjects if int(s.label) == 1 and s.roi is not None],
                                 method, device)
    return evaluation.heat_scores, evaluation.warnings


@dataclass
class SubjectEvaluation:
    """What :func:`detect_subjects` found: Heat-Scores and lesion-level rows per map.

    ``lesion_rows[map]`` holds one :func:`FCDDetectLib.lesion_metrics.subject_lesion_metrics`
    row per subject (keyed by subject id), for ``"heatmap"`` and, with a lesion head,
    ``"lesion_map"``.
    """

    heat_scores: dict[str, float | None] = field(default_factory=dict)
    lesion_heat_scores: dict[str, float | None] = field(default_factory=dict)
    lesion_rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def detect_subjects(bundle: Any, subjects: Sequence[Any], method: str = "gradcam",
                    device: str = "cpu") -> SubjectEvaluation:
    """Run ``fcd detect``'s own pipeline on every subject: Heat-Scores, clusters, lesion rows.

    Patients with an ROI get Heat-Scores (heatmap, and lesion map with a lesion head);
    every subject (controls too) gets lesion-level rows of each map, with
    :func:`FCDDetectLib.clusters.find_clusters`' default threshold and minimum size,
    restricted to the head of the input image. A subject that cannot be scored gets a
    warning naming it, rather than stopping the run.
    """
    from FCDDetectLib.clusters import find_clusters
    from FCDDetectLib.detect import detect
    from FCDDetectLib.image_io import load_mask
    from FCDDetectLib.lesion_metrics import subject_lesion_metrics

    found = SubjectEvaluation()
    modalities = list(bundle.metadata.modalities)
    for subject in subjects:
        sid, patient = subject.subject_id, int(subject.label) == 1
        roi = subject.roi if patient else None
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=roi, method=method, device=device)
        except FCDInputError as error:
            if roi is not None:
                found.heat_scores[sid] = None
            found.warnings.append(f"{sid}: no Heat-Score ({error})")
            continue
        if roi is not None:
            if result.heat_score is None:
                found.heat_scores[sid] = None
                found.warnings.append(f"{sid}: no Heat-Score ({result.heat_score_details.note})")
            else:
                found.heat_scores[sid] = float(result.heat_score)
            if result.lesion_map is not None:
                found.lesion_heat_scores[sid] = result.lesion_heat_score
        roi_image = load_mask(roi) if roi is not None else None
        maps = {"heatmap": (result.heatmap, None)}
        if result.lesion_map is not None:
            maps["lesion_map"] = (result.lesion_map, result.lesion_clusters)
        image = None
        for name, (values, clusters) in maps.items():
            if clusters is None:
                if image is None:
                    from FCDDetectLib.image_io import load_image

                    image = load_image(subject.images[modalities[0]]).array
                clusters = find_clusters(values, result.affine, image=image if image.shape == values.shape else None)
            row = subject_lesion_metrics(values, result.affine, clusters, roi_image, roi_name=str(roi),
                                         label=int(subject.label))
            found.lesion_rows.setdefault(name, {})[sid] = row
    return found


def summarise_lesions(evaluation: SubjectEvaluation, has_lesion_head: bool) -> dict[str, Any]:
    """Cohort lesion-level figures per map, and the primary map's figures as flat keys.

    The primary map is the lesion map for a model with a lesion head, else the heatmap;
    its figures become ``lesion_detection_rate``, ``lesion_specificity``,
    ``fp_per_patient``, ``fp_per_control``, ``peak_in_roi_rate`` and ``dice_mean`` (the
    keys the experiment tables and t-tests read).
    """
    from FCDDetectLib.lesion_metrics import cohort_lesion_metrics

    per_map = {name: cohort_lesion_metrics(list(rows.values())) for name, rows in evaluation.lesion_rows.items()}
    primary = "lesion_map" if has_lesion_head and "lesion_map" in per_map else "heatmap"
    figures = per_map.get(primary, {})
    lesion_scores = [v for v in map(finite, evaluation.lesion_heat_scores.values()) if v is not None]
    return {
        "lesion_level": per_map, "lesion_level_map": primary,
        "lesion_detection_rate": figures.get("detection_rate"),
        "lesion_specificity": figures.get("specificity"),
        "fp_per_patient": figures.get("fp_per_patient"),
        "fp_per_control": figures.get("fp_per_control"),
        "peak_in_roi_rate": figures.get("peak_in_roi_rate"),
        "dice_mean": figures.get("dice_mean"),
        "lesion_map_heat_score": float(np.mean(lesion_scores)) if lesion_scores else None,
    }


def evaluate_subjects(bundle: Any, subjects: Sequence[Any], cache: Any, device: str = "cpu",
                      method: str = "gradcam", batch_size: int = 4,
                      with_heat: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prediction rows (one per subject) and metrics of ``bundle`` on ``subjects``.

    ``cache`` is a :class:`~FCDTrainLib.cache.VolumeCache` on the bundle's grid.
    """
    threshold = float(bundle.metadata.threshold)
    probs = predict_arrays(bundle.model, cache.stack(subjects), batch_size, device) if subjects else np.zeros(0)
    evaluation = detect_subjects(bundle, subjects, method, device) if with_heat else SubjectEvaluation()
    scores = evaluation.heat_scores
    has_head = bool(getattr(bundle.metadata, "has_lesion_head", False))
    primary = evaluation.lesion_rows.get("lesion_map" if has_head else "heatmap", {})
    rows = []
    for subject, prob in zip(subjects, probs, strict=True):
        lesion_row = primary.get(subject.subject_id, {})
        rows.append({
            "subject": subject.subject_id,
            "label": int(subject.label),
            "probability": float(prob),
            "prediction": int(prob >= threshold),
            "heat_score": scores.get(subject.subject_id),
            "detected": lesion_row.get("detected"),
            "n_clusters": lesion_row.get("n_clusters"),
            "peak_in_roi": lesion_row.get("peak_in_roi"),
            "lesion_heat_score": evaluation.lesion_heat_scores.get(subject.subject_id),
        })
    metrics = classification_metrics([r["label"] for r in rows], probs, threshold)
    metrics.update(summarise_heat(scores))
    metrics["heat_score_method"] = method
    if with_heat:
        metrics.update(summarise_lesions(evaluation, has_head))
    metrics["warnings"] = evaluation.warnings
    return rows, metrics


def predictions_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``predictions.csv`` text: subject, label, probability, prediction, heat_score."""
    return csv_text(rows, PREDICTION_COLUMNS)
