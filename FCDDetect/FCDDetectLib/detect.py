"""Detection end to end: classify a scan, explain it, score the explanation.

One call takes a model bundle and the scan's images (files or in-memory
:class:`~FCDDetectLib.image_io.Image`), runs the network, computes the heatmap of the
chosen explanation method (and stage), maps it back onto the first image's own voxel
grid, restricts it to the head, finds its clusters and, when a lesion outline is given,
computes the Heat-Score and the lesion-level figures against it.

Head restriction (every map, before clusters, Heat-Score and display): the head mask is
:func:`FCDDetectLib.preprocess.head_mask` of the first image on its own grid (threshold
at 10 % of the robust intensity range, largest component, holes filled); map voxels
outside it are set to 0 and the map is min-max normalised again (its maximum is 1). A
coarse stage's cells reach past the head (flat beyond the last cell centre); this keeps
their bands off the air. On a brain-extracted input the mask is the brain.

The result record is :mod:`FCDDetectLib.detection_result`; writing its files,
:mod:`FCDDetectLib.detection_files` (:func:`write_detection`, re-exported here).

Example:
    >>> from FCDDetectLib.detect import detect, write_detection
    >>> result = detect("model.fcdbundle", ["sub-01_FLAIR.nii.gz"],
    ...                 roi="sub-01_FLAIR_roi.nii.gz", method="gradcam")  # doctest: +SKIP
    >>> print(result.prediction, round(result.probability, 3), result.heat_score)  # doctest: +SKIP
    fcd 0.912 2.41
    >>> write_detection(result, "out/")  # heatmap, clusters (.nii.gz/.json/.csv), result.json  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .choices import (
    CAM_METHODS,
    DEFAULT_LAYER,
    DEFAULT_METHOD,
    DEVICES,
    EXPLANATION_LAYERS,
    EXPLANATION_METHODS,
)
from .clusters import DEFAULT_MIN_SIZE_MM3, DEFAULT_THRESHOLD, check_cluster_settings, find_clusters
from .detection_files import DETECTION_FILES, write_detection  # noqa: F401 (re-exported for callers)
from .detection_result import DetectionResult
from .errors import FCDInputError
from .heat_score import heat_score_images
from .image_io import Image, load_image, load_mask, validate_array
from .lesion_metrics import roi_on_grid, subject_lesion_metrics
from .localized_saliency import DEFAULT_NOISE_SD, DEFAULT_NT_SAMPLES

ImageSource = str | Path | Image




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


def load_model(model: Any, device: str):
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
    method: str | None = None,
    device: str = "auto",
    target_class: str = "fcd",
    series: str | None = None,
    roi_segment: str | None = None,
    localized_smoothgrad: bool = False,
    nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_sd: float = DEFAULT_NOISE_SD,
    layer: str | None = None,
    cluster_threshold: float = DEFAULT_THRESHOLD,
    min_cluster_mm3: float = DEFAULT_MIN_SIZE_MM3,
) -> DetectionResult:
    """Classify one scan, explain the decision and score the explanation against ``roi``.

    ``model`` is a bundle folder or a loaded :class:`~FCDDetectLib.bundle.ModelBundle`.
    ``images`` are given in the bundle's modality order (``metadata.modalities``); the
    heatmap comes back on the first image's grid, restricted to the head. ``method`` and
    ``layer`` default to the bundle's ``explain_method`` / ``explain_layer``, else
    Grad-CAM on layer4 (the paper). ``roi`` and ``brain_mask`` may lie on another grid:
    they are resampled (nearest neighbour) and the result says so. A constant heatmap
    (no evidence for the target class) has no Heat-Score: ``heat_score`` is None and
    ``heat_score_details.note`` says why. Clusters use ``cluster_threshold`` and
    ``min_cluster_mm3`` (see :mod:`FCDDetectLib.clusters`).
    Files may be NIfTI, NRRD, MetaImage or DICOM series folders (:mod:`FCDDetectLib.readers`);
    ``series`` chooses the series of a DICOM folder holding several, ``roi_segment`` the
    segment of a ``.seg.nrrd`` ROI (name or label value).
    With ``localized_smoothgrad`` the result also carries signed SmoothGrad maps per modality
    and their contributions per region (:mod:`FCDDetectLib.localized_saliency`; ``nt_samples``
    noisy copies, noise sd ``noise_sd`` x the input's range).
    Raises :class:`FCDInputError` for any bad input, before anything is computed.

    Example:
        >>> result = detect("model.fcdbundle", ["flair.nii.gz"], roi="roi.nii.gz",
        ...                 method="layercam", layer="layer2")  # doctest: +SKIP
        >>> result.lesion["detected"], result.clusters.clusters[0].hemisphere  # doctest: +SKIP
        (True, 'left')
    """
    import torch

    from .explain import explain, minmax_normalise
    from .ood import check_ranges, input_statistics
    from .preprocess import head_mask, preprocess, to_input_grid

    started = time.perf_counter()
    check_cluster_settings(cluster_threshold, min_cluster_mm3)
    if method is not None and method not in EXPLANATION_METHODS:
        raise FCDInputError(f"method {method!r}: expected one of {', '.join(EXPLANATION_METHODS)}")
    if layer is not None and layer not in EXPLANATION_LAYERS:
        raise FCDInputError(f"layer {layer!r}: expected one of {', '.join(EXPLANATION_LAYERS)}")
    if localized_smoothgrad:
        from .localized_saliency import check_options

        check_options(nt_samples, noise_sd)
    if isinstance(images, (str, Path, Image)):
        images = [images]
    device = resolve_device(device)
    bundle = load_model(model, device)
    meta = bundle.metadata
    method = method or getattr(meta, "explain_method", None) or DEFAULT_METHOD
    layer = layer or getattr(meta, "explain_layer", None) or DEFAULT_LAYER
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
    reference = loaded[0]
    roi_name = _source_name(roi, "ROI")
    # checked before the network runs: an ROI that does not reach the image is an input error
    roi_mask = (
        roi_on_grid(roi_image, reference.array.shape, reference.affine, roi_image.affine, roi_name)
        if roi_image is not None else None
    )

    prep = preprocess(loaded, meta.target_spacing, meta.target_shape)
    x = prep.tensor.unsqueeze(0).to(device)
    net = bundle.model
    target_index = meta.class_names.index(target_class)
    heat_model_grid, logits = _explain_and_classify(net, x, method, target_index, explain, layer)
    probabilities = torch.softmax(logits.float(), dim=1)[0]
    fcd_index = meta.class_names.index("fcd") if "fcd" in meta.class_names else len(meta.class_names) - 1
    probability = float(probabilities[fcd_index])
    head = head_mask(reference.array)
    # restricted to the head, then min-max again on the input grid (interpolation shaves the peak)
    heat_input = to_input_grid(heat_model_grid, prep)
    heatmap = minmax_normalise(np.where(head, heat_input, np.float32(0.0)))
    affine = np.asarray(reference.affine, dtype=np.float64)
    clusters = find_clusters(heatmap, affine, cluster_threshold, min_cluster_mm3, head_mask=head)
    lesion = subject_lesion_metrics(heatmap, affine, clusters, roi_mask, roi_name=roi_name)

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
            Image(heatmap, reference.affine), roi_image, mask_image, roi_name=roi_name, undefined_ok=True,
            mask_name=_source_name(brain_mask, "brain mask"),
        )
        heat = details.heat_score
    saliency = None
    if localized_smoothgrad:
        from .localized_saliency import localize_detection

        saliency = localize_detection(net, prep, list(meta.modalities), fcd_index, roi=roi_image, heatmap=heatmap,
                                      roi_name=_source_name(roi, "ROI"), nt_samples=nt_samples, noise_sd=noise_sd)
    lesion_outputs = (
        _lesion_outputs(net, x, prep, head, roi_image, roi_mask, mask_image, roi_name,
                        cluster_threshold, min_cluster_mm3)
        if meta.has_lesion_head else {}
    )
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
        affine=affine,
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
        layer=layer if method in CAM_METHODS else None,
        clusters=clusters,
        lesion=lesion,
        **lesion_outputs,
    )


def lesion_map_on_input_grid(net: Any, x: Any, prep: Any) -> np.ndarray:
    """The lesion head's voxel probability for ``x``, mapped onto the input grid.

    The same inverse as the heatmap (:func:`FCDDetectLib.preprocess.to_input_grid`, linear,
    0 outside the model field of view) but no min-max: the values stay probabilities in [0, 1].

    Example:
        >>> lesion_map_on_input_grid(bundle.model, x, prep).max() <= 1.0  # doctest: +SKIP
        True
    """
    import torch

    from .preprocess import to_input_grid

    with torch.no_grad():
        probability = net.lesion_probability(x)[0, 0].float().cpu().numpy()
    return np.clip(to_input_grid(probability, prep), 0.0, 1.0)


def _lesion_outputs(net: Any, x: Any, prep: Any, head: np.ndarray, roi_image: Image | None,
                    roi_mask: np.ndarray | None, mask_image: Image | None, roi_name: str,
                    cluster_threshold: float, min_cluster_mm3: float) -> dict[str, Any]:
    """Lesion map (restricted to the head like the heatmap), its clusters, lesion figures and Heat-Score."""
    lesion_map = np.where(head, lesion_map_on_input_grid(net, x, prep), np.float32(0.0)).astype(np.float32)
    affine = np.asarray(prep.reference.affine, dtype=np.float64)
    clusters = find_clusters(lesion_map, affine, cluster_threshold, min_cluster_mm3, head_mask=head)
    outputs: dict[str, Any] = {
        "lesion_map": lesion_map,
        "lesion_clusters": clusters,
        "lesion_map_metrics": subject_lesion_metrics(lesion_map, affine, clusters, roi_mask, roi_name=roi_name),
    }
    if roi_image is not None:
        details = heat_score_images(Image(lesion_map, affine), roi_image, mask_image, roi_name=roi_name,
                                    undefined_ok=True)
        outputs.update(lesion_heat_score=details.heat_score, lesion_heat_score_details=details)
    return outputs


def _explain_and_classify(
    net: Any, x: Any, method: str, target_index: int, explain: Any, layer: str = DEFAULT_LAYER
) -> tuple[np.ndarray, Any]:
    """The heatmap and the network's logits for ``x``.

    The CAM methods run the network once on ``x`` itself: its output is kept (forward
    hook) and serves as the classification, which saves a second forward pass. SmoothGrad
    only sees noisy copies, so the logits come from a separate forward pass.
    """
    import torch

    outputs: list[Any] = []
    handle = net.register_forward_hook(lambda _module, _inputs, output: outputs.append(output.detach()))
    try:
        heat = explain(net, x, method=method, target_class=target_index, layer=layer)
    finally:
        handle.remove()
    if method in CAM_METHODS and outputs:
        return heat, outputs[0]
    with torch.no_grad():
        return heat, net(x)
