"""Test a trained model on subjects: probabilities, accuracy, ROC-AUC and Heat-Scores.

Probabilities come from the cached model-grid arrays (the same preprocessing ``fcd
detect`` runs). The Heat-Score of every patient with an ROI is computed by
:func:`FCDDetectLib.detection.detect.detect` itself: Grad-CAM (by default) on the model grid,
mapped back onto the reference image's own grid (the first modality), the ROI
resampled onto that grid (nearest neighbour) when it lies elsewhere, then section 2.5's
formula with the whole grid outside the ROI as background. So the number a fold reports
for a patient is exactly the number ``fcd detect --roi`` prints for that patient and
bundle.

The same detection gives the lesion-level figures (``FCDDetectLib.maps.lesion_metrics``): the
heatmap's clusters on every subject (controls too: specificity and FP clusters per
control need them), detected / FP clusters / peak-in-ROI / Dice per patient with an ROI,
and the cohort figures per fold (``metrics["lesion_level"][map]`` for the heatmap and, with a
lesion head, the lesion map; the primary map's figures also as flat keys, see
:func:`summarise_lesions`).

Example:
    >>> rows, metrics = evaluate_subjects(bundle, subjects, cache, DetectOptions(device="cpu"))  # doctest: +SKIP
    >>> metrics["accuracy"], metrics["roc_auc"], metrics["heat_score"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import csv_text

from FCDTrainLib.evaluation.metrics import classification_metrics, finite, summarise_heat

PREDICTION_COLUMNS = ["subject", "label", "probability", "prediction", "heat_score", "detected", "n_clusters",
                      "fp_clusters", "peak_in_roi", "dice", "lesion_heat_score", "lesion_evidence",
                      "lesion_evidence_prediction"]
SUMMARY_METRICS = ("accuracy", "roc_auc", "heat_score", "lesion_detection_rate", "lesion_specificity",
                   "fp_per_patient", "fp_per_control", "peak_in_roi_rate", "dice_mean", "lesion_map_heat_score",
                   "cluster_ppv", "lesion_evidence_roc_auc", "lesion_evidence_accuracy")
"""Per-fold figures given as mean +/- std over folds (``summary.json``, ``fcd evaluate``); the
lesion-level ones are of the primary map (:func:`summarise_lesions`)."""
_LESION_ROW_KEYS = ("detected", "n_clusters", "fp_clusters", "peak_in_roi", "dice")


def predict_arrays(model: Any, arrays: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """FCD probabilities (softmax of class 1) of (N, C, X, Y, Z) arrays, model in eval mode."""
    import torch

    from FCDTrainLib.training.fold_model import evaluate_loss

    x = torch.from_numpy(np.ascontiguousarray(arrays))
    y = torch.zeros(x.shape[0], dtype=torch.long)
    _, probs = evaluate_loss(model, x, y, batch_size, torch.device(device))
    return probs.astype(np.float64)


def heat_scores(bundle: Any, subjects: Sequence[Any], options: DetectOptions) -> tuple[dict[str, float | None], list[str]]:
    """Heat-Score of each patient with an ROI (subject id -> score) and warnings.

    ``options`` are the detection's (method and layer None: the bundle's default, else Grad-CAM, layer4).
    A subject whose ROI cannot be scored (empty, outside the grid...) gets None and a
    warning naming it, rather than stopping the run.

    Example:
        >>> scores, warnings = heat_scores(bundle, subjects, DetectOptions(layer="layer3"))  # doctest: +SKIP
    """
    evaluation = detect_subjects(bundle, [s for s in subjects if int(s.label) == 1 and s.roi is not None], options)
    return evaluation.heat_scores, evaluation.warnings


@dataclass
class SubjectEvaluation:
    """What :func:`detect_subjects` found: Heat-Scores and lesion-level rows per map.

    ``lesion_rows[map]`` holds one :func:`FCDDetectLib.maps.lesion_metrics.subject_lesion_metrics`
    row per subject (keyed by subject id), for ``"heatmap"`` and, with a lesion head,
    ``"lesion_map"``.
    """

    heat_scores: dict[str, float | None] = field(default_factory=dict)
    lesion_heat_scores: dict[str, float | None] = field(default_factory=dict)
    lesion_evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    lesion_rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def detect_subjects(bundle: Any, subjects: Sequence[Any], options: DetectOptions) -> SubjectEvaluation:
    """Run ``fcd detect``'s own pipeline on every subject: Heat-Scores, clusters, lesion rows.

    Patients with an ROI get Heat-Scores (heatmap, and lesion map with a lesion head);
    every subject (controls too) gets the lesion-level rows that
    :func:`FCDDetectLib.detection.detect.detect` computes for each map (clusters restricted to the
    head, cut at ``options.cluster_threshold``, at least ``options.min_cluster_mm3``). A subject that cannot be scored gets a warning
    naming it, rather than stopping the run.

    Example:
        >>> found = detect_subjects(bundle, subjects, DetectOptions(layer="layer2", device="cpu"))  # doctest: +SKIP
        >>> sorted(found.lesion_rows)  # doctest: +SKIP
        ['heatmap']
    """
    from FCDDetectLib.detection.detect import detect

    found = SubjectEvaluation()
    modalities = list(bundle.metadata.modalities)
    for subject in subjects:
        sid, patient = subject.subject_id, int(subject.label) == 1
        roi = subject.roi if patient else None
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=roi, options=options)
        except FCDInputError as error:
            if roi is not None:
                found.heat_scores[sid] = None
            found.warnings.append(f"{sid}: no Heat-Score or clusters ({error})")
            continue
        if roi is not None:
            if result.heat_score is None:
                found.heat_scores[sid] = None
                found.warnings.append(f"{sid}: no Heat-Score ({result.heat_score_details.note})")
            else:
                found.heat_scores[sid] = float(result.heat_score)
            if result.lesion_map is not None:
                found.lesion_heat_scores[sid] = result.lesion_heat_score
        if result.lesion_evidence is not None:
            found.lesion_evidence[sid] = result.lesion_evidence
        for name, row in (("heatmap", result.lesion), ("lesion_map", result.lesion_map_metrics)):
            if row is not None:
                found.lesion_rows.setdefault(name, {})[sid] = {**row, "label": int(subject.label)}
    return found


def summarise_lesions(evaluation: SubjectEvaluation, has_lesion_head: bool) -> dict[str, Any]:
    """Cohort lesion-level figures per map, and the primary map's figures as flat keys.

    The primary map is the lesion map for a model with a lesion head, else the heatmap;
    its figures become ``lesion_detection_rate``, ``lesion_specificity``,
    ``fp_per_patient``, ``fp_per_control``, ``peak_in_roi_rate`` and ``dice_mean`` (the
    keys the experiment tables and t-tests read).

    Example:
        >>> summarise_lesions(SubjectEvaluation(), False)["lesion_detection_rate"] is None
        True
    """
    from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics

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
        "cluster_ppv": figures.get("cluster_ppv"),
        "lesion_map_heat_score": float(np.mean(lesion_scores)) if lesion_scores else None,
    }


def evaluate_subjects(bundle: Any, subjects: Sequence[Any], cache: Any, options: DetectOptions,
                      batch_size: int = 4, with_heat: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prediction rows (one per subject) and metrics of ``bundle`` on ``subjects``.

    ``cache`` is a :class:`~FCDTrainLib.training.input_cache.VolumeCache` on the bundle's grid;
    ``options`` are the detection's (``options.device`` runs the network too). With
    ``with_heat`` each subject is also explained: Heat-Scores and the lesion-level figures
    (see the module docstring) join the rows and the metrics.

    Example:
        >>> rows, metrics = evaluate_subjects(bundle, subjects, cache, DetectOptions(layer="multi"))  # doctest: +SKIP
    """
    threshold = float(bundle.metadata.threshold)
    options = options.for_bundle(bundle.metadata)  # the bundle's method, layer and operating point where left open
    device = options.device
    probs = predict_arrays(bundle.model, cache.stack(subjects), batch_size, device) if subjects else np.zeros(0)
    evaluation = detect_subjects(bundle, subjects, options) if with_heat else SubjectEvaluation()
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
            **{key: lesion_row.get(key) for key in _LESION_ROW_KEYS},
            "lesion_heat_score": evaluation.lesion_heat_scores.get(subject.subject_id),
            "lesion_evidence": evaluation.lesion_evidence.get(subject.subject_id, {}).get("score"),
            "lesion_evidence_prediction": _as_int(evaluation.lesion_evidence.get(subject.subject_id, {}).get("fcd")),
        })
    metrics = classification_metrics([r["label"] for r in rows], probs, threshold)
    metrics.update(summarise_heat(scores))
    metrics["heat_score_method"] = options.method
    metrics["heat_score_layer"] = options.layer
    metrics["cluster_threshold"], metrics["min_cluster_mm3"] = options.cluster_threshold, options.min_cluster_mm3
    if with_heat:
        metrics.update(summarise_lesions(evaluation, has_head))
        metrics.update(summarise_evidence(rows))
    metrics["warnings"] = evaluation.warnings
    return rows, metrics


def _as_int(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def summarise_evidence(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The lesion evidence's ROC-AUC and the accuracy of its decision (None without a lesion head).

    Beside the classifier's ``roc_auc`` and ``accuracy``: a lesion model decides from its lesion
    evidence (``docs/lesion-level.md``), and the fold reports both.

    Example:
        >>> summarise_evidence([{"label": 1, "lesion_evidence": 300.0, "lesion_evidence_prediction": 1},
        ...                     {"label": 0, "lesion_evidence": 0.0, "lesion_evidence_prediction": 0}])
        {'lesion_evidence_roc_auc': 1.0, 'lesion_evidence_accuracy': 1.0, 'decision_source': 'lesion_evidence'}
    """
    from FCDTrainLib.training.fold_model import roc_auc_or_nan

    scored = [r for r in rows if r.get("lesion_evidence") is not None]
    if not scored:
        return {"lesion_evidence_roc_auc": None, "lesion_evidence_accuracy": None, "decision_source": "classifier"}
    labels = np.asarray([int(r["label"]) for r in scored])
    auc = roc_auc_or_nan(labels, np.asarray([float(r["lesion_evidence"]) for r in scored]))
    accuracy = float(np.mean([int(r["lesion_evidence_prediction"]) == int(r["label"]) for r in scored]))
    return {"lesion_evidence_roc_auc": auc, "lesion_evidence_accuracy": accuracy, "decision_source": "lesion_evidence"}


def predictions_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``predictions.csv`` text: subject, label, probability, prediction, heat_score and the lesion columns."""
    return csv_text(rows, PREDICTION_COLUMNS)
