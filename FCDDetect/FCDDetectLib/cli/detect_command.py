"""``fcd detect``: classify a scan, write its heatmap and result.json (and overlay.png with ``--png``).

Example:
    $ fcd detect --model model.fcdbundle --image sub-01_FLAIR.nii.gz \\
          --roi sub-01_FLAIR_roi.nii.gz --method gradcam --out out/
    {"probability": 0.91, "prediction": "fcd", "heat_score": 2.4, ...}
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` sub-command."""
    parser = subparsers.add_parser(
        "detect",
        help="classify a scan, explain it (heatmap) and score the explanation",
        description="Writes OUT/heatmap.nii.gz (on the first image's grid, float32 in [0, 1]) "
        "and OUT/result.json, and prints the result as JSON.",
    )
    parser.add_argument("--model", required=True, help="model bundle folder (*.fcdbundle)")
    parser.add_argument(
        "--image", action="append", required=True, help="input image; repeat in the model's modality order"
    )
    parser.add_argument("--roi", help="lesion outline (mask) for the Heat-Score; any grid")
    parser.add_argument("--brain-mask", help="brain mask restricting the Heat-Score background")
    parser.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++", "smoothgrad"])
    parser.add_argument("--target-class", default="fcd", help="class the heatmap explains (default: fcd)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--png", action="store_true",
                        help="also write OUT/overlay.png: axial, coronal, sagittal slices through the heatmap peak "
                        "with the heatmap over the first image and the ROI outline")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run detection; bad input raises FCDInputError before anything is written."""
    from ..detect import detect, write_detection

    result = detect(
        args.model,
        args.image,
        roi=args.roi,
        brain_mask=args.brain_mask,
        method=args.method,
        device=args.device,
        target_class=args.target_class,
    )
    write_detection(result, args.out)
    if args.png:
        from pathlib import Path

        from ..image_io import load_image, load_mask
        from ..overlay import render_detection

        render_detection(result, load_image(args.image[0]), Path(args.out) / "overlay.png",
                         roi=load_mask(args.roi) if args.roi else None)
    print(json.dumps(result.to_json(), indent=2))
    return 0
