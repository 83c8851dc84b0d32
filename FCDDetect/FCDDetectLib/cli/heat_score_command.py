"""``fcd heat-score``: the Heat-Score of a heatmap against a lesion outline.

Example:
    $ fcd heat-score --heatmap out/heatmap.nii.gz --roi sub-01_FLAIR_roi.nii.gz
    {"heat_score": 2.41, "roi_voxels": 812, "roi_resampled": false}
    $ fcd heat-score --heatmap out/heatmap.nii.gz --roi Segmentation.seg.nrrd --roi-segment lesion
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``heat-score`` sub-command."""
    parser = subparsers.add_parser(
        "heat-score",
        help="Heat-Score of a heatmap against a ROI (paper section 2.5)",
        description="HS = (mean H in ROI - mean H in background) / std H in background, "
        "H = heatmap min-max normalised over its grid. A ROI on another grid is resampled.",
    )
    parser.add_argument("--heatmap", required=True, help="heatmap volume (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("--roi", required=True, help="lesion outline (mask, labelmap or Slicer .seg.nrrd)")
    parser.add_argument("--roi-segment", help="segment of a .seg.nrrd ROI (name, ID or label value), or a "
                        "labelmap's label value (a .seg.nrrd with one segment needs none)")
    parser.add_argument("--brain-mask", help="brain mask: background = inside mask and outside ROI")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the Heat-Score as JSON."""
    from FCDDetectLib.io.image_io import load_image, load_mask
    from FCDDetectLib.maps.heat_score import heat_score_images

    heatmap = load_image(args.heatmap)
    roi = load_mask(args.roi, segment=args.roi_segment)
    mask = load_mask(args.brain_mask) if args.brain_mask else None
    result = heat_score_images(heatmap, roi, mask, roi_name=args.roi, mask_name=args.brain_mask or "brain mask")
    print(
        json.dumps(
            {
                "heat_score": result.heat_score,
                "roi_voxels": result.roi_voxels,
                "roi_resampled": result.roi_resampled,
                "background_voxels": result.background_voxels,
            }
        )
    )
    return 0
