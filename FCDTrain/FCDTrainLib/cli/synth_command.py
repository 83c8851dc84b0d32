"""``fcd synth``: write a synthetic FCD-II cohort in the ds004199 layout; JSON summary on stdout.

Example:
    $ fcd synth --out cohort --subjects 20 --seed 1 --size small
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from FCDDetectLib.choices import SYNTH_RESCALES, SYNTH_SIZES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic FCD-II cohort (MNI152 anatomy, ds004199 layout)",
        description="Write a synthetic cohort of FCD-II patients and controls in the OpenNeuro ds004199 "
        "BIDS layout, with PNG overlays of a few subjects in OUT/overlays/.",
    )
    parser.add_argument("--out", required=True, help="new (or empty) output folder")
    parser.add_argument("--subjects", type=int, required=True, help="number of subjects (at least 2: one of each class)")
    parser.add_argument("--fcd-fraction", type=float, default=0.5, help="share of patients (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    parser.add_argument("--size", choices=SYNTH_SIZES, default="small",
                        help="voxel size: small ~3 mm (default, ~1 s/subject), full = real protocol (0.8-1 mm), "
                        "tiny ~6 mm (unit tests)")
    parser.add_argument("--subtlety", type=float, default=0.3,
                        help="0 = obvious lesions, 1 = hard to see (default 0.3)")
    parser.add_argument("--protocol-mix", type=float, default=None,
                        help="share of subjects on older protocols incl. thick-slice 2D FLAIR "
                        "(default 0.25 of each class; 0.5 of patients with --confound)")
    parser.add_argument("--confound", action="store_true",
                        help="reproduce the ds004199 confound: every control on the new protocol")
    parser.add_argument("--randomize", action="store_true",
                        help="draw every scan at random: tissue contrasts, voxel size and 2D slices in any plane, "
                        "bias field, noise, ringing, intensity scale/offset/type, skull present or removed, "
                        "position and obliquity; and each lesion's FCD-II signs (docs/data.md)")
    parser.add_argument("--rescans", type=int, default=None, metavar="N",
                        help="scan each subject N times (1-10) in the BIDS session layout ses-1..ses-N: same "
                        "anatomy and lesion, new noise, bias field, position and intensity scale")
    family = parser.add_argument_group("benchmark families (fixed changes to the standard cohort)")
    family.add_argument("--brain-extracted", action="store_true", help="skull and scalp removed (background 0)")
    family.add_argument("--brain-mask", action="store_true",
                        help="also write each image's brain mask (derivatives/synth-brainmask)")
    family.add_argument("--flair-2d", type=float, default=None, metavar="MM",
                        help="every FLAIR a 2D acquisition with MM-thick slices (axial, coronal or sagittal)")
    family.add_argument("--rescale", choices=SYNTH_RESCALES, default=None,
                        help="store intensities as floats 0-1 (unit) or integers 0-4095 (12bit)")
    family.add_argument("--separate-grids", action="store_true",
                        help="a sagittal T1 and an oblique (up to 20 degrees), off-centre FLAIR with other voxels")
    parser.add_argument("--overlays", type=int, default=3, help="PNG overlays to write (default 3)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from FCDDetectLib.io.output_folder import check_output_folder

    from FCDTrainLib.data.synth.variants import SynthVariant
    from FCDTrainLib.run_folder.write_guard import guarded_writes

    variant = SynthVariant(randomize=args.randomize, rescans=args.rescans, brain_extracted=args.brain_extracted,
                           brain_mask=args.brain_mask, flair_2d=args.flair_2d, rescale=args.rescale,
                           separate_grids=args.separate_grids)
    variant.check()  # bad options: one error line before anything is written
    with guarded_writes(args.out):  # a full disk: one error line; the cohort is written whole or not at all
        check_output_folder(args.out, ("participants.tsv",))  # before any subject is made
        summary = _synth(args, variant)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


def _synth(args: argparse.Namespace, variant: Any) -> Any:
    """Write the cohort (with a progress bar unless ``--quiet``); its summary."""
    import sys

    from tqdm import tqdm

    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:  # created on the first subject, so that bad options print only the error
            bar = tqdm(total=total, desc="synth", unit="subject", file=sys.stderr)
        bar.n = done
        bar.refresh()

    try:
        summary = synth_cohort(
            args.out, args.subjects, fcd_fraction=args.fcd_fraction, seed=args.seed, size=args.size,
            subtlety=args.subtlety, protocol_mix=args.protocol_mix, confound=args.confound,
            overlays=args.overlays, progress=progress, variant=variant,
        )
    finally:
        if bar is not None:
            bar.close()
    return summary
