"""``make screenshots``: the Slicer pictures of README, the manual and the Extensions Index, drawn by
Slicer's own slice views from a real detection of the FCD sample.

The FCD sample (``FCDDetect/Resources/Sample``: synthetic scan, planted lesion, tiny model) is loaded
through Slicer's volumes logic, its lesion imported as a segmentation (outline shown, as FCD Detect's
*Lesion outline*), detected by :class:`FCDDetectLib.mrml.detection_logic.DetectionLogic` with the
outline (Heat-Score), shown as FCD Detect shows it (``show_in_slice_views``), moved through cluster 1
(its markup is drawn), and rendered offscreen by :class:`FCDDetectLib.mrml.slice_views.SliceViews`,
the renderer the tests check pixel by pixel. Writes:

- ``Resources/Screenshots/slicer-views.png`` (README, the Extensions Index screenshot) and
  ``docs/images/slicer-views.png``: Red, Yellow and Green views, heatmap in Iron over the scan;
- ``docs/images/slicer-lesion-map.png``: the same views with the lesion map (the *Overlay* switch);
- ``FCDDetect/Resources/Sample/fcd-sample.png``: the Sample Data thumbnail (Red view of the scan).

Usage (from the repository root)::

    .venv/bin/python Resources/Screenshots/render_slicer_views.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "FCDDetect")]

VIEW_SIZE = (400, 400)
DISPLAY_THRESHOLD = 0.5  # "Hide below": the sample model's heatmap is broad
OPACITY = 0.5
FIT_MARGIN = 1.15  # zoomed out a little: the synthetic head fills its volume to the edges
VIEW_COLOURS = {"Red": (243, 74, 51), "Yellow": (237, 213, 76), "Green": (110, 176, 75)}  # Slicer's view bars
LESION_OUTLINE = (0.0, 0.9, 0.9)  # cyan


def _with_bar(name: str, pixels: np.ndarray, height: int = 6) -> np.ndarray:
    """The view with Slicer's coloured bar on top (the view's colour)."""
    bar = np.zeros((height, pixels.shape[1], 3), dtype=np.uint8)
    bar[:] = VIEW_COLOURS[name]
    return np.concatenate([bar, pixels], axis=0)


def _row(views, names=("Red", "Yellow", "Green")) -> np.ndarray:
    from FCDDetectLib.mrml.slice_views import side_by_side

    pixels = views.render()
    return side_by_side([_with_bar(name, pixels[name]) for name in names])


def main() -> list[Path]:
    import torch
    from FCDDetectLib.mrml.detection_logic import DetectionLogic
    from FCDDetectLib.mrml.detection_nodes import cluster_jump_point
    from FCDDetectLib.mrml.offscreen_scene import OffscreenScene
    from FCDDetectLib.mrml.slice_views import SliceViews, opengl_problem, write_png
    from FCDDetectLib.slicer_support.detect_presenter import LESION_MAP_OVERLAY, DetectPresenter
    from FCDDetectLib.slicer_support.sample_data import LESION_NODE_NAME, SCAN_NODE_NAME, sample_files

    problem = opengl_problem()
    if problem:
        raise SystemExit(f"error: cannot render Slicer's views here: {problem}")
    torch.set_num_threads(2)
    files = sample_files()
    app = OffscreenScene.create()
    scan = app.load_volume(files.scan, SCAN_NODE_NAME)
    labelmap = app.load_volume(files.lesion, f"{LESION_NODE_NAME} label map", labelmap=True)
    lesion = app.segmentation_from_labelmap(labelmap, LESION_NODE_NAME)
    app.scene.RemoveNode(labelmap)
    segment_id = lesion.GetSegmentation().GetNthSegmentID(0)
    lesion.GetSegmentation().GetSegment(segment_id).SetColor(*LESION_OUTLINE)
    lesion.CreateDefaultDisplayNodes()
    outline = lesion.GetDisplayNode()
    outline.SetVisibility2DFill(False)
    outline.SetSliceIntersectionThickness(2)

    logic = DetectionLogic(lower_threshold=DISPLAY_THRESHOLD, opacity=OPACITY)
    out = logic.process([scan], files.bundle, device="cpu", segmentation_node=lesion, segment_id=segment_id)
    print(out.summary())
    written: list[Path] = []
    with SliceViews(app.app_logic, size=(128, 128), views=(("Thumbnail", "Axial"),)) as thumbnail:
        thumbnail.show(scan)
        thumbnail.fit(margin=FIT_MARGIN)
        written.append(write_png(thumbnail.render()["Thumbnail"], files.thumbnail))
    with SliceViews(app.app_logic, size=VIEW_SIZE) as views:
        logic.show_in_slice_views(scan, out.heatmap_node)
        views.fit(margin=FIT_MARGIN)
        views.jump_to(cluster_jump_point(out.clusters_table_node, 0), centred=False)  # whole head, through cluster 1
        heatmap = _row(views)
        for path in (ROOT / "Resources" / "Screenshots" / "slicer-views.png", ROOT / "docs" / "images" / "slicer-views.png"):
            written.append(write_png(heatmap, path))
        logic.show_in_slice_views(scan, DetectPresenter.overlay_node(out, LESION_MAP_OVERLAY))
        written.append(write_png(_row(views), ROOT / "docs" / "images" / "slicer-lesion-map.png"))
    app.scene.Clear(1)
    return written


if __name__ == "__main__":
    for path in main():
        print(path)
