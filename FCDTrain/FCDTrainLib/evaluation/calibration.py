"""A lesion model's operating point and lesion-evidence threshold, chosen on its fold's validation subjects.

After a lesion fold has trained, its validation subjects (never its test subjects) go through
the lesion map of ``fcd detect`` (:func:`FCDDetectLib.detection.detect.detect_lesion_map`):

1. **Operating point** (:func:`choose_operating_point`): every cluster threshold of
   :data:`THRESHOLDS` and minimum size of :data:`MIN_SIZES_MM3` is tried on the validation maps;
   among the settings with at most ``target_fp_per_control`` false-positive clusters per control
   (``RunConfig.operating_fp_per_control``, default 0.2), the one with the highest detection
   rate wins; ties go to fewer FP clusters per patient, then the higher Dice, then the lower
   threshold and size (the more sensitive). When no setting meets the target, the one with the
   fewest FP clusters per control (then the highest detection) is taken and ``target_met`` is
   false. The grid is our choice: thresholds 0.3-0.9 in steps of 0.1 around the 0.5 of a
   calibrated probability, then 0.95, 0.98 and 0.99 for models sure of their false positives
   (:data:`THRESHOLDS`), sizes from the engine's 50 mm3 to 400 mm3 (a 9 mm cube; the
   smallest FCD-II lesions are some 270 mm3).
2. **Lesion evidence** (:func:`FCDDetectLib.maps.lesion_evidence.evidence_score`: the top
   component at that operating point's threshold, whatever its size): its threshold is Youden's J on the validation subjects
   (:func:`FCDDetectLib.maps.lesion_evidence.youden_threshold`); its validation ROC-AUC is stored
   beside it.

Both are stored in the bundle (``operating_point``, ``lesion_evidence``): ``fcd detect``
clusters the lesion map at that point unless told otherwise, and decides from the lesion
evidence. A validation set is small (a fifth of a fold's training subjects): the figures it
gives are stored with their counts.

Example:
    >>> point, evidence, warnings = calibrate_lesion_model(bundle, validation_subjects, 0.2)  # doctest: +SKIP
    >>> point["cluster_threshold"], evidence["threshold"]  # doctest: +SKIP
    (0.6, 312.4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.maps.lesion_evidence import EVIDENCE_SCORE, roc_auc, youden_threshold

__all__ = ["MIN_SIZES_MM3", "THRESHOLDS", "ValidationMap", "calibrate_lesion_model", "choose_operating_point",
           "validation_maps"]

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
"""Cluster thresholds tried on the validation maps. 0.95-0.99 were added when a lesion model
trained for 300 epochs was sure of its false positives too: every validation control's map of
one fold in four peaked at 0.89-1.0, and no setting up to 0.9 met the FP target (1.0-4.5 FP
clusters per control at 0.5; 0.42 at 0.9 and 400 mm3, the least); at 0.98-0.99 and 400 mm3 it
met it with every validation lesion found (``docs/lesion-supervision.md``)."""
MIN_SIZES_MM3 = (50.0, 100.0, 200.0, 400.0)
"""Minimum cluster sizes (mm3) tried on the validation maps."""


@dataclass
class ValidationMap:
    """One validation subject's lesion map on its own grid, its label and its ROI (bool, same grid, or None)."""

    subject: str
    label: int
    lesion_map: np.ndarray
    affine: np.ndarray
    roi: np.ndarray | None


def validation_maps(bundle: Any, subjects: Sequence[Any], device: str = "cpu") -> tuple[list[ValidationMap], list[str]]:
    """The lesion maps of ``subjects`` (a subject that cannot be read becomes a warning)."""
    from FCDDetectLib.detection.detect import detect_lesion_map
    from FCDDetectLib.detection.inputs import DetectionInputs

    maps, warnings = [], []
    modalities = list(bundle.metadata.modalities)
    for subject in subjects:
        patient = int(subject.label) == 1
        try:
            inputs = DetectionInputs.load([subject.images[m] for m in modalities],
                                          subject.roi if patient else None, labels=modalities)
            lesion, affine, roi = detect_lesion_map(bundle, inputs, device)
        except FCDInputError as error:
            warnings.append(f"{subject.subject_id}: left out of the calibration ({error})")
            continue
        maps.append(ValidationMap(subject.subject_id, int(subject.label), lesion, affine, roi))
    return maps, warnings


def _clusters_by_threshold(maps: Sequence[ValidationMap], threshold: float, smallest: float) -> list[list[dict]]:
    """Per subject, its clusters at ``threshold`` (at least ``smallest`` mm3): volume, peak, voxels, ROI overlap."""
    from FCDDetectLib.maps.clusters import find_clusters

    out = []
    for item in maps:
        found = find_clusters(item.lesion_map, item.affine, threshold, smallest)
        clusters = []
        for cluster in found.clusters:
            inside = found.labels == cluster.id
            overlap = int(np.count_nonzero(inside & item.roi)) if item.roi is not None else 0
            clusters.append({"volume": cluster.volume_mm3, "peak": cluster.peak, "voxels": cluster.voxels,
                             "overlap": overlap})
        out.append(clusters)
    return out


def _figures(maps: Sequence[ValidationMap], clusters: list[list[dict]], size: float) -> dict[str, Any]:
    """Validation figures of one setting (clusters already cut at its threshold, kept from ``size`` mm3)."""
    detected, fp_patients, fp_controls, dice, scores = [], [], [], [], []
    for item, found in zip(maps, clusters, strict=True):
        kept = [c for c in found if c["volume"] >= size]
        # The lesion evidence (EVIDENCE_SCORE): every component at the threshold, whatever its size.
        scores.append(max((c["peak"] * c["volume"] for c in found), default=0.0))
        if item.label == 1 and item.roi is not None:
            touching = [c for c in kept if c["overlap"] > 0]
            detected.append(1.0 if touching else 0.0)
            fp_patients.append(float(len(kept) - len(touching)))
            roi_voxels = int(np.count_nonzero(item.roi))
            dice.append(2.0 * sum(c["overlap"] for c in kept) / (sum(c["voxels"] for c in kept) + roi_voxels))
        elif item.label == 0:
            fp_controls.append(float(len(kept)))

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {"detection_rate": mean(detected), "fp_per_control": mean(fp_controls), "fp_per_patient": mean(fp_patients),
            "specificity": mean([1.0 if v == 0 else 0.0 for v in fp_controls]), "dice_mean": mean(dice),
            "n_patients": len(detected), "n_controls": len(fp_controls), "scores": scores}


def choose_operating_point(maps: Sequence[ValidationMap], target_fp_per_control: float,
                           thresholds: Sequence[float] = THRESHOLDS,
                           sizes: Sequence[float] = MIN_SIZES_MM3) -> tuple[dict[str, Any], list[float]]:
    """The cluster threshold and minimum size for ``target_fp_per_control`` (rules in the module docstring).

    Returns the operating point (``cluster_threshold``, ``min_cluster_mm3``, the target,
    ``target_met`` and the validation figures) and the validation subjects' evidence scores at it.

    Example:
        >>> point, scores = choose_operating_point(maps, 0.2)  # doctest: +SKIP
    """
    if not maps:
        raise FCDInputError("operating point: no validation subject could be read")
    table = []
    for threshold in thresholds:
        clusters = _clusters_by_threshold(maps, threshold, 0.0)  # every component: the evidence needs them all
        for size in sizes:
            table.append((float(threshold), float(size), _figures(maps, clusters, size)))

    def fp(row: tuple) -> float:
        return row[2]["fp_per_control"] if row[2]["fp_per_control"] is not None else 0.0

    def rank(row: tuple) -> tuple:
        figures = row[2]
        return (-(figures["detection_rate"] or 0.0), figures["fp_per_patient"] or 0.0, -(figures["dice_mean"] or 0.0),
                row[0], row[1])

    meeting = [row for row in table if fp(row) <= target_fp_per_control + 1e-9]
    best = min(meeting, key=rank) if meeting else min(table, key=lambda row: (fp(row), *rank(row)))
    threshold, size, figures = best
    validation = {k: v for k, v in figures.items() if k != "scores"}
    point = {"cluster_threshold": threshold, "min_cluster_mm3": size, "target_fp_per_control": float(target_fp_per_control),
             "target_met": bool(meeting), "chosen_on": "the fold's validation subjects", "validation": validation,
             "candidates": {"thresholds": [float(t) for t in thresholds], "min_sizes_mm3": [float(s) for s in sizes]}}
    return point, figures["scores"]


def calibrate_lesion_model(bundle: Any, subjects: Sequence[Any], target_fp_per_control: float,
                           device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Operating point and lesion evidence of a lesion model on its validation ``subjects``.

    Returns ``(operating_point, lesion_evidence, warnings)``, the two dicts ``bundle.json`` stores.

    Example:
        >>> point, evidence, warnings = calibrate_lesion_model(bundle, validation, 0.2)  # doctest: +SKIP
    """
    maps, warnings = validation_maps(bundle, subjects, device)
    point, scores = choose_operating_point(maps, target_fp_per_control)
    labels = [m.label for m in maps]
    threshold = youden_threshold(scores, labels)
    if threshold is None:
        warnings.append("lesion evidence: the validation subjects hold one class only; no threshold calibrated "
                        "(any cluster decides)")
    evidence = {"score": EVIDENCE_SCORE, "threshold": threshold, "validation_roc_auc": roc_auc(scores, labels),
                "rule": "fcd when the score is above the threshold (Youden's J on the validation subjects)",
                "n_patients": int(sum(labels)), "n_controls": int(len(labels) - sum(labels)),
                "cluster_threshold": point["cluster_threshold"], "min_cluster_mm3": point["min_cluster_mm3"]}
    return point, evidence, warnings
