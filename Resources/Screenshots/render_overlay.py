"""Render ``overlay.png``: FCD Detect's heatmap over its input, from the MRML scene's nodes.

Runs headless on the ``slicer-core`` wheel: a synthetic head with a planted lesion (the
test suite's planted-evidence model, trained in seconds, is the only thing taken from
``Testing/builders``) is loaded through Slicer's volumes logic, the lesion is imported as a
segmentation, :class:`DetectionLogic` makes the heatmap volume and results table, and the
figure is drawn from the nodes themselves (converted back through the MRML glue) by the
engine's one renderer, :func:`FCDDetectLib.outputs.overlay.render_overlay`, the same that
``fcd detect --png`` uses.

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


def main(out: Path) -> Path:
    import nibabel as nib
    import torch
    from FCDDetectLib.mrml.conversion import image_from_volume_node, mask_from_segment
    from FCDDetectLib.mrml.detection_logic import DetectionLogic
    from FCDDetectLib.outputs.overlay import detection_title, render_overlay

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
        nodes = DetectionLogic(lower_threshold=0.5).process([flair], bundle, method="gradcam", device="cpu",
                                                            segmentation_node=segmentation, segment_id=segment_id)

    image = image_from_volume_node(flair)
    heatmap = image_from_volume_node(nodes.heatmap_node)
    lesion = mask_from_segment(segmentation, segment_id, reference=image)
    return render_overlay(image, out, heatmap=heatmap.array, roi=lesion.array,
                          title=f"FCD Detect in Slicer: {detection_title(nodes.result)}")


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("overlay.png")))
