"""Detection end to end: classify a scan, explain it, score the explanation.

One call takes a model bundle and the scan's images (files or in-memory
:class:`~FCDDetectLib.io.image_io.Image`), runs the network, computes the heatmap of the
chosen explanation method (and stage), maps it back onto the first image's own voxel
grid, restricts it to the head, finds its clusters and, when a lesion outline is given,
computes the Heat-Score and the lesion-level figures against it.

Head restriction (every map, before clusters, Heat-Score and display): the head mask is
:func:`FCDDetectLib.grid.preprocess.head_mask` of the first image on its own grid (threshold
at 10 % of the robust intensity range, largest component, holes filled); map voxels
outside it are set to 0 and the map is min-max normalised again (its maximum is 1). A
coarse stage's cells reach past the head (flat beyond the last cell centre); this keeps
their bands off the air. On a brain-extracted input the mask is the brain.

The result record is :mod:`FCDDetectLib.detection.result`; writing its files,
:mod:`FCDDetectLib.outputs.detection_files` (:func:`write_detection`).

Example:
    >>> from FCDDetectLib.detection.detect import detect
    >>> from FCDDetectLib.outputs.detection_files import write_detection
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

from FCDDetectLib.choices import CAM_METHODS, DEFAULT_LAYER, DEVICES
from FCDDetectLib.detection.decision import fcd_class_index, lesion_evidence_of, subject_decision
from FCDDetectLib.detection.inputs import DetectionInputs, ImageSource
from FCDDetectLib.detection.lesion_map import lesion_map_of, lesion_outputs
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import find_clusters
from FCDDetectLib.maps.heat_score import heat_score_images
from FCDDetectLib.maps.lesion_metrics import roi_on_grid, subject_lesion_metrics


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


def load_model(model: Any, device: str):
    """A loaded bundle on ``device``: ``model`` is a bundle folder or an already loaded bundle."""
    from FCDDetectLib.networks.bundle import ModelBundle, load_bundle

    if isinstance(model, ModelBundle):
        model.model.to(device).eval()
        return model
    return load_bundle(model, device=device)


def detect(
    model: Any,
    images: ImageSource | Sequence[ImageSource] | DetectionInputs,
    roi: ImageSource | None = None,
    brain_mask: ImageSource | None = None,
    options: DetectOptions | None = None,
    **option_values: Any,
) -> DetectionResult:
    """Classify one scan, explain the decision and score the explanation against ``roi``.

    ``model`` is a bundle folder or a loaded :class:`~FCDDetectLib.networks.bundle.ModelBundle`.
    ``images`` are given in the bundle's modality order (``metadata.modalities``), as files,
    in-memory images or a :class:`~FCDDetectLib.detection.inputs.DetectionInputs` already read
    (then ``roi`` and ``brain_mask`` travel inside it); the heatmap comes back on the first
    image's grid, restricted to the head. ``options`` (a
    :class:`~FCDDetectLib.detection.options.DetectOptions`; keyword values such as
    ``method="layercam"`` replace its fields) hold every other choice. ``method`` and
    ``layer`` default to the bundle's ``explain_method`` / ``explain_layer``, else
    Grad-CAM on layer4 (the paper). ``roi`` and ``brain_mask`` may lie on another grid:
    they are resampled (nearest neighbour) and the result says so. A constant heatmap
    (no evidence for the target class) has no Heat-Score: ``heat_score`` is None and
    ``heat_score_details.note`` says why. Clusters use ``cluster_threshold`` and
    ``min_cluster_mm3`` (see :mod:`FCDDetectLib.maps.clusters`; None: the bundle's operating
    point, else the engine's defaults). A model with a lesion head decides from its lesion
    evidence (:func:`~FCDDetectLib.detection.decision.lesion_evidence_of`; ``decision_source`` says so), the others from p(FCD).
    Files may be NIfTI, NRRD, MetaImage or DICOM series folders (:mod:`FCDDetectLib.io.readers`);
    ``series`` chooses the series of a DICOM folder holding several, ``roi_segment`` the
    segment of a ``.seg.nrrd`` ROI (name or label value).
    With ``localized_smoothgrad`` the result also carries signed SmoothGrad maps per modality
    and their contributions per region (:mod:`FCDDetectLib.explain.localized_smoothgrad`; ``nt_samples``
    noisy copies, noise sd ``noise_sd`` x the input's range).
    Raises :class:`FCDInputError` for any bad input, before anything is computed.

    Example:
        >>> result = detect("model.fcdbundle", ["flair.nii.gz"], roi="roi.nii.gz",
        ...                 method="layercam", layer="layer2")  # doctest: +SKIP
        >>> result.lesion["detected"], result.clusters.clusters[0].hemisphere  # doctest: +SKIP
        (True, 'left')
    """
    import torch

    from FCDDetectLib.explain.cams import explain, minmax_normalise
    from FCDDetectLib.grid.input_grid import to_input_grid
    from FCDDetectLib.grid.ood import check_ranges, input_statistics

    started = time.perf_counter()
    options = (options or DetectOptions()).replace(**option_values)
    if isinstance(images, DetectionInputs):
        if roi is not None or brain_mask is not None:
            raise TypeError("detect: give roi and brain_mask inside the DetectionInputs")
        count = len(images.images)
    else:
        images = [images] if isinstance(images, (str, Path, Image)) else list(images)
        count = len(images)
    device = resolve_device(options.device)
    bundle = load_model(model, device)
    meta = bundle.metadata
    options = options.for_bundle(meta)
    method, layer = options.method, options.layer
    if count != len(meta.modalities):
        raise FCDInputError(
            f"model {meta.name}: expects {len(meta.modalities)} image(s) ({', '.join(meta.modalities)}), "
            f"got {count}"
        )
    if options.target_class not in meta.class_names:
        raise FCDInputError(
            f"target class {options.target_class!r}: model classes are {', '.join(meta.class_names)}"
        )
    inputs = images if isinstance(images, DetectionInputs) else DetectionInputs.load(
        images, roi, brain_mask, series=options.series, roi_segment=options.roi_segment, labels=meta.modalities,
    )
    loaded, roi_image, mask_image = inputs.images, inputs.roi, inputs.brain_mask
    reference = inputs.reference
    roi_name = inputs.roi_name
    # checked before the network runs: an ROI that does not reach the image is an input error
    roi_mask = (
        roi_on_grid(roi_image, reference.array.shape, reference.affine, roi_image.affine, roi_name)
        if roi_image is not None else None
    )

    prep, head = preprocess_with_head_mask(loaded, meta.target_spacing, meta.target_shape)
    x = prep.tensor.unsqueeze(0).to(device)
    net = bundle.model
    target_index = meta.class_names.index(options.target_class)
    # a lesion model's decoder reads the encoder features of the explanation's own forward pass
    features: list[Any] | None = [] if meta.has_lesion_head else None
    heat_model_grid, logits = explain_and_classify(net, x, method, target_index, explain, layer, features=features)
    probabilities = torch.softmax(logits.float(), dim=1)[0]
    fcd_index = fcd_class_index(meta.class_names)
    probability = float(probabilities[fcd_index])
    check_finite(meta.name, inputs.names[0], "probability", np.asarray([probability]))
    check_finite(meta.name, inputs.names[0], f"{method} map", heat_model_grid)
    # restricted to the head, then min-max again on the input grid (interpolation shaves the peak)
    heat_input = to_input_grid(heat_model_grid, prep)
    heatmap = minmax_normalise(np.where(head, heat_input, np.float32(0.0)))
    affine = np.asarray(reference.affine, dtype=np.float64)
    clusters = find_clusters(heatmap, affine, options.cluster_threshold, options.min_cluster_mm3, head_mask=head)
    lesion = subject_lesion_metrics(heatmap, affine, clusters, roi_mask, roi_name=roi_name)

    stats = input_statistics(loaded, prep)
    ood_reasons = check_ranges(stats, meta.input_ranges, meta.target_spacing) if meta.input_ranges else []
    warnings = list(prep.warnings)
    if meta.input_ranges and ood_reasons:
        warnings.append(f"input is out of the training distribution of {meta.name}: {'; '.join(ood_reasons)}; "
                        "the probability may mean nothing")

    heat = None
    details = None
    if roi_image is not None:
        details = heat_score_images(
            Image(heatmap, reference.affine), roi_image, mask_image, roi_name=roi_name, undefined_ok=True,
            mask_name=inputs.brain_mask_name,
        )
        heat = details.heat_score
    saliency = None
    if options.localized_smoothgrad:
        from FCDDetectLib.explain.localized_smoothgrad import localize_detection

        saliency = localize_detection(net, prep, list(meta.modalities), fcd_index, roi=roi_image, heatmap=heatmap,
                                      roi_name=roi_name, nt_samples=options.nt_samples, noise_sd=options.noise_sd)
        for modality, signed in saliency.maps.items():
            check_finite(meta.name, inputs.names[0], f"SmoothGrad map ({modality})", signed)
    lesion_fields = (
        lesion_outputs(net, x, prep, head, roi_image, roi_mask, mask_image, roi_name,
                       options.cluster_threshold, options.min_cluster_mm3, features, meta.lesion_mirror_axes)
        if meta.has_lesion_head else {}
    )
    if lesion_fields:
        check_finite(meta.name, inputs.names[0], "lesion map", lesion_fields["lesion_map"])
    evidence = lesion_evidence_of(lesion_fields.get("lesion_clusters"), meta) if meta.has_lesion_head else None
    return DetectionResult(
        probability=probability,
        **subject_decision(meta, probability, evidence),
        lesion_evidence=evidence,
        threshold=float(meta.threshold),
        method=method,
        model=meta.name,
        target_class=options.target_class,
        seconds=time.perf_counter() - started,
        heatmap=heatmap,
        affine=affine,
        heat_score=heat,
        heat_score_details=details,
        modalities=list(meta.modalities),
        inputs=list(inputs.names),
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
        model_sha256=getattr(bundle, "content_sha256", "") or None,
        model_verified=bool(getattr(bundle, "verified", False)),
        input_sha256=inputs.identity_checksums(),
        options=options.identity(),
        **lesion_fields,
    )


def preprocess_with_head_mask(images: Sequence[Image], spacing: Sequence[float],
                              shape: Sequence[int]) -> tuple[Any, np.ndarray]:
    """:func:`~FCDDetectLib.grid.preprocess.preprocess` of ``images`` and the head mask of the first on its own grid.

    The two do not depend on each other, and numpy and scipy release the GIL in their
    loops, so the head mask is computed in a second thread while the scan is preprocessed:
    0.38 s -> 0.23-0.31 s for a 1 mm scan on 2 cores (measured with the MNI152 scan of
    ``benchmarks/bench_detect.py``). Not beside the network: its two torch threads already
    fill both cores, and the overlap made it slower. An error in either is raised here.

    Example:
        >>> prep, head = preprocess_with_head_mask([scan], (2.0, 2.0, 2.0), (96, 112, 96))  # doctest: +SKIP
        >>> head.shape == scan.array.shape  # doctest: +SKIP
        True
    """
    from concurrent.futures import ThreadPoolExecutor

    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.grid.preprocess import preprocess

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcd-head-mask") as pool:
        head = pool.submit(head_mask, images[0].array)
        prep = preprocess(images, spacing, shape)
        return prep, head.result()


def check_finite(model_name: str, input_name: str, what: str, values: Any) -> None:
    """FCDInputError when the network gave NaN or Inf: a broken model is an error, never a prediction.

    Example:
        >>> check_finite("tiny", "scan.nii.gz", "probability", np.array([0.4]))
        >>> check_finite("tiny", "scan.nii.gz", "probability", np.array([np.nan]))
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: model tiny: the network gave a non-finite probability (NaN or Inf) for scan.nii.gz; nothing was written: the bundle's weights or this input are broken
    """
    array = values.detach().float().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    if not np.all(np.isfinite(array)):
        raise FCDInputError(f"model {model_name}: the network gave a non-finite {what} (NaN or Inf) for {input_name}; "
                            "nothing was written: the bundle's weights or this input are broken")


def detect_lesion_map(model: Any, inputs: DetectionInputs, device: str = "cpu") -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray | None]:
    """A lesion model's map of one scan, no explanation: (lesion map, affine, ROI on its grid or None).

    The map is :func:`detect`'s (input grid, restricted to the head, probabilities), for the
    calibration of a fold's operating point and lesion evidence on its validation subjects.

    Example:
        >>> lesion, affine, roi = detect_lesion_map(bundle, DetectionInputs.load(["flair.nii.gz"], "roi.nii.gz"))  # doctest: +SKIP
    """
    bundle = load_model(model, resolve_device(device))
    meta = bundle.metadata
    if not meta.has_lesion_head:
        raise FCDInputError(f"model {meta.name}: has no lesion head")
    reference = inputs.reference
    roi = (roi_on_grid(inputs.roi, reference.array.shape, reference.affine, inputs.roi.affine, inputs.roi_name)
           if inputs.roi is not None else None)
    prep, head = preprocess_with_head_mask(inputs.images, meta.target_spacing, meta.target_shape)
    x = prep.tensor.unsqueeze(0).to(next(bundle.model.parameters()).device)
    lesion = lesion_map_of(bundle.model, x, prep, head, mirror_axes=meta.lesion_mirror_axes)
    return lesion, np.asarray(reference.affine, dtype=np.float64), roi


def explain_and_classify(
    net: Any, x: Any, method: str, target_index: int, explain: Any, layer: str = DEFAULT_LAYER,
    features: list[Any] | None = None,
) -> tuple[np.ndarray, Any]:
    """The heatmap and the network's logits for ``x``.

    The CAM methods run the network once on ``x`` itself: its output is kept (forward
    hook) and serves as the classification, which saves a second forward pass. SmoothGrad
    only sees noisy copies, so the logits come from a separate forward pass.
    ``features`` (an empty list, for a network with ``feature_modules``, i.e. a lesion
    head): filled with the encoder's feature maps of that same pass on ``x`` (left empty for
    SmoothGrad), so the lesion decoder needs no encoder pass of its own.

    Example:
        >>> features = []
        >>> heat, logits = explain_and_classify(net, x, "gradcam", 1, explain, features=features)  # doctest: +SKIP
    """
    import torch

    outputs: list[Any] = []
    captured: list[Any] = []
    handles = [net.register_forward_hook(lambda _module, _inputs, output: outputs.append(output.detach()))]
    stages = net.feature_modules() if features is not None and hasattr(net, "feature_modules") else []
    handles += [stage.register_forward_hook(lambda _module, _inputs, output: captured.append(output.detach()))
                for stage in stages]
    try:
        heat = explain(net, x, method=method, target_class=target_index, layer=layer)
    finally:
        for handle in handles:
            handle.remove()
    if method in CAM_METHODS and outputs:
        if stages and len(captured) >= len(stages):
            features.extend(captured[:len(stages)])  # the first pass, the one whose logits are kept
        return heat, outputs[0]
    with torch.no_grad():
        return heat, net(x)
