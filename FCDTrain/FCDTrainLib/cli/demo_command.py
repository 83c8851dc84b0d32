"""``fcd demo``: synthetic cohort -> training -> held-out detection, on the CPU in minutes.

Example:
    $ fcd demo --out demo-output
"""

from __future__ import annotations

import argparse

from FCDDetectLib.choices import DEVICES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    from FCDTrainLib.experiment.demo import DemoOptions
    from FCDTrainLib.run_folder.run_config import PRESETS

    parser = subparsers.add_parser(
        "demo",
        help="synthetic cohort, train a ResNet-18, detect on held-out subjects (about 6 min on 2 CPU cores)",
        description="Writes OUT/cohort, OUT/run, OUT/model.fcdbundle, OUT/subjects/<id>/{heatmap.nii.gz,"
        "result.json,overlay.png} and OUT/summary.json (with the seed, torch and BLAS build). Training uses "
        "RunConfig's preset 'demo'. Resumes when run again.",
    )
    parser.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    parser.add_argument("--subjects", type=int, default=DemoOptions.subjects,
                        help=f"cohort size (default {DemoOptions.subjects})")
    parser.add_argument("--max-epochs", type=int, default=PRESETS["demo"]["max_epochs"],
                        help=f"training epochs at most (default {PRESETS['demo']['max_epochs']})")
    parser.add_argument("--seed", type=int, default=DemoOptions.seed,
                        help=f"seed of the cohort, folds and training (default {DemoOptions.seed})")
    parser.add_argument("--device", default=DemoOptions.device, choices=DEVICES)
    parser.add_argument("--lesion", action="store_true",
                        help="also train the lesion-supervised model on subtler lesions (--subtlety "
                        f"{DemoOptions.lesion_subtlety}) and report both side by side (much longer on a CPU)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the held-out summary."""
    from FCDDetectLib.io.atomic_files import json_text

    from FCDTrainLib.data.seeds import check_seed
    from FCDTrainLib.experiment.demo import DemoOptions, run_demo
    from FCDTrainLib.run_folder.write_guard import guarded_writes

    options = DemoOptions(subjects=args.subjects, seed=check_seed(args.seed), device=args.device,
                          training={"max_epochs": args.max_epochs}, lesion=bool(args.lesion))
    with guarded_writes(args.out):  # a full disk: one error line, no empty folder left behind
        summary = run_demo(args.out, options)
    printed = {"held_out": summary["held_out"], "seed": summary["seed"], "seconds": summary["seconds"],
               "out": args.out}
    if "side_by_side" in summary:
        printed["side_by_side"] = {k: {m: v.get(m) for m in ("accuracy", "lesion_detection_rate", "fp_per_control",
                                                            "peak_in_roi_rate", "lesion_map_heat_score")}
                                   for k, v in summary["side_by_side"].items()}
    print(json_text(printed))
    return 0
