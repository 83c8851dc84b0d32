"""Detection end to end: classify a scan, explain it, score the explanation.

One call takes a model bundle and the scan's images (files or in-memory
:class:`~FCDDetectLib.image_io.Image`), runs the network, computes the heatmap of the
chosen explanation method, maps it back onto the first image's own voxel grid and,
when a lesion outline is given, computes the Heat-Score against it.

Example:
    >>> from FCDDetectLib.detect import detect, write_detection
    >>> result = detect("model.fcdbundle", ["sub-01_FLAIR.nii.gz"],
    ...                 roi="sub-01_FLAIR_roi.nii.gz", method="gradcam")  # doctest: +SKIP
    >>> print(result.prediction, round(result.probability, 3), result.heat_score)  # doctest: +SKIP
    fcd 0.912 2.41
    >>> write_detection(result, "out/")  # heatmap.nii.gz + result.json  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .choices import CAM_METHODS, DEVICES
from .errors import FCDInputError
from .files import write_json_atomic
from .heat_score import HeatScoreResult, heat_score_images
from .image_io import Image, load_image, load_mask, save_image, validate_array
from .localized_saliency import DEFAULT_NOISE_SD, DEFAULT_NT_SAMPLES

ImageSource = str | Path | Image


@dataclass
class DetectionResult:
    """What one detection produced. ``heatmap`` lies on the first input image's grid."""

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
    lesion_map: np.ndarray | None = None
    lesion_heat_score: float | None = None
    lesion_heat_score_details: HeatScoreResult | None = None
    lesion_clusters: Any = None  # clusters.ClusterSet of the lesion map

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
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary written to ``result.json`` (no arrays)."""
        details = self.heat_score_details
        return {
            "probability": self.probability,
            "prediction": self.prediction,
            "threshold": self.threshold,
            "heat_score": self.heat_score,
            "roi_voxels": details.roi_voxels if details else None,
            "roi_resampled": details.roi_resampled if details else None,
            "background_voxels": details.background_voxels if details else None,
            "heat_score_note": details.note if details else None,
            "method": self.method,
            "target_class": self.target_class,
            "model": self.model,
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
        }


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if device not in DEVICES:
        raise FCDInputError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FCDInputError("device cuda: no CUDA GPU is available to torch on this machine")
    return device


def _as_image(
    source: ImageSource, name: str, mask: bool = False, series: str | None = None, segment: str | None = None
) -> Image:
    if isinstance(source, Image):
        array = source.array.astype(bool) if mask else source.array
        return validate_array(array, source.affine, name, constant_ok=mask)
    return load_mask(source, segment=segment, series=series) if mask else load_image(source, series=series)


def _source_name(source: ImageSource, fallback: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else fallback


def _load_model(model: Any, device: str):
    from .bundle import ModelBundle, load_bundle

    if isinstance(model, ModelBundle):
        model.model.to(device).eval()
        return model
    return load_bundle(model, device=device)


def detect(
    model: Any,
    images: Sequence[ImageSource],
    roi: ImageSource | None = None,
    brain_mask: ImageSource | None = None,
    method: str = "gradcam",
    device: str = "auto",
    target_class: str = "fcd",
    series: str | None = None,
    roi_segment: str | None = None,
    localized_smoothgrad: bool = False,
    nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_sd: float = DEFAULT_NOISE_SD,
) -> DetectionResult:
    """Classify one scan, explain the decision and score the explanation against ``roi``.

    ``model`` is a bundle folder or a loaded :class:`~FCDDetectLib.bundle.ModelBundle`.
    ``images`` are given in the bundle's modality order (``metadata.modalities``); the
    heatmap comes back on the first image's grid. ``roi`` and ``brain_mask`` may lie on
    another grid: they are resampled (nearest neighbour) and the result says so. A
    constant heatmap (no evidence for the target class) has no Heat-Score: ``heat_score``
    is None and ``heat_score_details.note`` says why.
    Files may be NIfTI, NRRD, MetaImage or DICOM series folders (:mod:`FCDDetectLib.readers`);
    ``series`` chooses the series of a DICOM folder holding several, ``roi_segment`` the
    segment of a ``.seg.nrrd`` ROI (name or label value).
    With ``localized_smoothgrad`` the result also carries signed SmoothGrad maps per modality
    and their contributions per region (:mod:`FCDDetectLib.localized_saliency`; ``nt_samples``
    noisy copies, noise sd ``noise_sd`` x the input's range).
    Raises :class:`FCDInputError` for any bad input, before anything is computed.
    """
    import torch

    from .explain import METHODS, explain, minmax_normalise
    from .ood import check_ranges, input_statistics
    from .preprocess import preprocess, to_input_grid

    started = time.perf_counter()
    if localized_smoothgrad:
        from .localized_saliency import check_options

        check_options(nt_samples, noise_sd)
    if method not in METHODS:
        raise FCDInputError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    if isinstance(images, (str, Path, Image)):
        images = [images]
    device = resolve_device(device)
    bundle = _load_model(model, device)
    meta = bundle.metadata
    if len(images) != len(meta.modalities):
        raise FCDInputError(
            f"model {meta.name}: expects {len(meta.modalities)} image(s) ({', '.join(meta.modalities)}), "
            f"got {len(images)}"
        )
    if target_class not in meta.class_names:
        raise FCDInputError(f"target class {target_class!r}: model classes are {', '.join(meta.class_names)}")
    loaded = [_as_image(src, f"image {i + 1} ({meta.modalities[i]})", series=series) for i, src in enumerate(images)]
    roi_image = _as_image(roi, "ROI", mask=True, segment=roi_segment) if roi is not None else None
    mask_image = _as_image(brain_mask, "brain mask", mask=True) if brain_mask is not None else None

    prep = preprocess(loaded, meta.target_spacing, meta.target_shape)
    x = prep.tensor.unsqueeze(0).to(device)
    net = bundle.model
    target_index = meta.class_names.index(target_class)
    heat_model_grid, logits = _explain_and_classify(net, x, method, target_index, explain)
    probabilities = torch.softmax(logits.float(), dim=1)[0]
    fcd_index = meta.class_names.index("fcd") if "fcd" in meta.class_names else len(meta.class_names) - 1
    probability = float(probabilities[fcd_index])
    # min-max again on the input grid: interpolation shaves the peak
    heatmap = minmax_normalise(to_input_grid(heat_model_grid, prep))

    stats = input_statistics(loaded[0], prep)
    ood_reasons = check_ranges(stats, meta.input_ranges) if meta.input_ranges else []
    warnings = list(prep.warnings)
    if meta.input_ranges and ood_reasons:
        warnings.append(f"input is out of the training distribution of {meta.name}: {'; '.join(ood_reasons)}; "
                        "the probability may mean nothing")

    heat = None
    details = None
    if roi_image is not None:
        details = heat_score_images(
            Image(heatmap, prep.reference.affine), roi_image, mask_image, roi_name=_source_name(roi, "ROI"),
            undefined_ok=True, mask_name=_source_name(brain_mask, "brain mask"),
        )
        heat = details.heat_score
    saliency = None
    if localized_smoothgrad:
        from .localized_saliency import localize_detection

        saliency = localize_detection(net, prep, list(meta.modalities), fcd_index, roi=roi_image, heatmap=heatmap,
                                      roi_name=_source_name(roi, "ROI"), nt_samples=nt_samples, noise_sd=noise_sd)
    lesion = _lesion_outputs(net, x, prep, roi_image, mask_image, _source_name(roi, "ROI")) \
        if meta.has_lesion_head else {}
    positive = meta.class_names[fcd_index]
    negative = next(name for name in meta.class_names if name != positive)
    return DetectionResult(
        probability=probability,
        prediction=positive if probability >= meta.threshold else negative,
        threshold=float(meta.threshold),
        method=method,
        model=meta.name,
        target_class=target_class,
        seconds=time.perf_counter() - started,
        heatmap=heatmap,
        affine=np.asarray(prep.reference.affine, dtype=np.float64),
        heat_score=heat,
        heat_score_details=details,
        modalities=list(meta.modalities),
        inputs=[_source_name(src, f"image {i + 1}") for i, src in enumerate(images)],
        device=device,
        saliency=saliency,
        model_metadata=meta.to_dict(),
        warnings=warnings,
        out_of_distribution=bool(ood_reasons) if meta.input_ranges else None,
        ood_reasons=ood_reasons,
        input_statistics=stats,
        **lesion,
    )


def lesion_map_on_input_grid(net: Any, x: Any, prep: Any) -> np.ndarray:
    """The lesion head's voxel probability for ``x``, mapped onto the input grid.

    The same inverse as the heatmap (:func:`FCDDetectLib.preprocess.to_input_grid`, linear,
    0 outside the model field of view) but no min-max: the values stay probabilities in [0, 1].
    """
    import torch

    from .preprocess import to_input_grid

    with torch.no_grad():
        probability = net.lesion_probability(x)[0, 0].float().cpu().numpy()
    return np.clip(to_input_grid(probability, prep), 0.0, 1.0)


def _lesion_outputs(net: Any, x: Any, prep: Any, roi_image: Image | None, mask_image: Image | None,
                    roi_name: str) -> dict[str, Any]:
    """Lesion map, its clusters and its Heat-Score (bundles with a lesion head)."""
    from .clusters import find_clusters

    lesion_map = lesion_map_on_input_grid(net, x, prep)
    affine = np.asarray(prep.reference.affine, dtype=np.float64)
    head = mask_image.array if mask_image is not None and mask_image.array.shape == lesion_map.shape else None
    clusters = find_clusters(lesion_map, affine, head_mask=head,
                             image=None if head is not None else prep.reference.array)
    outputs: dict[str, Any] = {"lesion_map": lesion_map, "lesion_clusters": clusters}
    if roi_image is not None:
        details = heat_score_images(Image(lesion_map, affine), roi_image, mask_image, roi_name=roi_name,
                                    undefined_ok=True)
        outputs.update(lesion_heat_score=details.heat_score, lesion_heat_score_details=details)
    return outputs


def _explain_and_classify(net: Any, x: Any, method: str, target_index: int, explain: Any) -> tuple[np.ndarray, Any]:
    """The heatmap and the network's logits for ``x``.

    The CAM methods run the network once on ``x`` itself: its output is kept (forward
    hook) and serves as the classification, which saves a second forward pass. SmoothGrad
    only sees noisy copies, so the logits come from a separate forward pass.
    """
    import torch

    outputs: list[Any] = []
    handle = net.register_forward_hook(lambda _module, _inputs, output: outputs.append(output.detach()))
    try:
        heat = explain(net, x, method=method, target_class=target_index)
    finally:
        handle.remove()
    if method in CAM_METHODS and outputs:
        return heat, outputs[0]
    with torch.no_grad():
        return heat, net(x)


DetectionWriter = Callable[["DetectionResult", Path], None]
"""Writes more files of one detection into the (staging) folder it is given, e.g. clusters.json."""

DETECTION_FILES = ("heatmap.nii.gz", "result.json")
"""The files every detection writes (more may come from writers); checked before computing."""


def write_detection(result: DetectionResult, out_dir: str | Path,
                    extra_writers: Sequence[DetectionWriter] = ()) -> Path:
    """Write ``heatmap.nii.gz`` (input grid, float32), ``result.json`` and the writers' files into ``out_dir``.

    With a lesion head also ``lesion_map.nii.gz`` (voxel probability, input grid),
    ``lesion_clusters.nii.gz`` (its cluster labels, int16) and ``lesion_clusters.json``.
    All files of one detection are committed as one unit (:class:`~FCDDetectLib.output_set.OutputSet`):
    a kill at any point leaves the previous detection's set or this one (after the
    recovery the next writer or :func:`~FCDDetectLib.output_set.read_output_set` does),
    and ``result.json`` lists every other file's SHA-256 under ``"files"``. Each writer
    in ``extra_writers`` is called as ``writer(result, folder)`` and writes plain files
    into ``folder``. Returns the output folder.

    Example:
        >>> write_detection(result, "out/")  # doctest: +SKIP
        PosixPath('out')
    """
    from .output_set import OutputSet

    out = Path(out_dir)
    with OutputSet(out) as staged:
        save_image(staged.folder / "heatmap.nii.gz", result.heatmap, result.affine)
        if result.saliency is not None:
            for modality, signed in result.saliency.maps.items():
                save_image(staged.folder / f"smoothgrad_{modality}.nii.gz", signed, result.saliency.affine)
        if result.lesion_map is not None:
            save_image(staged.folder / "lesion_map.nii.gz", result.lesion_map, result.affine)
            if result.lesion_clusters is not None:
                save_image(staged.folder / "lesion_clusters.nii.gz", result.lesion_clusters.labels, result.affine,
                           dtype=np.int16)
                write_json_atomic(staged.folder / "lesion_clusters.json", result.lesion_clusters.to_json())
        for writer in extra_writers:
            writer(result, staged.folder)
        staged.manifest = result.to_json()
    return out
