"""Render ``report-page.png``: a cluster page of the per-subject PDF report.

A T1 + FLAIR subject whose only evidence is a bright blob in FLAIR (the test suite's
two-channel planted model, trained in seconds; ``Testing/builders/planted_channels.py``)
goes through ``fcd detect`` itself (``detect(..., localized_smoothgrad=True)``) and
:func:`FCDDetectLib.outputs.pdf_report.write_report`; the first cluster page is copied to OUT.

Usage (from the repository root)::

    .venv/bin/python Resources/Screenshots/render_report_page.py [OUT.png]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "FCDDetect"), str(ROOT / "FCDTrain")]


def main(out_png: str) -> None:
    from FCDDetectLib.choices import MODALITIES
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.io.image_io import save_image
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.outputs.pdf_report import write_report

    from Testing.builders.planted_channels import train_two_channel_model

    planted = train_two_channel_model(contrast=45.0, seed=1)
    centre = (16, 16, 16)  # a layer4 cell centre (cells sit on voxels 8k)
    volumes = planted.make_volumes(centre, seed=8)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -64.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = BundleMetadata(depth=18, geometry="medicalnet", modalities=list(MODALITIES),
                              target_spacing=[4.0, 4.0, 4.0], target_shape=list(planted.shape), name="planted-t1flair",
                              training={"source": "Testing/builders/planted_channels.py (planted FLAIR blob)",
                                        "steps": 80, "widen_factor": 0.125},
                              metrics={"planted_accuracy": planted.accuracy})
        bundle = save_bundle(folder / "planted.fcdbundle", planted.model, meta)
        paths = []
        for name, volume in zip(("T1w", "FLAIR"), volumes, strict=True):
            paths.append(folder / f"sub-00001_{name}.nii.gz")
            save_image(paths[-1], volume, affine)
        roi = folder / "sub-00001_FLAIR_roi.nii.gz"
        save_image(roi, planted.blob_mask(centre), affine)
        # Grad-CAM first; a model trained for seconds may not localise with it, then the voxel-fine
        # SmoothGrad map (the first method whose top cluster holds the blob centre is shown).
        for method in ("gradcam", "smoothgrad"):
            result = detect(bundle, paths, roi=roi, device="cpu", method=method, localized_smoothgrad=True)
            from FCDDetectLib.maps.clusters import find_clusters

            clusters = find_clusters(result.heatmap, result.affine, image=volumes[0])
            if clusters.clusters and clusters.labels[centre] == 1 and clusters.clusters[0].volume_mm3 < 40000:
                break
        files = write_report(result, paths, folder / "report", roi=roi)
        shutil.copyfile(next(p.png for p in files.pages if p.kind == "cluster"), out_png)
        print(out_png, f"p(FCD)={result.probability:.3f}", [r.to_json()["modalities"] for r in result.saliency.regions])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "Resources" / "Screenshots" / "report-page.png"))
