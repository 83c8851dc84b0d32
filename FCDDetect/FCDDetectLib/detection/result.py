"""The result of one detection: :class:`DetectionResult` and its ``result.json`` form.

``probability`` is always the classifier head's p(FCD); ``prediction`` is the decision, and
``decision_source`` says what it follows: ``"lesion_evidence"`` for a lesion model (its lesion
map's subject-level score against the bundle's calibrated threshold, ``lesion_evidence``) or
``"classifier"`` (p(FCD) against the bundle's ``threshold``, ``classifier_prediction``). A fold
ensemble also fills ``uncertainty`` (the voxel-wise spread of the folds' maps) and ``ensemble``.

:func:`~FCDDetectLib.detection.detect.detect` fills it; :meth:`DetectionResult.to_json` is the summary
that :func:`~FCDDetectLib.outputs.detection_files.write_detection` writes as ``result.json`` (no
arrays), :meth:`DetectionResult.lesion_json` its ``lesion_map`` entry for bundles with a
lesion head. Arrays (heatmap, lesion map, cluster labels) lie on the first input image's grid.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.detection.result import DetectionResult
    >>> result = DetectionResult(probability=0.9, prediction="fcd", threshold=0.5, method="gradcam",
    ...                          model="tiny", target_class="fcd", seconds=1.0,
    ...                          heatmap=np.zeros((2, 2, 2), np.float32), affine=np.eye(4))
    >>> summary = result.to_json()
    >>> summary["prediction"], summary["n_clusters"], summary["lesion_map"]
    ('fcd', None, None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from FCDDetectLib.choices import DEFAULT_LAYER
from FCDDetectLib.maps.clusters import ClusterSet
from FCDDetectLib.maps.heat_score import HeatScoreResult
from FCDDetectLib.version import __version__


@dataclass
class DetectionResult:
    """What one detection produced. ``heatmap`` lies on the first input image's grid.

    ``clusters`` are the heatmap's clusters (``clusters.labels`` on the same grid);
    ``lesion`` the subject's lesion-level figures (:func:`subject_lesion_metrics`; with
    ``detected``/``peak_in_roi``/``dice`` None when no ROI was given).
    """

    probability: float
    prediction: str
    threshold: float
    method: str
    model: str
    target_class: str
    seconds: float
    heatmap: np.ndarray
    affine: np.ndarray
    heat_score: float | None = None
    heat_score_details: HeatScoreResult | None = None
    modalities: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    device: str = "cpu"
    saliency: Any = None  # localized_saliency.LocalizedSaliency when asked for (--localized-smoothgrad)
    model_metadata: dict[str, Any] = field(default_factory=dict)  # the bundle's metadata (for the report)
    warnings: list[str] = field(default_factory=list)
    out_of_distribution: bool | None = None
    ood_reasons: list[str] = field(default_factory=list)
    input_statistics: dict[str, float] = field(default_factory=dict)
    layer: str | None = DEFAULT_LAYER
    clusters: ClusterSet | None = None
    lesion: dict[str, Any] | None = None
    lesion_map: np.ndarray | None = None
    lesion_heat_score: float | None = None
    lesion_heat_score_details: HeatScoreResult | None = None
    lesion_clusters: ClusterSet | None = None  # the lesion map's clusters
    lesion_map_metrics: dict[str, Any] | None = None  # subject_lesion_metrics of the lesion map
    model_sha256: str | None = None  # the bundle's content checksum (its identity; the name is none)
    model_verified: bool = False  # the checksum matched the one the bundle records (False: older bundle)
    input_sha256: dict[str, Any] | None = None  # detection.inputs.input_checksums of the inputs
    options: dict[str, Any] | None = None  # DetectOptions.identity(): every option that changes the output
    classifier_prediction: str | None = None  # the classifier head's decision (probability vs threshold)
    decision_source: str = "classifier"  # what ``prediction`` follows: "classifier" or "lesion_evidence"
    lesion_evidence: dict[str, Any] | None = None  # a lesion model's subject-level score, threshold, decision
    uncertainty: np.ndarray | None = None  # fold ensembles: voxel-wise spread across the folds' maps
    ensemble: dict[str, Any] | None = None  # fold ensembles: members, missing folds, per-member figures

    def lesion_json(self) -> dict[str, Any] | None:
        """The lesion map's summary (bundles with a lesion head), or None."""
        if self.lesion_map is None:
            return None
        details, clusters = self.lesion_heat_score_details, self.lesion_clusters
        return {
            "heat_score": self.lesion_heat_score,
            "heat_score_note": details.note if details else None,
            "max_probability": float(self.lesion_map.max()) if self.lesion_map.size else None,
            "cluster_threshold": clusters.threshold if clusters is not None else None,
            "cluster_min_size_mm3": clusters.min_size_mm3 if clusters is not None else None,
            "n_clusters": len(clusters.clusters) if clusters is not None else None,
            "top_cluster": clusters.clusters[0].to_json() if clusters is not None and clusters.clusters else None,
            "operating_point": (self.model_metadata or {}).get("operating_point"),
            "mirror_axes": (self.model_metadata or {}).get("lesion_mirror_axes") or [],
            **_roi_figures(self.lesion_map_metrics),
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary written to ``result.json`` (no arrays)."""
        details = self.heat_score_details
        clusters = self.clusters
        return {
            "probability": self.probability,
            "prediction": self.prediction,
            "decision_source": self.decision_source,
            "classifier_prediction": self.classifier_prediction or self.prediction,
            "threshold": self.threshold,
            "lesion_evidence": self.lesion_evidence,
            "heat_score": self.heat_score,
            "roi_voxels": details.roi_voxels if details else None,
            "roi_resampled": details.roi_resampled if details else None,
            "background_voxels": details.background_voxels if details else None,
            "heat_score_note": details.note if details else None,
            "method": self.method,
            "layer": self.layer,
            "head_restricted": True,
            "cluster_threshold": clusters.threshold if clusters else None,
            "min_cluster_mm3": clusters.min_size_mm3 if clusters else None,
            "n_clusters": len(clusters.clusters) if clusters else None,
            "top_cluster": (self.lesion or {}).get("top_cluster"),
            **_roi_figures(self.lesion),
            "target_class": self.target_class,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "model_verified": self.model_verified,
            "input_sha256": self.input_sha256,
            "options": self.options,
            "modalities": self.modalities,
            "inputs": self.inputs,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            "engine_version": __version__,
            **({"modality_contributions": self.saliency.to_json()} if self.saliency is not None else {}),
            "warnings": list(self.warnings),
            # "unknown" for a bundle that records no training input ranges (older bundles)
            "out_of_distribution": "unknown" if self.out_of_distribution is None else self.out_of_distribution,
            "ood_reasons": list(self.ood_reasons),
            "input_statistics": dict(self.input_statistics),
            "lesion_map": self.lesion_json(),
            **({"ensemble": self.ensemble} if self.ensemble is not None else {}),
        }


def _roi_figures(row: dict[str, Any] | None) -> dict[str, Any]:
    """A map's figures against the ROI for ``result.json`` (from :func:`subject_lesion_metrics`; None without ROI)."""
    row = row or {}
    return {
        "detected": row.get("detected"),
        "fp_clusters": row.get("fp_clusters") if row.get("has_roi") else None,
        "peak_in_roi": row.get("peak_in_roi"),
        "dice": row.get("dice"),
    }
