"""What Slicer draws: the result of a real detection in Slicer's own Red, Yellow and Green slice views.

The FCD sample (``FCDDetect/Resources/Sample``: a synthetic scan with a planted lesion and the
tiny planted-evidence model with a lesion head) is loaded through Slicer's volumes logic, detected
through the product's MRML logic (:class:`DetectionLogic`), shown with its
``show_in_slice_views``, the views are centred on cluster 1 (the panel's jump), and
:class:`~FCDDetectLib.mrml.slice_views.SliceViews` renders them offscreen (EGL). The pixels are
checked against what the scene says they must be:

- the scan alone is grey (R = G = B);
- where the heatmap is below the display threshold the picture is the scan alone (to the unit);
- where it is above, the colour is the Iron colour map blended at the opacity over the scan:
  Iron is red (1, g, 0) with g rising with the value, so R - B is the opacity x 255 and
  G - B the opacity x 255 x g(value) at the cluster peak;
- the "cluster 1" markup is drawn at the peak (the pixels markups change surround it);
- switched to the lesion map (the panel's *Overlay*), the lesion is green and the rest the scan.

The PNGs are kept as test artefacts in ``Testing/.tmp/slice-views`` (git-ignored; the path is
printed). Skipped only where no OpenGL context can be made.
"""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.mrml.detection_logic import DetectionLogic
from FCDDetectLib.mrml.detection_nodes import cluster_jump_point
from FCDDetectLib.slicer_support.detect_presenter import HEATMAP_OVERLAY, LESION_MAP_OVERLAY, DetectPresenter
from FCDDetectLib.slicer_support.sample_data import SCAN_NODE_NAME, sample_files
from scipy.ndimage import maximum_filter, minimum_filter

from Testing.builders.slicer_fixtures import ARTEFACTS, make_slicer_app

pytestmark = pytest.mark.rendering

SIZE = (200, 200)
THRESHOLD = 0.5  # display threshold ("Hide below"): the sample's heatmap is broad, half the head is above
OPACITY = 0.5


@pytest.fixture(scope="module")
def scene():
    """The FCD sample detected in-process, shown, centred on cluster 1, in three offscreen views."""
    from FCDDetectLib.mrml.slice_views import SliceViews, opengl_problem

    problem = opengl_problem()
    if problem:
        pytest.skip(f"no OpenGL context: {problem}")
    app = make_slicer_app()
    files = sample_files()
    scan = app.load_volume(files.scan, SCAN_NODE_NAME)
    logic = DetectionLogic(lower_threshold=THRESHOLD, opacity=OPACITY)
    out = logic.process([scan], files.bundle, device="cpu")
    views = SliceViews(app.app_logic, size=SIZE)
    peak = cluster_jump_point(out.clusters_table_node, 0)
    logic.show_in_slice_views(scan, out.heatmap_node)
    views.fit()  # Slicer fits the views to the volumes it shows
    views.jump_to(peak)  # the panel's jump (centred)
    yield {"app": app, "scan": scan, "out": out, "logic": logic, "views": views, "peak": peak}
    views.close()
    app.scene.Clear(1)


def _markups_visible(app, visible: bool) -> None:
    nodes = app.scene.GetNodesByClass("vtkMRMLMarkupsFiducialNode")
    for i in range(nodes.GetNumberOfItems()):
        display = nodes.GetItemAsObject(i).GetDisplayNode()
        if display is not None:
            display.SetVisibility(visible)


def _render(scene, overlay: str | None, markups: bool, name: str | None = None):
    """Pixels of the three views with ``overlay`` (a panel overlay choice, None: the scan alone)."""
    views, logic = scene["views"], scene["logic"]
    _markups_visible(scene["app"], markups)
    node = DetectPresenter.overlay_node(scene["out"], overlay) if overlay else None
    if node is None:
        views.show(scene["scan"])
    else:
        logic.show_in_slice_views(scene["scan"], node)  # what the panel does
    pixels = views.render()
    if name:
        paths = views.write_pngs(ARTEFACTS / "slice-views", prefix=name)
        print(f"slice views written: {sorted(str(p) for p in paths.values())}")
    return {key: value.astype(int) for key, value in pixels.items()}


def _map_at_pixels(view, node, size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of ``node``'s voxels within ``size`` voxels of each pixel's nearest voxel: the
    range a pixel can show whatever the interpolation."""
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(matrix)
    ras_to_ijk = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    values = slicer.util.arrayFromVolume(node).transpose(2, 1, 0)  # (I, J, K)
    ras = view.pixel_ras()
    ijk = np.rint(np.concatenate([ras, np.ones(ras.shape[:2] + (1,))], axis=-1) @ ras_to_ijk.T)[..., :3].astype(int)
    inside = np.all((ijk >= 0) & (ijk < values.shape), axis=-1)
    clipped = np.clip(ijk, 0, np.array(values.shape) - 1)
    footprint = 2 * size + 1
    low = minimum_filter(values, size=footprint)[tuple(clipped.transpose(2, 0, 1))]
    high = maximum_filter(values, size=footprint)[tuple(clipped.transpose(2, 0, 1))]
    return np.where(inside, low, 0.0), np.where(inside, high, 0.0)


def test_heatmap_in_iron_over_the_grey_scan_centred_on_cluster_1(scene):
    plain = _render(scene, None, markups=False, name="scan")
    heat = _render(scene, HEATMAP_OVERLAY, markups=False)
    shown = _render(scene, HEATMAP_OVERLAY, markups=True, name="heatmap")
    out, views = scene["out"], scene["views"]
    iron = scene["app"].scene.GetNodeByID("vtkMRMLColorTableNodeIron").GetLookupTable()
    for name, view in views.views.items():
        scan, overlay = plain[name], heat[name]
        # The scan alone is grey, and the head is not black.
        assert np.abs(scan[..., 0] - scan[..., 1]).max() <= 1 and np.abs(scan[..., 1] - scan[..., 2]).max() <= 1
        assert (scan[..., 0] > 60).mean() > 0.3, name
        low, high = _map_at_pixels(view, out.heatmap_node)
        below, above = high < THRESHOLD, low > THRESHOLD + 0.1
        assert below.sum() > 500 and above.sum() > 500, (name, below.sum(), above.sum())  # both are on screen
        # Below the display threshold: the scan, to the unit.
        assert np.abs(overlay[below] - scan[below]).max() <= 2, name
        # Above: Iron (R, g, 0) blended at the opacity over the grey scan.
        red_minus_blue = overlay[above][:, 0] - overlay[above][:, 2]
        assert np.median(np.abs(red_minus_blue - OPACITY * 255)) <= 3, name
        assert (overlay[above][:, 0] >= overlay[above][:, 1]).all() and (overlay[above][:, 1] >= overlay[above][:, 2]).all()
        # At the centre (cluster 1's peak, where the views jumped): the Iron colour of its value.
        row, column = view.ras_to_pixel(scene["peak"])
        assert abs(row - SIZE[1] // 2) <= 1 and abs(column - SIZE[0] // 2) <= 1, name
        value = float(high[row, column])
        assert value > 0.9, (name, value)  # the cluster's peak is the heatmap's
        rgb = [0.0, 0.0, 0.0]
        iron.GetColor(255 * value, rgb)
        expected = (1 - OPACITY) * scan[row, column] + OPACITY * 255 * np.array(rgb)
        assert np.abs(overlay[row, column] - expected).max() <= 8, (name, overlay[row, column], expected)
        # The markups (cluster 1 and the lesion map's cluster 1) are drawn around the peak only.
        changed = np.abs(shown[name] - overlay).max(axis=-1) > 30
        rows, columns = np.nonzero(changed)
        assert changed[row - 3:row + 4, column - 3:column + 4].any(), name
        assert np.median(np.hypot(rows - row, columns - column)) < 40, name


def test_lesion_map_when_switched(scene):
    plain = _render(scene, None, markups=False)
    _render(scene, LESION_MAP_OVERLAY, markups=True, name="lesion-map")  # the artefact, as the panel shows it
    lesion = _render(scene, LESION_MAP_OVERLAY, markups=False)
    out, views = scene["out"], scene["views"]
    assert out.lesion_map_node is not None
    assert DetectPresenter.overlay_choices(out) == [HEATMAP_OVERLAY, LESION_MAP_OVERLAY]
    for name, view in views.views.items():
        low, high = _map_at_pixels(view, out.lesion_map_node)
        below, above = high < THRESHOLD, low > 0.9
        assert above.sum() > 100 and below.sum() > 1000, (name, above.sum(), below.sum())
        assert np.abs(lesion[name][below] - plain[name][below]).max() <= 2, name  # the scan
        green = lesion[name][above]
        # Green colour table blended over the scan: G above R and B by about the opacity x 255 x g.
        assert np.median(green[:, 1] - green[:, 0]) > 60 and np.abs(green[:, 0] - green[:, 2]).max() <= 2, name


def test_no_opengl_context_is_a_reason_to_skip(monkeypatch):
    """The probe runs in a child: a refused context or a crashed child is a reason, never a crash here."""
    import subprocess

    from FCDDetectLib.mrml import slice_views

    def answer(stdout, code=0):
        return lambda *args, **kwargs: subprocess.CompletedProcess(args, code, stdout, "Segmentation fault\n")

    monkeypatch.setattr(subprocess, "run", answer("FCD-OPENGL vtkEGLRenderWindow 0\n"))
    assert "no OpenGL context" in slice_views.opengl_problem()
    monkeypatch.setattr(subprocess, "run", answer("", code=-11))
    assert "could not open a render window (Segmentation fault)" in slice_views.opengl_problem()
    monkeypatch.setattr(subprocess, "run", answer("FCD-OPENGL vtkEGLRenderWindow 1\n"))
    assert slice_views.opengl_problem() is None
