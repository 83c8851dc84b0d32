"""The per-subject PDF report of one detection (like MELD's): a summary page, one page per cluster.

:func:`write_report` writes ``report.pdf`` and every page as ``report-page-N.png`` (N from
1). The engine's own report; the training report lives in the trainer package (another job).
This module checks the inputs, puts the pages together and writes the files; each page's
content is drawn by :mod:`FCDDetectLib.outputs.report_pages`, the slice panels by
:mod:`FCDDetectLib.outputs.report_slices`.

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
    >>> from FCDDetectLib.outputs.pdf_report import write_report
    >>> result = detect("model.fcdbundle", ["flair.nii.gz"], localized_smoothgrad=True)  # doctest: +SKIP
    >>> write_report(result, ["flair.nii.gz"], "out/").pdf  # doctest: +SKIP
    PosixPath('out/report.pdf')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import mask_onto_grid, same_grid
from FCDDetectLib.io.atomic_files import write_atomic
from FCDDetectLib.io.image_io import Image, load_image, load_mask, validate_array
from FCDDetectLib.outputs.overlay import to_ras  # the overlay PNGs' RAS reordering
from FCDDetectLib.outputs.report_pages import (
    below_threshold_lines,
    cluster_page,
    summary_lines,
    text_page,
)
from FCDDetectLib.outputs.report_slices import ras_of
from FCDDetectLib.version import __version__

__all__ = ["PageInfo", "ReportFiles", "check_writable", "write_report"]

PAGE_SIZE = (8.27, 11.69)  # A4 portrait, inches; prints on Letter with small margins
PNG_DPI = 100
MAX_CLUSTER_PAGES = 20


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


def _pixel_box(ax: Any, figure: Any) -> tuple[int, int, int, int]:
    """The axes' image area in PNG pixels (top-left origin), after the aspect adjustment."""
    figure.canvas.draw()
    box = ax.get_window_extent()
    height = figure.get_figheight() * PNG_DPI
    scale = PNG_DPI / figure.dpi
    return (int(round(box.x0 * scale)), int(round(height - box.y1 * scale)), int(round(box.x1 * scale)),
            int(round(height - box.y0 * scale)))




def write_report(result: Any, images: Sequence[Any] | None = None, out_dir: str | os.PathLike | None = None,
                 roi: Any = None, *,
                 subject: str | None = None, model_info: dict[str, Any] | None = None,
                 max_cluster_pages: int = MAX_CLUSTER_PAGES) -> ReportFiles:
    """Write ``report.pdf`` and ``report-page-N.png`` of a detection into ``out_dir``.

    ``result`` is a :class:`~FCDDetectLib.detection.detect.DetectionResult`; ``images`` the input scans
    (paths or :class:`~FCDDetectLib.io.image_io.Image`, first = the map's grid; None: the file that
    ``result.inputs`` names first); ``roi`` the lesion outline, if any (any grid). The clusters are ``result.clusters`` when the detection found
    them, else those of :func:`FCDDetectLib.maps.clusters.find_clusters` with its defaults. The
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

    from FCDDetectLib.maps.clusters import find_clusters

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
    image_ras, ornt, zooms = to_ras(ref_data, affine)
    data = {"ornt": ornt, "shape": shape, "zooms": zooms, "affine": affine, "image": image_ras,
            "heat": ras_of(np.asarray(result.heatmap, np.float32), affine),
            "roi": ras_of(roi_mask.astype(np.float32), affine) if roi_mask is not None else None}
    subject = subject or _subject_name(result)
    info = model_info or getattr(result, "model_metadata", None) or {}

    figures: list[tuple[Any, PageInfo]] = []
    # every page stays open until the PDF is written (all or nothing): silence the >20 figures warning
    limit = plt.rcParams["figure.max_open_warning"]
    plt.rcParams["figure.max_open_warning"] = max(limit, max_cluster_pages + 3)
    try:
        figure = plt.figure(figsize=PAGE_SIZE)
        text_page(figure, summary_lines(result, subject, clusters, info, _name(roi) if roi is not None else None))
        figures.append((figure, PageInfo(out / "report-page-1.png", "summary")))
        for cluster in paged:
            figure = plt.figure(figsize=PAGE_SIZE)
            views, slices, _ = cluster_page(figure, result, cluster, len(clusters.clusters),
                                             clusters.labels == cluster.id, data, subject)
            page = PageInfo(out / f"report-page-{len(figures) + 1}.png", "cluster", cluster.id, slices=slices)
            page.panels = {name: _pixel_box(ax, figure) for name, ax in views.items()}
            figures.append((figure, page))
        figure = plt.figure(figsize=PAGE_SIZE)
        text_page(figure, below_threshold_lines(below, clusters.threshold, low))
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
