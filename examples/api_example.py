"""The README's Python API example: detection on a demo subject (run `make demo` first).

Usage:
    .venv/bin/python examples/api_example.py
"""

from pathlib import Path

from FCDDetectLib import (
    detect,
    heat_score_images,
    load_image,
    load_mask,
    read_bundle_metadata,
    write_detection,
)

bundle = Path("demo-output/model.fcdbundle")
meta = read_bundle_metadata(bundle)                 # JSON only, no torch needed
print(meta.name, meta.depth, meta.modalities, meta.target_spacing, meta.target_shape)

subject = sorted(Path("demo-output/subjects").iterdir())[0].name
anat = Path("demo-output/cohort") / subject / "anat"
flair = next(anat.glob("*_FLAIR.nii.gz"))
roi = next(anat.glob("*_FLAIR_roi.nii.gz"), None)   # controls have no ROI

result = detect(bundle, [flair], roi=roi, method="gradcam", device="auto")
print(result.prediction, round(result.probability, 3), result.heat_score)
print(result.heatmap.shape, result.affine)          # the FLAIR's own grid
write_detection(result, Path("demo-output/api-example") / subject)

# Any heatmap against any outline, with or without a brain mask:
if roi is not None:
    score = heat_score_images(load_image(Path("demo-output/api-example") / subject / "heatmap.nii.gz"),
                              load_mask(roi))
    print(score.heat_score, score.roi_voxels, score.roi_resampled)
