"""The per-subject PDF report of one detection (like MELD's): a summary page, one page per cluster.

:func:`write_report` writes ``report.pdf`` and every page as ``report-page-N.png`` (N from
1). The engine's own report; the training report lives in the trainer package (another job).

Pages (A4 portrait, 8.27 x 11.69 in; text 9-14 pt, fit for print on A4 or Letter):

1. **Summary**: subject, inputs, model (name, depth, geometry, modalities, training
   provenance and metrics from the bundle), prediction and p(FCD) with the threshold, the
   explanation method, the Heat-Score when an ROI was given, the clusters found, the
   research-use disclaimer and the engine version.
2. **One page per cluster**, in rank order (cluster 1 = highest confidence; the numbers are
   those of ``clusters.json``): axial, coronal and sagittal slices through the cluster's
   centroid voxel on the first input scan, the map in colour (colour bar with its units),
   the cluster's outline (white) and, when given, the ROI outline (cyan); volume, centroid
   (RAS mm), hemisphere, peak, mean and confidence; the modality contributions of the
   localized SmoothGrad inside the cluster and in the band around it (bars for the positive
   and the negative part), when the detection ran with ``localized_smoothgrad``.
3. **Below the report's threshold** (always present, "none" when empty): the clusters found
   at half the cluster threshold that do not touch a reported cluster, and reported clusters
   beyond ``max_cluster_pages``.

So a report has 1 + (number of cluster pages) + 1 pages.

Slices are shown in **radiological convention** (the patient's right on the left of the
image, as 3D Slicer shows them by default), superior up; every panel carries its
R/L, A/P or S/I labels and the page states the convention. The volume is brought to the
closest RAS voxel order (nibabel orientation codes: flips and axis swaps, no
interpolation); an oblique scan is shown in its own voxel planes.

Written with matplotlib's PDF backend (``PdfPages``): the layout is a fixed grid of axes and
text, which matplotlib places exactly; a PDF layout library would add a dependency for
nothing the pages need. Every file is written to a temporary name and renamed.

Example:
    >>> from FCDDetectLib import detect
    >>> from FCDDetectLib.report import write_report
    >>> result = detect("model.fcdbundle", ["flair.nii.gz"], localized_smoothgrad=True)  # doctest: +SKIP
    >>> write_report(result, ["flair.nii.gz"], "out/").pdf  # doctest: +SKIP
    PosixPath('out/report.pdf')
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import FCDInputError
from .files import write_atomic
from .geometry import mask_onto_grid, same_grid
from .image_io import Image, load_image, load_mask, validate_array
from .overlay import HEAT_FLOOR, _index_to_ras, _to_ras  # the overlay PNGs' RAS reordering and fade

__all__ = ["DISCLAIMER", "PageInfo", "ReportFiles", "check_writable", "write_report"]

PAGE_SIZE = (8.27, 11.69)  # A4 portrait, inches; prints on Letter with small margins
PNG_DPI = 100
MAX_CLUSTER_PAGES = 20
DISCLAIMER = (
    "For research use only. Not a medical device: not validated for diagnosis or treatment decisions. "
    "Every finding must be reviewed by a qualified clinician on the original images."
)
CONVENTION = "Radiological convention: the patient's right is on the left of each image (R/L labels); superior up."


@dataclass
class PageInfo:
    """One page: its PNG, what it shows and, for cluster pages, where each slice panel lies in
    the PNG (``panels[view] = (x0, y0, x1, y1)`` in pixels from the top left, and the slice's
    voxel index on the input grid, ``slices[view] = (axis, index)``)."""

    png: Path
    kind: str
    cluster_id: int | None = None
    panels: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    slices: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote."""

    pdf: Path
    pages: list[PageInfo]

    def __str__(self) -> str:
        return str(self.pdf)

    def __fspath__(self) -> str:
        return str(self.pdf)


def check_writable(out_dir: str | os.PathLike) -> Path:
    """FCDInputError unless ``out_dir`` is, or can be created as, a writable folder (nothing is created).

    Example:
        >>> check_writable(".")
        PosixPath('.')
    """
    out = Path(out_dir)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FCDInputError(f"{out}: cannot write the report there ({probe} is a file, not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK) or _read_only_mount(probe):
        raise FCDInputError(f"{out}: cannot write the report there ({probe} is not writable)")
    return out


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # pragma: no cover - statvfs missing on some systems
        return False


def _as_image(source: Any, name: str, mask: bool = False) -> Image:
    if isinstance(source, Image):
        return validate_array(np.asarray(source.array) > 0.5 if mask else source.array, source.affine, name,
                              constant_ok=mask)
    return load_mask(source, name) if mask else load_image(source, name)


# ---------------------------------------------------------------- slices


# The RAS reordering (nibabel orientation codes) is the overlay's: overlay._to_ras / _index_to_ras.


def _ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return _to_ras(np.asarray(array), affine)[0]


def _input_axis(ras_axis: int, ornt: np.ndarray) -> int:
    return int(next(a for a, (target, _) in enumerate(ornt) if int(target) == ras_axis))


# (view, RAS axis cut, labels left/right/top/bottom). Radiological: R on the left.
_VIEWS = (("axial", 2, ("R", "L", "A", "P")), ("coronal", 1, ("R", "L", "S", "I")),
          ("sagittal", 0, ("A", "P", "S", "I")))


def _plane(volume: np.ndarray, ras_axis: int, index: int) -> np.ndarray:
    """The slice as rows (top = A or S) x columns (left = R, or A for sagittal)."""
    cut = np.take(volume, index, axis=ras_axis)
    return cut.T[::-1, ::-1]


def _draw_slices(figure: Any, boxes: Sequence[tuple[float, float, float, float]], data: np.ndarray,
                 heat: np.ndarray, cluster: np.ndarray, roi: np.ndarray | None, centre: Sequence[int],
                 zooms: np.ndarray) -> tuple[list[Any], Any]:
    import matplotlib.pyplot as plt

    inside = data[data > np.percentile(data, 2)] if np.any(data > np.percentile(data, 2)) else data.ravel()
    low, high = np.percentile(inside, [0.5, 99.5])
    axes = []
    for box, (name, ras_axis, sides) in zip(boxes, _VIEWS, strict=True):
        ax = figure.add_axes(box)
        others = [a for a in range(3) if a != ras_axis]
        dx, dy = zooms[others[0]], zooms[others[1]]
        plane = _plane(data, ras_axis, centre[ras_axis])
        extent = (0, plane.shape[1] * dx, 0, plane.shape[0] * dy)
        ax.imshow(plane, cmap="gray", vmin=low, vmax=high, extent=extent, interpolation="nearest")
        h = np.clip(_plane(heat, ras_axis, centre[ras_axis]), 0, 1)
        layer = plt.get_cmap("inferno")(h)
        layer[..., 3] = 0.7 * np.clip(h / HEAT_FLOOR, 0, 1)
        ax.imshow(layer, extent=extent, interpolation="nearest")
        for mask, colour in ((cluster, "lime"), (roi, "cyan")):
            if mask is not None:
                m = _plane(mask.astype(np.float32), ras_axis, centre[ras_axis])
                if m.any() and not m.all():
                    ax.contour(m[::-1], levels=[0.5], colors=colour, linewidths=1.0, extent=extent)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
        for text, xy in zip(sides, ((0.04, 0.5), (0.96, 0.5), (0.5, 0.95), (0.5, 0.05)), strict=True):
            ax.text(*xy, text, color="yellow", fontsize=11, fontweight="bold", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title(f"{name}, slice {centre[ras_axis]}", fontsize=10)
        axes.append(ax)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return axes, ScalarMappable(norm=Normalize(0.0, 1.0), cmap="inferno")


def _pixel_box(ax: Any, figure: Any) -> tuple[int, int, int, int]:
    """The axes' image area in PNG pixels (top-left origin), after the aspect adjustment."""
    figure.canvas.draw()
    box = ax.get_window_extent()
    height = figure.get_figheight() * PNG_DPI
    scale = PNG_DPI / figure.dpi
    return (int(round(box.x0 * scale)), int(round(height - box.y1 * scale)), int(round(box.x1 * scale)),
            int(round(height - box.y0 * scale)))


# ---------------------------------------------------------------- pages


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _text_page(figure: Any, lines: Sequence[tuple[str, str]], top: float = 0.95) -> None:
    y = top
    for style, text in lines:
        size = {"title": 16, "head": 12, "body": 9.5, "small": 8.5}[style]
        weight = "bold" if style in ("title", "head") else "normal"
        if style == "head":
            y -= 0.012
        figure.text(0.07, y, text, fontsize=size, fontweight=weight, va="top", wrap=True)
        y -= {"title": 0.04, "head": 0.026, "body": 0.019, "small": 0.017}[style] * (text.count("\n") + 1)


def _summary_lines(result: Any, subject: str, clusters: Any, model_info: dict[str, Any],
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
    lines.append(("body", f"Prediction: {result.prediction}    p(FCD) = {result.probability:.3f}    "
                          f"(threshold {result.threshold:.2f})"))
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
        lines.append(("small", f"  cluster {c.id}: {c.volume_mm3:.0f} mm3, {c.hemisphere}, peak {c.peak:.2f}, "
                               f"centroid RAS ({', '.join(f'{v:.0f}' for v in c.centroid_ras)}) mm"))
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


def _cluster_page(figure: Any, result: Any, cluster: Any, rank_of: int, mask: np.ndarray, data: dict[str, Any],
                  subject: str) -> tuple[dict[str, Any], dict[str, tuple[int, int]], list[Any]]:
    from .localized_saliency import Region, region_contributions

    ornt, shape = data["ornt"], data["shape"]
    centre_in = [int(round(v)) for v in np.argwhere(mask).mean(axis=0)]
    if not mask[tuple(centre_in)]:  # a curved cluster: take its voxel nearest to the centroid
        idx = np.argwhere(mask)
        centre_in = [int(v) for v in idx[np.argmin(((idx - np.array(centre_in)) ** 2).sum(1))]]
    centre = _index_to_ras(centre_in, shape, ornt)
    figure.text(0.07, 0.965, f"Cluster {cluster.id} of {rank_of}  (rank {cluster.id}: highest confidence first)",
                fontsize=14, fontweight="bold", va="top")
    figure.text(0.07, 0.937, f"Subject {subject}   |   {result.method} map   |   p(FCD) {result.probability:.3f}",
                fontsize=9.5, va="top")
    boxes = [(0.05, 0.62, 0.29, 0.29), (0.355, 0.62, 0.29, 0.29), (0.66, 0.62, 0.29, 0.29)]
    axes, image = _draw_slices(figure, boxes, data["image"], data["heat"], _ras(mask, data["affine"]), data["roi"],
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
    slices = {name: (_input_axis(ras_axis, ornt), centre_in[_input_axis(ras_axis, ornt)])
              for name, ras_axis, _ in _VIEWS}
    return dict(zip([v[0] for v in _VIEWS], axes, strict=True)), slices, axes


def _below_lines(below: Sequence[tuple[str, Any]], threshold: float, low: float) -> list[tuple[str, str]]:
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


def write_report(result: Any, images: Sequence[Any] | None = None, out_dir: str | os.PathLike | None = None,
                 roi: Any = None, *,
                 subject: str | None = None, model_info: dict[str, Any] | None = None,
                 max_cluster_pages: int = MAX_CLUSTER_PAGES) -> ReportFiles:
    """Write ``report.pdf`` and ``report-page-N.png`` of a detection into ``out_dir``.

    ``result`` is a :class:`~FCDDetectLib.detect.DetectionResult`; ``images`` the input scans
    (paths or :class:`~FCDDetectLib.image_io.Image`, first = the map's grid; None: the file that
    ``result.inputs`` names first); ``roi`` the lesion outline, if any (any grid). The clusters are ``result.clusters`` when the detection found
    them, else those of :func:`FCDDetectLib.clusters.find_clusters` with its defaults. The
    model's depth, provenance and metrics come from ``model_info`` (bundle metadata as a dict)
    or ``result.model_metadata``. Raises FCDInputError (nothing written) when ``out_dir`` is
    not writable or an image does not match the map's grid.

    Example:
        >>> files = write_report(result, ["flair.nii.gz"], "out/", roi="roi.nii.gz")  # doctest: +SKIP
        >>> len(files.pages)  # summary + one per cluster + below-threshold page  # doctest: +SKIP
        4
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from .clusters import find_clusters

    if out_dir is None:
        raise FCDInputError("report: no output folder given")
    out = check_writable(out_dir)
    if not images:
        first = Path(str(result.inputs[0])) if getattr(result, "inputs", None) else None
        if first is None or not first.exists():
            raise FCDInputError("report: no input image given, and the detection result names no readable file")
        images = [first]
    reference = _as_image(images[0], "image 1")
    shape = tuple(reference.array.shape[:3])
    if tuple(np.asarray(result.heatmap).shape) != shape or not np.allclose(reference.affine, result.affine, atol=1e-4):
        raise FCDInputError(f"report: image 1 ({_name(images[0])}) is not on the map's grid; give the detection's "
                            "first input")
    roi_mask = None
    if roi is not None:
        roi_image = _as_image(roi, "ROI", mask=True)
        roi_mask = np.asarray(roi_image.array) if same_grid(roi_image, reference) else mask_onto_grid(roi_image, reference)
    ref_data = np.asarray(reference.array, np.float32)
    clusters = getattr(result, "clusters", None)
    if clusters is None:
        clusters = find_clusters(result.heatmap, result.affine, image=ref_data)
    low = clusters.threshold / 2
    weak = find_clusters(result.heatmap, result.affine, threshold=low, min_size_mm3=clusters.min_size_mm3,
                         image=ref_data)
    reported = clusters.labels > 0
    below = [(f"cluster {c.id}", c) for c in clusters.clusters[max_cluster_pages:]]
    untouched = [c for c in weak.clusters if not np.any(reported[weak.labels == c.id])]
    below += [(f"weak {n}", c) for n, c in enumerate(untouched, start=1)]
    paged = clusters.clusters[:max_cluster_pages]

    affine = np.asarray(reference.affine, float)
    image_ras, ornt, zooms = _to_ras(ref_data, affine)
    data = {"ornt": ornt, "shape": shape, "zooms": zooms, "affine": affine, "image": image_ras,
            "heat": _ras(np.asarray(result.heatmap, np.float32), affine),
            "roi": _ras(roi_mask.astype(np.float32), affine) if roi_mask is not None else None}
    subject = subject or _subject_name(result)
    info = model_info or getattr(result, "model_metadata", None) or {}

    figures: list[tuple[Any, PageInfo]] = []
    # every page stays open until the PDF is written (all or nothing): silence the >20 figures warning
    limit = plt.rcParams["figure.max_open_warning"]
    plt.rcParams["figure.max_open_warning"] = max(limit, max_cluster_pages + 3)
    try:
        figure = plt.figure(figsize=PAGE_SIZE)
        _text_page(figure, _summary_lines(result, subject, clusters, info, _name(roi) if roi is not None else None))
        figures.append((figure, PageInfo(out / "report-page-1.png", "summary")))
        for cluster in paged:
            figure = plt.figure(figsize=PAGE_SIZE)
            views, slices, _ = _cluster_page(figure, result, cluster, len(clusters.clusters),
                                             clusters.labels == cluster.id, data, subject)
            page = PageInfo(out / f"report-page-{len(figures) + 1}.png", "cluster", cluster.id, slices=slices)
            page.panels = {name: _pixel_box(ax, figure) for name, ax in views.items()}
            figures.append((figure, page))
        figure = plt.figure(figsize=PAGE_SIZE)
        _text_page(figure, _below_lines(below, clusters.threshold, low))
        figures.append((figure, PageInfo(out / f"report-page-{len(figures) + 1}.png", "below-threshold")))

        def write_pdf(tmp: str) -> None:
            with PdfPages(tmp, metadata={"Title": f"FCD detection report: {subject}",
                                         "Creator": f"FCDDetect {__version__}"}) as pdf:
                for fig, _page in figures:
                    pdf.savefig(fig)

        out.mkdir(parents=True, exist_ok=True)
        for fig, page in figures:
            write_atomic(page.png, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=PNG_DPI))
        pdf_path = write_atomic(out / "report.pdf", write_pdf)
    finally:
        for fig, _page in figures:
            plt.close(fig)
        plt.rcParams["figure.max_open_warning"] = limit
    return ReportFiles(pdf=pdf_path, pages=[page for _, page in figures])


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "in-memory image"


def _subject_name(result: Any) -> str:
    import re

    for path in result.inputs:
        match = re.search(r"sub-[A-Za-z0-9]+", str(path))
        if match:
            return match.group(0)
    return Path(str(result.inputs[0])).name if result.inputs else "unnamed"
