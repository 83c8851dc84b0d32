"""The slice panels of a report's cluster page: axial, coronal and sagittal cuts with the map and outlines.

:func:`draw_slices` draws, into given boxes of a figure, the three slices through one voxel
of a volume brought to closest-RAS voxel order (:func:`ras_of`, the overlay's reordering):
the scan in grey, the map in colour (inferno, faded below
:data:`~FCDDetectLib.outputs.overlay.HEAT_FLOOR`), the cluster outline and, when given, the ROI
outline, and the R/L, A/P or S/I label on each side. Panels are in radiological convention
(the patient's right on the left), superior up, with the voxel sizes as aspect. Used by
:mod:`FCDDetectLib.outputs.report_pages`; matplotlib is imported on first use.

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.outputs.report_slices import VIEWS, _plane
    >>> [name for name, _axis, _sides in VIEWS]
    ['axial', 'coronal', 'sagittal']
    >>> _plane(np.zeros((4, 5, 6)), 2, 3).shape  # axial: rows A->P, columns R->L
    (5, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from FCDDetectLib.outputs.overlay import HEAT_FLOOR, to_ras  # the overlay PNGs' RAS reordering and fade

# The RAS reordering (nibabel orientation codes) is the overlay's: overlay.to_ras / index_to_ras.


def ras_of(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return to_ras(np.asarray(array), affine)[0]


def input_axis(ras_axis: int, ornt: np.ndarray) -> int:
    return int(next(a for a, (target, _) in enumerate(ornt) if int(target) == ras_axis))


# (view, RAS axis cut, labels left/right/top/bottom). Radiological: R on the left.
VIEWS = (("axial", 2, ("R", "L", "A", "P")), ("coronal", 1, ("R", "L", "S", "I")),
          ("sagittal", 0, ("A", "P", "S", "I")))


def _plane(volume: np.ndarray, ras_axis: int, index: int) -> np.ndarray:
    """The slice as rows (top = A or S) x columns (left = R, or A for sagittal)."""
    cut = np.take(volume, index, axis=ras_axis)
    return cut.T[::-1, ::-1]


def draw_slices(figure: Any, boxes: Sequence[tuple[float, float, float, float]], data: np.ndarray,
                 heat: np.ndarray, cluster: np.ndarray, roi: np.ndarray | None, centre: Sequence[int],
                 zooms: np.ndarray) -> tuple[list[Any], Any]:
    import matplotlib.pyplot as plt

    inside = data[data > np.percentile(data, 2)] if np.any(data > np.percentile(data, 2)) else data.ravel()
    low, high = np.percentile(inside, [0.5, 99.5])
    axes = []
    for box, (name, ras_axis, sides) in zip(boxes, VIEWS, strict=True):
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
