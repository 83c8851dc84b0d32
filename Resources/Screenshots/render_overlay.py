"""Render ``overlay.png``: FCD Detect's heatmap over its input, from the MRML scene's nodes.

Runs headless on the ``slicer-core`` wheel: a synthetic head with a planted lesion (the
test suite's planted-evidence model, trained in seconds) is loaded through Slicer's volumes
logic, the lesion is imported as a segmentation, :class:`DetectionLogic` makes the heatmap
volume and results table, and the figure is drawn from the nodes themselves: the input's
and heatmap's voxel arrays (``arrayFromVolume``), the heatmap display node's Iron colour
table, window and lower threshold, and the numbers of the table node.

Usage (from the repository root)::

    .venv/bin/python Resources/Screenshots/render_overlay.py [OUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "FCDDetect"), str(ROOT / "FCDTrain")]


def iron_colormap(display_node):
    """The display node's colour table (Iron) as a matplotlib colormap."""
    from matplotlib.colors import ListedColormap

    table = display_node.GetColorNode().GetLookupTable()
    return ListedColormap([table.GetTableValue(i)[:3] for i in range(table.GetNumberOfTableValues())])


def main(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    import slicer
    import torch
    from FCDDetectLib.mrml.detection_logic import DetectionLogic

    from Testing.builders.planted_model import save_planted_bundle, train_planted_model
    from Testing.builders.slicer_fixtures import make_slicer_app

    torch.set_num_threads(1)
    planted = train_planted_model()
    centre = tuple(int(round(0.62 * n)) for n in planted.shape)
    volume, roi = planted.make_volume(center=centre, seed=7), planted.blob_mask(centre)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -2.0 * np.asarray(planted.shape)
    app = make_slicer_app()
    with tempfile.TemporaryDirectory() as folder:
        nib.save(nib.Nifti1Image(volume, affine), f"{folder}/flair.nii.gz")
        nib.save(nib.Nifti1Image(roi.astype(np.uint8), affine), f"{folder}/lesion.nii.gz")
        bundle = save_planted_bundle(planted, Path(folder) / "planted.fcdbundle")
        flair = app.load_volume(f"{folder}/flair.nii.gz", "FLAIR")
        segmentation = app.segmentation_from_labelmap(app.load_volume(f"{folder}/lesion.nii.gz", "L", True), "Lesion")
        segment_id = segmentation.GetSegmentation().GetNthSegmentID(0)
        result = DetectionLogic(lower_threshold=0.5).process([flair], bundle, method="gradcam", device="cpu",
                                                             segmentation_node=segmentation, segment_id=segment_id)

    background = slicer.util.arrayFromVolume(flair)  # (K, J, I)
    heat = slicer.util.arrayFromVolume(result.heatmap_node)
    display = result.heatmap_node.GetDisplayNode()
    cmap = iron_colormap(display)
    low, window = display.GetLowerThreshold(), (display.GetWindowLevelMin(), display.GetWindowLevelMax())
    table = result.table_node.GetTable()
    values = {table.GetColumn(i).GetName(): table.GetColumn(i).GetValue(0) for i in range(table.GetNumberOfColumns())}
    k, j = centre[2], centre[1]
    views = [("axial", background[k], heat[k], roi[:, :, k].T), ("coronal", background[:, j, :], heat[:, j, :],
                                                                 roi[:, j, :].T)]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.6), facecolor="black")
    for ax, (title, grey, hot, lesion) in zip(axes, views, strict=True):
        ax.imshow(grey, cmap="gray", origin="lower")
        shown = np.ma.masked_less(hot, low)
        ax.imshow(shown, cmap=cmap, vmin=window[0], vmax=window[1], alpha=0.6, origin="lower")
        ax.contour(lesion, levels=[0.5], colors="#38d9ff", linewidths=1.2, origin="lower")
        ax.set_title(title, color="white", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"FCD Detect: {values['prediction'].upper()}  p(FCD) = {values['probability']:.2f}   "
                 f"Heat-Score = {values['heat_score']:.2f}   ({values['method']}, Iron, lesion outline in cyan)",
                 color="white", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, facecolor="black")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("overlay.png")))
