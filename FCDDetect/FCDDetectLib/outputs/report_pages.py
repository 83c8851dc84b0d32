"""The pages of a detection report: the summary, one page per cluster, the below-threshold list.

:func:`summary_lines` and :func:`below_threshold_lines` give the text lines of the first and the
last page (:func:`text_page` sets them on a figure); :func:`cluster_page` lays out one
cluster's page (its slice panels from :mod:`FCDDetectLib.outputs.report_slices`, colour bar,
figures and, with a localized SmoothGrad, the modality contribution bars). What each page
shows: :mod:`FCDDetectLib.outputs.pdf_report`, whose :func:`~FCDDetectLib.outputs.pdf_report.write_report` puts
the pages together and writes them. matplotlib and the saliency module are imported on
first use.

Example:
    >>> from FCDDetectLib.outputs.report_pages import below_threshold_lines, _fmt
    >>> _fmt(0.123456), _fmt(None)
    ('0.123', 'n/a')
    >>> below_threshold_lines([], 0.5, 0.25)[2]  # the last page says "none" when nothing lies below
    ('body', 'none')
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from FCDDetectLib.networks.ensemble import OPERATING_LEVEL
from FCDDetectLib.outputs.overlay import index_to_ras
from FCDDetectLib.outputs.report_slices import VIEWS, draw_slices, input_axis, ras_of
from FCDDetectLib.version import __version__

DISCLAIMER = (
    "For research use only. Not a medical device: not validated for diagnosis or treatment decisions. "
    "Every finding must be reviewed by a qualified clinician on the original images."
)
CONVENTION = "Radiological convention: the patient's right is on the left of each image (R/L labels); superior up."


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def text_page(figure: Any, lines: Sequence[tuple[str, str]], top: float = 0.95) -> None:
    y = top
    for style, text in lines:
        size = {"title": 16, "head": 12, "body": 9.5, "small": 8.5}[style]
        weight = "bold" if style in ("title", "head") else "normal"
        if style == "head":
            y -= 0.012
        figure.text(0.07, y, text, fontsize=size, fontweight=weight, va="top", wrap=True)
        y -= {"title": 0.04, "head": 0.026, "body": 0.019, "small": 0.017}[style] * (text.count("\n") + 1)


def summary_lines(result: Any, subject: str, clusters: Any, model_info: dict[str, Any],
                   roi_name: str | None) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = [("title", "FCD detection report"), ("body", f"Subject: {subject}")]
    lines.append(("head", "Inputs"))
    for modality, path in zip(result.modalities or ["?"] * len(result.inputs), result.inputs, strict=False):
        lines.append(("body", f"{modality}: {path}"))
    lines.append(("body", f"ROI (lesion outline): {roi_name or 'none given'}"))
    lines.append(("head", "Model"))
    lines.append(("body", f"Name: {result.model or 'n/a'}   depth: ResNet-{_fmt(model_info.get('depth'))}   "
                          f"geometry: {_fmt(model_info.get('geometry'))}   "
                          f"modalities: {', '.join(model_info.get('modalities', result.modalities))}"))
    training = model_info.get("training") or {}
    for key in list(training)[:8]:
        lines.append(("small", f"training {key}: {_fmt(training[key])}"[:110]))
    metrics = model_info.get("metrics") or {}
    if metrics:
        lines.append(("small", "metrics: " + ", ".join(f"{k} {_fmt(v)}" for k, v in list(metrics.items())[:8])))
    lines.append(("head", "Result"))
    lines.extend(decision_lines(result))
    layer = getattr(result, "layer", None)
    lines.append(("body", f"Explanation method: {result.method}" + (f" on {layer}" if layer else "")
                          + f"   (target class {result.target_class})"))
    if result.heat_score_details is not None:
        lines.append(("body", f"Heat-Score against the ROI: {_fmt(result.heat_score)}"
                              + (f"  ({result.heat_score_details.note})" if result.heat_score_details.note else "")))
    else:
        lines.append(("body", "Heat-Score: no ROI given"))
    lines.append(("body", f"Clusters of the map (threshold {clusters.threshold:g}, at least "
                          f"{clusters.min_size_mm3:g} mm3): {len(clusters.clusters)}"))
    for c in clusters.clusters[:12]:
        lines.append(("small", _cluster_line(c)))
    lesion_clusters = getattr(result, "lesion_clusters", None)
    if lesion_clusters is not None:
        lines.append(("body", f"Clusters of the lesion map (threshold {lesion_clusters.threshold:g}, at least "
                              f"{lesion_clusters.min_size_mm3:g} mm3): {len(lesion_clusters.clusters)}"))
        for c in lesion_clusters.clusters[:8]:
            lines.append(("small", _cluster_line(c)))
    saliency = getattr(result, "saliency", None)
    if saliency is not None:
        lines.append(("head", "Localized SmoothGrad"))
        lines.append(("body", f"signed, per modality; target {saliency.target}; {saliency.nt_samples} noisy copies, "
                              f"noise sd {saliency.noise_sd:g} of the input range; band {saliency.band_mm:g} mm"))
        for region in saliency.regions[:6]:
            shares = ", ".join(f"{m.modality} {_fmt(m.share, 2)}" for m in region.modalities)
            lines.append(("small", f"  {region.name} ({region.voxels} voxels): share {shares}"))
    lines.append(("head", "Use"))
    lines.extend(("body", part) for part in textwrap.wrap(DISCLAIMER, 95))
    lines.append(("small", f"FCDDetect engine {__version__}"))
    return lines


def _cluster_line(c: Any) -> str:
    line = (f"  cluster {c.id}: {c.volume_mm3:.0f} mm3, {c.hemisphere}, peak {c.peak:.2f}, "
            f"centroid RAS ({', '.join(f'{v:.0f}' for v in c.centroid_ras)}) mm")
    if getattr(c, "folds_found", None) is not None:
        line += f", found by {c.folds_found} fold(s)"
    if getattr(c, "mean_uncertainty", None) is not None:
        line += f", uncertainty {c.mean_uncertainty:.3f}"
    return line


def decision_lines(result: Any) -> list[tuple[str, str]]:
    """The decision, what it follows (lesion evidence or classifier), the operating point and the ensemble.

    Example:
        >>> class R:
        ...     prediction, probability, threshold, decision_source = "fcd", 0.42, 0.5, "lesion_evidence"
        ...     classifier_prediction, model_metadata, ensemble = "control", {}, None
        ...     lesion_evidence = {"score": 310.0, "threshold": 95.0, "calibrated": True}
        ...     lesion_clusters = None
        >>> [text for _, text in decision_lines(R())][0]
        'Decision: fcd, from the lesion evidence: 310 (threshold 95, calibrated on validation subjects)'
    """
    evidence = getattr(result, "lesion_evidence", None)
    lines: list[tuple[str, str]] = []
    if getattr(result, "decision_source", "classifier") == "lesion_evidence" and evidence:
        how = "calibrated on validation subjects" if evidence.get("calibrated") else "not calibrated: any cluster"
        lines.append(("body", f"Decision: {result.prediction}, from the lesion evidence: {_fmt(evidence['score'])} "
                              f"(threshold {_fmt(evidence['threshold'])}, {how})"))
        lines.append(("small", "Lesion evidence = the largest peak x volume (mm3) over the lesion map's clusters."))
        lines.append(("body", f"Classifier (not used for the decision): p(FCD) = {result.probability:.3f}, "
                              f"threshold {result.threshold:.2f}: {getattr(result, 'classifier_prediction', None)}"))
    else:
        lines.append(("body", f"Decision: {result.prediction}, from the classifier: p(FCD) = {result.probability:.3f}"
                              f"    (threshold {result.threshold:.2f})"))
    metadata = getattr(result, "model_metadata", None) or {}
    point = metadata.get("operating_point")
    clusters = getattr(result, "lesion_clusters", None)
    if point and clusters is not None:
        used = (abs(clusters.threshold - point["cluster_threshold"]) < 1e-9
                and abs(clusters.min_size_mm3 - point["min_cluster_mm3"]) < 1e-9)
        validation = point.get("validation") or {}
        target = point.get("target_fp_per_control")
        chosen = (f"chosen on validation subjects for at most {_fmt(target)} FP clusters per control"
                  if target is not None else point.get("chosen_on", "the model's"))
        lines.append(("body", f"Operating point: threshold {point['cluster_threshold']:g}, at least "
                              f"{point['min_cluster_mm3']:g} mm3 ({chosen})" + ("" if used else
                              f"; overridden here: {clusters.threshold:g}, {clusters.min_size_mm3:g} mm3")))
        if validation:
            lines.append(("small", f"  on validation: detection {_fmt(validation.get('detection_rate'))}, FP clusters "
                                   f"per control {_fmt(validation.get('fp_per_control'))} "
                                   f"({validation.get('n_patients')} patients, {validation.get('n_controls')} controls)"))
    mirror_axes = metadata.get("lesion_mirror_axes")
    if mirror_axes and clusters is not None:
        lines.append(("small", "Lesion map: the mean of the scan's map and its mirrored copies' maps (axes "
                               f"{', '.join(str(a) for a in mirror_axes)}; 0 = left-right), as the model was "
                               "calibrated."))
    ensemble = getattr(result, "ensemble", None)
    if ensemble:
        members = ", ".join(m["member"] for m in ensemble["members"])
        lines.append(("body", f"Fold ensemble of {ensemble['n_members']} models ({members}); "
                              f"{ensemble['fold_votes']} say fcd"
                              + (f"; missing: {', '.join(ensemble['missing_folds'])}" if ensemble["missing_folds"] else "")))
        scaled = (ensemble.get("operating_point") or {}).get("lesion_map_scale") == "operating"
        lines.append(("small", "Maps and p(FCD) are the folds' means"
                               + (f" (each lesion map rescaled so that its fold's threshold is {OPERATING_LEVEL:g})"
                                  if scaled else "")
                               + "; uncertainty.nii.gz = their voxel-wise standard deviation; each cluster says how "
                               "many folds found it."))
    return lines


def _contribution_bars(ax: Any, region: Any) -> None:
    names = [m.modality for m in region.modalities]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [m.positive for m in region.modalities], 0.38, color="#c0392b", label="inside +")
    ax.bar(x - 0.2, [m.negative for m in region.modalities], 0.38, color="#2e6da4", label="inside -")
    ax.bar(x + 0.2, [m.band_positive or 0 for m in region.modalities], 0.38, color="#e6a19a",
           label=f"band {region.band_mm:g} mm +")
    ax.bar(x + 0.2, [m.band_negative or 0 for m in region.modalities], 0.38, color="#9dbbd9",
           label=f"band {region.band_mm:g} mm -")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{n}\nshare {_fmt(m.share, 2)}" for n, m in zip(names, region.modalities, strict=True)],
                  fontsize=9)
    ax.set_ylabel("sum of gradients / voxels\n(logit per z-scored unit)", fontsize=8.5)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title("Modality contributions (localized signed SmoothGrad)", fontsize=10)


def cluster_page(figure: Any, result: Any, cluster: Any, rank_of: int, mask: np.ndarray, data: dict[str, Any],
                  subject: str) -> tuple[dict[str, Any], dict[str, tuple[int, int]], list[Any]]:
    from FCDDetectLib.explain.saliency_regions import Region, region_contributions

    ornt, shape = data["ornt"], data["shape"]
    centre_in = [int(round(v)) for v in np.argwhere(mask).mean(axis=0)]
    if not mask[tuple(centre_in)]:  # a curved cluster: take its voxel nearest to the centroid
        idx = np.argwhere(mask)
        centre_in = [int(v) for v in idx[np.argmin(((idx - np.array(centre_in)) ** 2).sum(1))]]
    centre = index_to_ras(centre_in, shape, ornt)
    figure.text(0.07, 0.965, f"Cluster {cluster.id} of {rank_of}  (rank {cluster.id}: highest confidence first)",
                fontsize=14, fontweight="bold", va="top")
    figure.text(0.07, 0.937, f"Subject {subject}   |   {result.method} map   |   p(FCD) {result.probability:.3f}",
                fontsize=9.5, va="top")
    boxes = [(0.05, 0.62, 0.29, 0.29), (0.355, 0.62, 0.29, 0.29), (0.66, 0.62, 0.29, 0.29)]
    axes, image = draw_slices(figure, boxes, data["image"], data["heat"], ras_of(mask, data["affine"]), data["roi"],
                               centre, data["zooms"])
    bar_ax = figure.add_axes((0.2, 0.595, 0.6, 0.012))
    colour_bar = figure.colorbar(image, cax=bar_ax, orientation="horizontal")
    colour_bar.set_label(f"map value ({result.method}, min-max normalised over the head, 0-1, unitless); "
                         "green: cluster outline, cyan: ROI outline", fontsize=8.5)
    colour_bar.ax.tick_params(labelsize=8)
    figure.text(0.07, 0.56, CONVENTION, fontsize=9, va="top", style="italic")
    rows = [
        ("Volume", f"{cluster.volume_mm3:.0f} mm3 ({cluster.voxels} voxels)"),
        ("Centroid (RAS, mm)", ", ".join(f"{v:.1f}" for v in cluster.centroid_ras)),
        ("Peak (RAS, mm)", ", ".join(f"{v:.1f}" for v in cluster.peak_ras)),
        ("Hemisphere", cluster.hemisphere),
        ("Peak / mean map value", f"{cluster.peak:.3f} / {cluster.mean:.3f}"),
        ("Confidence", f"{cluster.confidence:.3f}"),
        *([("Found by folds", str(cluster.folds_found))] if cluster.folds_found is not None else []),
        *([("Mean uncertainty (SD across folds)", f"{cluster.mean_uncertainty:.3f}")]
          if cluster.mean_uncertainty is not None else []),
        ("Slices through voxel (input grid i, j, k)", ", ".join(str(v) for v in centre_in)),
    ]
    y = 0.525
    for key, value in rows:
        figure.text(0.07, y, key, fontsize=10, va="top", fontweight="bold")
        figure.text(0.45, y, value, fontsize=10, va="top")
        y -= 0.022
    saliency = getattr(result, "saliency", None)
    if saliency is not None:
        region = region_contributions(saliency.maps, Region(f"cluster-{cluster.id}", "cluster", mask), result.affine,
                                      saliency.band_mm)
        _contribution_bars(figure.add_axes((0.14, 0.1, 0.75, 0.22)), region)
    else:
        figure.text(0.07, 0.3, "Modality contributions: not computed (run fcd detect with --localized-smoothgrad).",
                    fontsize=9.5, va="top")
    figure.text(0.07, 0.03, DISCLAIMER, fontsize=7.5, va="bottom", wrap=True)
    slices = {name: (input_axis(ras_axis, ornt), centre_in[input_axis(ras_axis, ornt)])
              for name, ras_axis, _ in VIEWS}
    return dict(zip([v[0] for v in VIEWS], axes, strict=True)), slices, axes


def below_threshold_lines(below: Sequence[tuple[str, Any]], threshold: float, low: float) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = [("title", "Clusters below the report's threshold"),
                                    ("body", f"Clusters of the map between {low:g} and {threshold:g} "
                                             "(not touching a reported cluster) and reported clusters beyond the "
                                             "page limit. Not shown as pages.")]
    if not below:
        lines.append(("body", "none"))
    for label, c in below[:40]:
        lines.append(("small", f"{label}: {c.volume_mm3:.0f} mm3, {c.hemisphere}, peak {c.peak:.2f}, mean {c.mean:.2f}, "
                               f"centroid RAS ({', '.join(f'{v:.0f}' for v in c.centroid_ras)}) mm"))
    lines.append(("small", f"FCDDetect engine {__version__}."))
    lines.extend(("small", part) for part in textwrap.wrap(DISCLAIMER, 110))
    return lines
