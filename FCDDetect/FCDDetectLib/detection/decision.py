"""The subject-level decision of a detection: which class is FCD, the lesion evidence, the prediction.

A model with a lesion head decides from its lesion evidence (:func:`lesion_evidence_of`: the
score of the lesion map's clusters against the threshold calibrated on the fold's validation
subjects); the others from the classifier's p(FCD) against the bundle's threshold
(:func:`subject_decision`). One rule for :func:`~FCDDetectLib.detection.detect.detect` and the
fold ensemble (:mod:`FCDDetectLib.detection.ensemble_detect`).

Example:
    >>> from FCDDetectLib.detection.decision import fcd_class_index
    >>> fcd_class_index(["control", "fcd"])
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from FCDDetectLib.maps.lesion_evidence import EVIDENCE_SCORE, decide, evidence_score

__all__ = ["fcd_class_index", "lesion_evidence_of", "subject_decision"]


def fcd_class_index(class_names: Sequence[str]) -> int:
    """Index of the FCD class among a bundle's class names: the one named ``fcd``, else the last.

    Example:
        >>> fcd_class_index(["control", "fcd"]), fcd_class_index(["healthy", "lesion"])
        (1, 1)
    """
    return list(class_names).index("fcd") if "fcd" in class_names else len(class_names) - 1


def subject_decision(metadata: Any, probability: float, evidence: dict[str, Any] | None) -> dict[str, str]:
    """The subject's prediction: the lesion evidence's when there is one, else the classifier's.

    Returns ``prediction``, ``classifier_prediction`` (p(FCD) against the bundle's threshold)
    and ``decision_source`` (``lesion_evidence`` or ``classifier``), as
    :class:`~FCDDetectLib.detection.result.DetectionResult` takes them.

    Example:
        >>> subject_decision(bundle.metadata, 0.3, {"fcd": True})["prediction"]  # doctest: +SKIP
        'fcd'
    """
    names = list(metadata.class_names)
    positive = names[fcd_class_index(names)]
    negative = next(name for name in names if name != positive)
    classifier_prediction = positive if probability >= metadata.threshold else negative
    return {
        "prediction": (positive if evidence["fcd"] else negative) if evidence else classifier_prediction,
        "classifier_prediction": classifier_prediction,
        "decision_source": "lesion_evidence" if evidence else "classifier",
    }


def lesion_evidence_of(clusters: Any, metadata: Any) -> dict[str, Any]:
    """The subject-level lesion evidence of a lesion map's clusters, with the bundle's threshold.

    ``{"score", "threshold", "fcd", "calibrated", "definition"}``: the score of
    :func:`FCDDetectLib.maps.lesion_evidence.evidence_score` under the definition the bundle was
    calibrated with (the current one for a bundle without calibration), the bundle's calibrated
    threshold (``lesion_evidence`` in ``bundle.json``; 0, i.e. any cluster, for a bundle without
    one) and the decision (score above the threshold).

    Example:
        >>> lesion_evidence_of(None, None)["fcd"]
        False
    """
    calibration = getattr(metadata, "lesion_evidence", None) or {}
    threshold = calibration.get("threshold")
    definition = calibration.get("score") or EVIDENCE_SCORE  # a bundle's threshold holds for its own score
    score = evidence_score(clusters, definition)
    return {"definition": definition, "score": score, "threshold": float(threshold or 0.0),
            "calibrated": threshold is not None, "fcd": decide(score, threshold)}
