"""Detection with a fold ensemble: the folds' mean maps, their spread (uncertainty), and clusters that say how many folds found them.

:func:`detect_ensemble` runs :func:`FCDDetectLib.detection.detect.detect` with every member of a
:class:`~FCDDetectLib.networks.ensemble.ModelEnsemble` on the same inputs (read once), then:

- ``heatmap`` and ``lesion_map`` are the voxel-wise means of the members' maps (each already on
  the input grid and restricted to the head), ``probability`` the mean of their p(FCD). When the
  members have operating points and the caller sets no cluster threshold, each member's lesion
  map is first put on its operating scale (its own threshold moved to
  :data:`~FCDDetectLib.networks.ensemble.OPERATING_LEVEL`,
  :func:`FCDDetectLib.maps.operating_scale.to_operating_scale`): the mean lesion map is then at
  or above 0.5 where the folds, on average, are at or above their own operating points, and its
  clusters are cut at :data:`~FCDDetectLib.networks.ensemble.ENSEMBLE_CLUSTER_THRESHOLD` (0.4);
- ``uncertainty`` is the voxel-wise standard deviation across the members (population,
  ``ddof=0``) of the primary map as averaged: the lesion map (on the operating scale when the
  mean is) for lesion models, else the heatmap. In [0, 0.5] for maps in [0, 1]; 0 where every
  fold agrees. nnU-Net averages its folds the same way; deepFCD reports the spread of
  Monte-Carlo-dropout samples instead (one model, many samples), the folds here are independent
  models trained on different subjects;
- clusters are cut from the mean maps at the ensemble's operating point
  (:func:`FCDDetectLib.networks.ensemble.ensemble_metadata`, unless the caller sets one); each
  cluster carries ``folds_found`` (how many members have a cluster of their own, at their own
  operating point, overlapping it) and, on the primary map, ``mean_uncertainty`` (the mean of
  ``uncertainty`` over its voxels);
- a lesion ensemble decides from the lesion evidence of its mean map against the median of the
  members' calibrated thresholds; ``ensemble`` in the result lists every member's probability,
  evidence and decision (``fold_votes``: how many members say ``fcd``), and the missing folds.

:func:`load_models` loads one bundle or an ensemble (a run folder, or several bundles);
:func:`detect_any` detects with either. A single bundle detects exactly as before.

Example:
    >>> from FCDDetectLib.detection.ensemble_detect import detect_any, load_models
    >>> models = load_models(["runs/r18-lesion"], device="cpu")  # doctest: +SKIP
    >>> result = detect_any(models, ["sub-01_FLAIR.nii.gz"])  # doctest: +SKIP
    >>> result.uncertainty.shape == result.lesion_map.shape, result.ensemble["n_members"]  # doctest: +SKIP
    (True, 5)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from FCDDetectLib.detection.decision import fcd_class_index, lesion_evidence_of, subject_decision
from FCDDetectLib.detection.detect import detect, load_model, resolve_device
from FCDDetectLib.detection.inputs import DetectionInputs, ImageSource
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import ClusterSet, find_clusters
from FCDDetectLib.maps.heat_score import heat_score_images
from FCDDetectLib.maps.lesion_metrics import roi_on_grid, subject_lesion_metrics
from FCDDetectLib.maps.operating_scale import to_operating_scale
from FCDDetectLib.networks.ensemble import OPERATING_LEVEL, ModelEnsemble, is_run_folder, load_ensemble

__all__ = ["UNCERTAINTY", "annotate_clusters", "detect_any", "detect_ensemble", "is_ensemble_request", "load_models"]

UNCERTAINTY = ("standard deviation across the fold models of the primary map as averaged (a lesion map on its "
               "operating scale when the ensemble's operating point applies; population, ddof=0)")
"""What ``uncertainty.nii.gz`` holds (written to result.json's ``ensemble`` entry)."""


def is_ensemble_request(models: Sequence[str | os.PathLike]) -> bool:
    """True for a run folder or several bundles; False for one bundle (detected as before)."""
    return len(models) > 1 or (len(models) == 1 and is_run_folder(models[0]))


def load_models(models: Any, device: str = "cpu", require_all: bool = False) -> Any:
    """A loaded bundle, or a :class:`ModelEnsemble` for a run folder or several bundles.

    ``models``: a path, a list of paths, a loaded bundle or a loaded ensemble.
    """
    if isinstance(models, ModelEnsemble):
        for member in models.members:
            member.model.to(device).eval()
        return models
    if isinstance(models, (list, tuple)):
        if is_ensemble_request(models):
            return load_ensemble(list(models), device=device, require_all=require_all)
        models = models[0]
    if isinstance(models, (str, Path)) and is_run_folder(models):
        return load_ensemble([models], device=device, require_all=require_all)
    return load_model(models, device)


def detect_any(model: Any, images: ImageSource | Sequence[ImageSource] | DetectionInputs, roi: ImageSource | None = None,
               brain_mask: ImageSource | None = None, options: DetectOptions | None = None,
               **option_values: Any) -> DetectionResult:
    """:func:`detect` for one bundle, :func:`detect_ensemble` for an ensemble (loaded or paths)."""
    options = (options or DetectOptions()).replace(**option_values)
    if not isinstance(model, ModelEnsemble) and not (
            isinstance(model, (list, tuple)) or (isinstance(model, (str, Path)) and is_run_folder(model))):
        return detect(model, images, roi=roi, brain_mask=brain_mask, options=options)
    ensemble = load_models(model, resolve_device(options.device))
    if not isinstance(ensemble, ModelEnsemble):
        return detect(ensemble, images, roi=roi, brain_mask=brain_mask, options=options)
    return detect_ensemble(ensemble, images, roi=roi, brain_mask=brain_mask, options=options)


def annotate_clusters(clusters: ClusterSet, member_masks: Sequence[np.ndarray],
                      uncertainty: np.ndarray | None = None) -> ClusterSet:
    """``clusters`` with ``folds_found`` (members whose own cluster mask overlaps) and ``mean_uncertainty``.

    Example:
        >>> import numpy as np
        >>> heat = np.zeros((6, 6, 6), np.float32); heat[1:3, 1:3, 1:3] = 0.9
        >>> found = find_clusters(heat, np.eye(4), 0.5, 0.0)
        >>> masks = [heat > 0.5, np.zeros(heat.shape, bool)]
        >>> spread = np.full(heat.shape, 0.25, np.float32)
        >>> cluster = annotate_clusters(found, masks, spread).clusters[0]
        >>> cluster.folds_found, cluster.mean_uncertainty
        (1, 0.25)
    """
    annotated = []
    for cluster in clusters.clusters:
        inside = clusters.labels == cluster.id
        found = sum(1 for mask in member_masks if bool(np.any(mask & inside)))
        spread = float(uncertainty[inside].astype(np.float64).mean()) if uncertainty is not None else None
        annotated.append(dataclasses.replace(cluster, folds_found=found, mean_uncertainty=spread))
    return dataclasses.replace(clusters, clusters=annotated)


def _member_thresholds(metadata: Any, labels: Sequence[str]) -> dict[str, float] | None:
    """Each member's own cluster threshold, from the ensemble's operating point (None without one).

    :func:`~FCDDetectLib.networks.ensemble.ensemble_metadata` gives the ensemble a point only when
    every member has one, and lists every member's under ``members``.
    """
    point = metadata.operating_point
    return {label: point["members"][label]["cluster_threshold"] for label in labels} if point else None


class _Moments:
    """Running sum and sum of squares of maps (float64), for the mean and the spread."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, None, None

    def add(self, array: np.ndarray) -> None:
        values = np.asarray(array, dtype=np.float64)
        self.total = values.copy() if self.total is None else self.total + values
        self.squares = values * values if self.squares is None else self.squares + values * values
        self.n += 1

    def mean(self) -> np.ndarray:
        return (self.total / self.n).astype(np.float32)

    def sd(self) -> np.ndarray:
        mean = self.total / self.n
        return np.sqrt(np.maximum(self.squares / self.n - mean * mean, 0.0)).astype(np.float32)


def detect_ensemble(ensemble: ModelEnsemble, images: ImageSource | Sequence[ImageSource] | DetectionInputs,
                    roi: ImageSource | None = None, brain_mask: ImageSource | None = None,
                    options: DetectOptions | None = None, **option_values: Any) -> DetectionResult:
    """Detect with every member of ``ensemble`` and combine (rules in the module docstring).

    ``options`` as for :func:`detect`; cluster settings left None are each member's own
    operating point for its clusters and the ensemble's for the mean maps (the lesion maps then
    averaged on their operating scales). A cluster threshold the caller sets applies to the
    plain mean of the members' maps.
    """
    from FCDDetectLib.grid.head_mask import head_mask

    started = time.perf_counter()
    options = (options or DetectOptions()).replace(**option_values)
    meta = ensemble.metadata
    inputs = images if isinstance(images, DetectionInputs) else DetectionInputs.load(
        [images] if isinstance(images, (str, Path, Image)) else list(images), roi, brain_mask,
        series=options.series, roi_segment=options.roi_segment, labels=meta.modalities)
    resolved = options.for_bundle(meta)
    scales = _member_thresholds(meta, ensemble.labels) if options.cluster_threshold is None else None
    heat, lesion = _Moments(), _Moments()
    heat_masks: list[np.ndarray] = []
    lesion_masks: list[np.ndarray] = []
    members: list[dict[str, Any]] = []
    ood: list[bool | None] = []
    reasons: list[str] = []
    first: DetectionResult | None = None
    for label, bundle in zip(ensemble.labels, ensemble.members, strict=True):
        result = detect(bundle, inputs, options=options)
        first = first or result
        heat.add(result.heatmap)
        heat_masks.append(result.clusters.labels > 0)
        if result.lesion_map is not None:
            lesion.add(result.lesion_map if scales is None
                       else to_operating_scale(result.lesion_map, scales[label], OPERATING_LEVEL))
            lesion_masks.append(result.lesion_clusters.labels > 0)
        ood.append(result.out_of_distribution)
        reasons.extend(f"{label}: {reason}" for reason in result.ood_reasons)
        members.append({"member": label, "model": result.model, "probability": result.probability,
                        "prediction": result.prediction, "lesion_evidence": (result.lesion_evidence or {}).get("score"),
                        "n_lesion_clusters": len(result.lesion_clusters.clusters) if result.lesion_clusters else None})
    assert first is not None  # an ensemble has at least one member (find_members)
    reference = inputs.reference
    affine = np.asarray(reference.affine, dtype=np.float64)
    head = head_mask(reference.array)
    has_lesion = lesion.n > 0
    heatmap = heat.mean()
    lesion_map = lesion.mean() if has_lesion else None
    uncertainty = lesion.sd() if has_lesion else heat.sd()
    threshold, size = resolved.cluster_threshold, resolved.min_cluster_mm3
    clusters = annotate_clusters(find_clusters(heatmap, affine, threshold, size, head_mask=head), heat_masks,
                                 None if has_lesion else uncertainty)
    roi_mask = (roi_on_grid(inputs.roi, reference.array.shape, affine, inputs.roi.affine, inputs.roi_name)
                if inputs.roi is not None else None)
    details = (heat_score_images(Image(heatmap, affine), inputs.roi, inputs.brain_mask, roi_name=inputs.roi_name,
                                 undefined_ok=True, mask_name=inputs.brain_mask_name) if inputs.roi is not None else None)
    lesion_outputs: dict[str, Any] = {}
    evidence = None
    if has_lesion:
        lesion_clusters = annotate_clusters(find_clusters(lesion_map, affine, threshold, size, head_mask=head),
                                            lesion_masks, uncertainty)
        lesion_outputs = {"lesion_map": lesion_map, "lesion_clusters": lesion_clusters,
                          "lesion_map_metrics": subject_lesion_metrics(lesion_map, affine, lesion_clusters, roi_mask,
                                                                       roi_name=inputs.roi_name)}
        if inputs.roi is not None:
            lesion_details = heat_score_images(Image(lesion_map, affine), inputs.roi, inputs.brain_mask,
                                               roi_name=inputs.roi_name, undefined_ok=True)
            lesion_outputs.update(lesion_heat_score=lesion_details.heat_score,
                                  lesion_heat_score_details=lesion_details)
        evidence = lesion_evidence_of(lesion_clusters, meta)
    probability = float(np.mean([m["probability"] for m in members]))
    positive = meta.class_names[fcd_class_index(meta.class_names)]
    summary = {
        "n_members": len(members), "members": members, "missing_folds": list(ensemble.missing),
        "source": ensemble.source, "uncertainty": UNCERTAINTY,
        "fold_votes": sum(1 for m in members if m["prediction"] == positive),
        "operating_point": {"cluster_threshold": threshold, "min_cluster_mm3": size,
                            "lesion_map_scale": "operating" if scales is not None and has_lesion else "plain"},
    }
    warnings = list(first.warnings)
    if ensemble.missing:
        warnings.append(f"{ensemble.source}: fold(s) {', '.join(ensemble.missing)} missing; detected with "
                        f"{', '.join(ensemble.labels)}")
    return DetectionResult(
        probability=probability,
        **subject_decision(meta, probability, evidence),
        lesion_evidence=evidence,
        threshold=float(meta.threshold),
        method=first.method,
        model=meta.name,
        target_class=first.target_class,
        seconds=time.perf_counter() - started,
        heatmap=heatmap,
        affine=affine,
        heat_score=details.heat_score if details else None,
        heat_score_details=details,
        modalities=list(meta.modalities),
        inputs=list(inputs.names),
        device=first.device,
        model_metadata=meta.to_dict(),
        warnings=warnings,
        out_of_distribution=None if all(flag is None for flag in ood) else any(bool(flag) for flag in ood),
        ood_reasons=reasons,
        input_statistics=first.input_statistics,
        layer=first.layer,
        clusters=clusters,
        lesion=subject_lesion_metrics(heatmap, affine, clusters, roi_mask, roi_name=inputs.roi_name),
        uncertainty=uncertainty,
        ensemble=summary,
        model_sha256=ensemble.content_sha256 or None,
        model_verified=ensemble.verified,
        input_sha256=first.input_sha256,
        options=first.options,
        **lesion_outputs,
    )
