"""PNG overlays: axial, coronal and sagittal slices with a heatmap and/or an ROI contour.

The one renderer of the project: ``fcd detect --png``, ``fcd demo``, ``fcd synth``'s
previews and the README screenshot (``Resources/Screenshots/render_overlay.py``) all draw
through :func:`render_rows`.

Arrays are on the image's grid (I, J, K). The volume is brought to the closest RAS voxel
order (nibabel orientation codes, flips and axis swaps only) and shown in radiological
convention like 3D Slicer's default (patient right on screen left), superior up, with
voxel aspect taken from the voxel sizes. The heatmap is drawn semi-transparent (inferno),
only where it exceeds 0.2 of its range; the ROI is a cyan contour.

Example:
    >>> from FCDDetectLib.io.image_io import load_image, load_mask
    >>> flair = load_image("sub-00001_acq-T2sel_FLAIR.nii.gz")  # doctest: +SKIP
    >>> roi = load_mask("sub-00001_acq-T2sel_FLAIR_roi.nii.gz").array  # doctest: +SKIP
    >>> render_overlay(flair, "sub-00001.png", roi=roi, title="sub-00001 FLAIR")  # doctest: +SKIP
    PosixPath('sub-00001.png')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import mask_onto_grid, same_grid, voxel_sizes
from FCDDetectLib.io.atomic_files import write_atomic
from FCDDetectLib.io.image_io import Image

if TYPE_CHECKING:
    from FCDDetectLib.detection.result import DetectionResult

HEAT_FLOOR = 0.2
"""Heatmap values below this fraction of the heatmap's range are not drawn."""


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Array in closest-RAS voxel order, the orientation used, and voxel sizes in that order."""
    import nibabel.orientations as ornt_lib

    ornt = ornt_lib.io_orientation(affine)
    zooms = voxel_sizes(affine)
    ras_zooms = np.empty(3)
    for axis, (target, _flip) in enumerate(ornt):
        ras_zooms[int(target)] = zooms[axis]
    return ornt_lib.apply_orientation(array, ornt), ornt, ras_zooms


def index_to_ras(index: Sequence[float], shape: Sequence[int], ornt: np.ndarray) -> list[int]:
    out = [0, 0, 0]
    for axis, (target, flip) in enumerate(ornt):
        value = int(round(float(index[axis])))
        out[int(target)] = shape[axis] - 1 - value if flip < 0 else value
    return out


def default_center(shape: Sequence[int], heatmap: np.ndarray | None, roi: np.ndarray | None) -> tuple[int, int, int]:
    """Heatmap peak, else ROI centroid, else the volume centre (voxel indices)."""
    if heatmap is not None and np.isfinite(heatmap).any() and float(np.nanmax(heatmap)) > float(np.nanmin(heatmap)):
        return tuple(int(v) for v in np.unravel_index(int(np.nanargmax(heatmap)), heatmap.shape))
    if roi is not None and np.any(roi):
        return tuple(int(round(v)) for v in np.argwhere(roi).mean(axis=0))
    return tuple(int(n // 2) for n in shape)


def _check(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if array is None:
        return None
    array = np.asarray(array)
    if array.shape != shape:
        raise FCDInputError(f"overlay: {name} shape {array.shape} differs from the image's {shape}; resample it first")
    return array


def render_rows(
    rows: Sequence[tuple[Image, np.ndarray | None, np.ndarray | None, Sequence[float] | None, str]],
    out_png: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Several images, one row each: ``(image, heatmap, roi, center_ijk, row_label)``; atomic PNG write."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), 3, figsize=(11, 3.8 * len(rows) + (0.4 if title else 0)), squeeze=False)
    figure.patch.set_facecolor("black")
    for row_axes, (image, heatmap, roi, center, label) in zip(axes, rows, strict=True):
        shape = tuple(image.array.shape)
        heatmap = _check("heatmap", heatmap, shape)
        roi = _check("ROI", roi, shape)
        center = default_center(shape, heatmap, roi) if center is None else center
        data, ornt, zooms = to_ras(np.asarray(image.array, np.float32), np.asarray(image.affine, float))
        heat = to_ras(np.asarray(heatmap, np.float32), image.affine)[0] if heatmap is not None else None
        mask = to_ras(np.asarray(roi, np.float32), image.affine)[0] if roi is not None else None
        c = index_to_ras(center, shape, ornt)
        c = [int(np.clip(v, 0, n - 1)) for v, n in zip(c, data.shape, strict=True)]
        low, high = np.percentile(data[data > 0] if np.any(data > 0) else data, [0.5, 99.5])
        # (slice, horizontal axis in mm, vertical axis in mm, side labels) for each view, RAS order.
        views = [
            ("axial", lambda v, c=c: v[:, :, c[2]], zooms[0], zooms[1], ("R", "L", "A", "P")),
            ("coronal", lambda v, c=c: v[:, c[1], :], zooms[0], zooms[2], ("R", "L", "S", "I")),
            ("sagittal", lambda v, c=c: v[c[0], :, :], zooms[1], zooms[2], ("A", "P", "S", "I")),
        ]
        for ax, (name, cut, dx, dy, sides) in zip(row_axes, views, strict=True):
            # Rows: the vertical axis, flipped so that A (axial) or S is up. Columns flipped so that
            # R (axial, coronal) and A (sagittal) are on the left, as radiologists and Slicer show them.
            def show(v, cut=cut):
                return cut(v).T[::-1, ::-1]

            plane = show(data)
            extent = (0, plane.shape[1] * dx, 0, plane.shape[0] * dy)
            ax.imshow(plane, cmap="gray", vmin=low, vmax=high, extent=extent, interpolation="bilinear")
            if heat is not None:
                hmin, hmax = float(np.nanmin(heat)), float(np.nanmax(heat))
                h = (show(heat) - hmin) / max(hmax - hmin, 1e-12)
                # Opacity fades in from 0 to 0.55 over [0, HEAT_FLOOR]: a hard cut at the floor
                # leaves untinted patches with sharp edges that read as image artefacts.
                layer = plt.get_cmap("inferno")(np.clip(h, 0, 1))
                layer[..., 3] = 0.55 * np.clip(h / HEAT_FLOOR, 0, 1)
                ax.imshow(layer, extent=extent, interpolation="bilinear")
            if mask is not None and show(mask).any():
                ax.contour(show(mask)[::-1], levels=[0.5], colors="cyan", linewidths=1.2, extent=extent)
            ax.set_facecolor("black")
            ax.set_xticks([])
            ax.set_yticks([])
            for text, xy in zip(sides, ((0.02, 0.5), (0.98, 0.5), (0.5, 0.97), (0.5, 0.02)), strict=True):
                ax.text(*xy, text, color="yellow", fontsize=8, ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{label} {name}".strip(), color="white", fontsize=9)
    if title:
        figure.suptitle(title, color="white", fontsize=11)
    figure.tight_layout()
    try:
        target = write_atomic(out_png, lambda tmp: figure.savefig(tmp, format="png", dpi=100, facecolor="black"))
    finally:
        plt.close(figure)
    return target


def render_overlay(
    image: Image,
    out_png: str | os.PathLike,
    heatmap: np.ndarray | None = None,
    roi: np.ndarray | None = None,
    center_ijk: Sequence[float] | None = None,
    title: str | None = None,
) -> Path:
    """Axial, coronal and sagittal slices through ``center_ijk`` (default: heatmap peak, ROI centroid,
    volume centre) of ``image`` with the heatmap (inferno, semi-transparent) and ROI contour (cyan).

    ``heatmap`` and ``roi`` are arrays on the image's grid. Written atomically; returns the path.

    Example:
        >>> render_overlay(flair, "out.png", heatmap=result.heatmap, roi=roi)  # doctest: +SKIP
    """
    return render_rows([(image, heatmap, roi, center_ijk, "")], out_png, title)


def detection_title(result: DetectionResult, label: str | None = None) -> str:
    """``"LABEL: FCD p(FCD)=0.91, Heat-Score=2.41 (gradcam)"`` for a detection result."""
    text = f"{result.prediction.upper()} p({result.target_class})={result.probability:.2f}"
    if result.heat_score is not None:
        text += f", Heat-Score={result.heat_score:.2f}"
    text += f" ({result.method})"
    return f"{label}: {text}" if label else text


def render_detection(
    result: DetectionResult,
    image: Image,
    out_png: str | os.PathLike,
    roi: Image | None = None,
    label: str | None = None,
) -> Path:
    """Draw one detection: ``result.heatmap`` over ``image`` (the first input), the ROI as a contour.

    ``image`` must be on the heatmap's grid (it is the image the heatmap was mapped back to);
    an ROI on another grid is resampled onto it (nearest neighbour), like the Heat-Score does.

    Example:
        >>> result = detect("model.fcdbundle", ["flair.nii.gz"], roi="roi.nii.gz")  # doctest: +SKIP
        >>> render_detection(result, load_image("flair.nii.gz"), "out/overlay.png", roi=load_mask("roi.nii.gz"))  # doctest: +SKIP
    """
    if not same_grid(image, (result.heatmap.shape, result.affine)):
        raise FCDInputError("overlay: the image is not on the heatmap's grid; pass the first input image")
    roi_array = None
    if roi is not None:
        roi_array = np.asarray(roi.array) > 0.5 if same_grid(roi, image) else mask_onto_grid(roi, image)
    return render_overlay(image, out_png, heatmap=result.heatmap, roi=roi_array, title=detection_title(result, label))
