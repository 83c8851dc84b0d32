"""FCDDetectLib.outputs.overlay: orientation, centre choice, PNG writing, and drawing a detection."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.outputs.overlay import default_center, index_to_ras, render_overlay, to_ras


def test_overlay_orientation_helpers():
    affine = np.array([[-2.0, 0, 0, 10], [0, 0, 3.0, -5], [0, -1.5, 0, 7], [0, 0, 0, 1]])  # L, I, A voxel axes
    array = np.zeros((4, 5, 6), np.float32)
    ras, ornt, zooms = to_ras(array, affine)
    assert ras.shape == (4, 6, 5) and list(zooms) == [2.0, 3.0, 1.5]
    # Voxel (0, 0, 0) is the most left, superior, posterior one -> RAS indices (3, 0, 4).
    assert index_to_ras((0, 0, 0), array.shape, ornt) == [3, 0, 4]
    heat = np.zeros_like(array)
    heat[1, 2, 3] = 1
    roi = np.zeros(array.shape, bool)
    roi[3, 4, 5] = True
    assert default_center(array.shape, heat, roi) == (1, 2, 3)
    assert default_center(array.shape, None, roi) == (3, 4, 5)
    assert default_center(array.shape, None, None) == (2, 2, 3)


def test_render_overlay_writes_png_and_checks_shapes(tmp_path):
    rng = np.random.default_rng(0)
    image = Image(rng.random((20, 24, 16)).astype(np.float32), np.diag([1.0, 1.2, 2.0, 1.0]))
    heat = np.zeros(image.array.shape, np.float32)
    heat[5:9, 6:10, 4:8] = 1
    path = render_overlay(image, tmp_path / "o.png", heatmap=heat, roi=heat > 0.5, title="t")
    assert path.is_file() and mpimg.imread(path).shape[2] in (3, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    with pytest.raises(FCDInputError, match=r"heatmap shape \(2, 2, 2\) differs"):
        render_overlay(image, tmp_path / "p.png", heatmap=np.zeros((2, 2, 2)))


@pytest.mark.parametrize(("i_range", "right_side"), [((1, 5), True), ((15, 19), False)])
def test_render_overlay_radiological_orientation(tmp_path, i_range, right_side):
    """A bright blob stored LPS, anterior: on screen left when it is in the patient's right, and top."""
    array = np.full((20, 24, 16), 0.5, np.float32)
    array[:, 23] = 0.05  # sets the dark end of the display window
    array[i_range[0]:i_range[1], 2:6, 6:11] = 1.0  # x = -2 (i - 10): small i = patient right; small j = anterior
    affine = np.array([[-2.0, 0, 0, 20], [0, -2.0, 0, 24], [0, 0, 2.0, -16], [0, 0, 0, 1]])
    rgb = mpimg.imread(render_overlay(Image(array, affine), tmp_path / "blob.png"))[..., :3]
    panel = rgb[:, : rgb.shape[1] // 3]
    grey = panel.mean(axis=2)
    neutral = np.ptp(panel, axis=2) < 0.05
    rows, cols = np.nonzero(neutral & (grey > 0.3) & (grey < 0.7))  # the displayed head (mid grey)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    inside = np.zeros_like(neutral)
    inside[top:bottom + 1, left:right + 1] = True
    blob_rows, blob_cols = np.nonzero(inside & neutral & (grey > 0.9))
    assert len(blob_rows) > 20
    assert (blob_cols.mean() < (left + right) / 2) == right_side  # radiological: patient right on screen left
    assert blob_rows.mean() < (top + bottom) / 2  # anterior up
