"""``fcd train``: fold-based training of one model x strategy x modality, resumable.

Example:
    $ fcd train --data ds004199/ --out runs/r18-flair --depth 18 --pretrained medicalnet23 \\
          --weights resnet_18_23dataset.pth --modality flair --folds 5
    {"accuracy": {"mean": 0.78, "std": 0.06, "n": 5}, ...}

Run the same command again after an interruption: it continues from the last
completed epoch. ``RUN/events.jsonl`` reports progress line by line.
"""

from __future__ import annotations

import argparse
import json

PRETRAINED_CHOICES = ["none", "medicalnet8", "medicalnet23"]


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``fcd train`` and ``fcd experiment`` (hyper-parameters, grid, data)."""
    from ..run_config import RunConfig

    d = RunConfig(data="")
    parser.add_argument("--geometry", default=d.geometry, choices=["paper", "medicalnet"],
                        help="network geometry (default: paper, section 2.2)")
    parser.add_argument("--widen-factor", type=float, default=d.widen_factor,
                        help="scale of the stage widths (64..512); 1.0 = standard ResNet, <1 for quick CPU runs")
    parser.add_argument("--folds", type=int, default=d.folds, help="number of folds (default: 5)")
    parser.add_argument("--max-epochs", type=int, default=d.max_epochs, help="epoch limit per fold (default: 100)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of folds, initialisation, order, augmentation")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="default: 4")
    parser.add_argument("--patience", type=int, default=d.patience,
                        help="ReduceLROnPlateau patience in epochs (default: 5; factor 0.1)")
    parser.add_argument("--lr-factor", type=float, default=d.lr_factor, help=argparse.SUPPRESS)
    parser.add_argument("--early-stop-patience", type=int, default=d.early_stop_patience,
                        help="stop after this many epochs without a lower validation loss (default: 10)")
    parser.add_argument("--spacing", type=float, nargs=3, default=d.spacing, metavar=("X", "Y", "Z"),
                        help="model grid spacing in mm (default: 2 2 2)")
    parser.add_argument("--shape", type=int, nargs=3, default=d.shape, metavar=("X", "Y", "Z"),
                        help="model grid shape in voxels (default: 96 112 96)")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction,
                        help="validation part of each fold's training subjects (default: 0.2)")
    parser.add_argument("--rotation", type=float, default=d.rotation_degrees,
                        help="random rotation range in degrees (default: 15; 0 turns it off)")
    parser.add_argument("--shift", type=float, default=d.shift_mm, metavar="MM",
                        help="random translations up to +/- MM along each axis (default: 0, off)")
    parser.add_argument("--flip", action="store_true",
                        help="mirror half of the training volumes left-right (default: off)")
    parser.add_argument("--stratify-protocol", action="store_true",
                        help="stratify folds by label and scanner protocol")
    parser.add_argument("--protocol", help="keep only subjects of this protocol (see fcd audit)")
    parser.add_argument("--use-split", action="store_true",
                        help="honour the dataset's split column: 'test' subjects form a fixed test set")
    parser.add_argument("--finetune-all", action="store_true",
                        help="with MedicalNet weights, train every layer (default: only layer4 and fc)")
    parser.add_argument("--method", default=d.explain_method, choices=["gradcam", "gradcam++", "smoothgrad"],
                        help="explanation method of the Heat-Score (default: gradcam)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, **overrides):
    """A :class:`~FCDTrainLib.run_config.RunConfig` from parsed options (+ overrides)."""
    from ..run_config import RunConfig

    values = dict(
        data=str(args.data), geometry=args.geometry, widen_factor=args.widen_factor, folds=args.folds, max_epochs=args.max_epochs,
        device=args.device, seed=args.seed, lr=args.lr, batch_size=args.batch_size, patience=args.patience,
        lr_factor=args.lr_factor, early_stop_patience=args.early_stop_patience,
        spacing=[float(s) for s in args.spacing], shape=[int(s) for s in args.shape],
        val_fraction=args.val_fraction, rotation_degrees=args.rotation,
        shift_mm=args.shift, flip=bool(args.flip),
        stratify_protocol=bool(args.stratify_protocol), protocol=args.protocol, use_split=bool(args.use_split),
        finetune_all=bool(args.finetune_all), explain_method=args.method,
    )
    values.update(overrides)
    return RunConfig(**values)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier fold by fold (resumable), with test metrics and Heat-Scores",
        description="Subject-level stratified k-fold training (paper section 2.3). Writes RUN/config.json, "
        "RUN/events.jsonl and per fold RUN/fold-K/{model.fcdbundle,predictions.csv,metrics.json}. "
        "Run the same command again to resume.",
    )
    parser.add_argument("--data", required=True, help="dataset folder (ds004199 layout) or CSV manifest")
    parser.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    parser.add_argument("--depth", type=int, default=18, choices=[18, 34, 50])
    parser.add_argument("--pretrained", default="none", choices=PRETRAINED_CHOICES,
                        help="initialisation: none (random), medicalnet8 or medicalnet23 (needs --weights)")
    parser.add_argument("--weights", help="MedicalNet checkpoint (.pth) matching --depth and --pretrained")
    parser.add_argument("--modality", default="flair", choices=["flair", "t1", "t1+flair"])
    parser.add_argument("--fold", type=int, help="run only fold K (0-based)")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the run; prints the summary as JSON."""
    from ..run_lock import RunLock
    from ..train_run import train_run

    config = config_from_args(args, depth=args.depth, pretrained=args.pretrained, weights=args.weights,
                              modality=args.modality)
    from pathlib import Path

    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.output_set import check_output_folder

    from ..train_run import RUN_FILES

    check_output_folder(args.out, RUN_FILES)  # before the lock creates the folder
    fresh = not Path(args.out).exists()
    try:
        with RunLock(args.out, fold=args.fold):  # one writer per run folder (or per fold)
            summary = train_run(config, args.out, only_fold=args.fold, progress=not args.no_progress)
    except FCDInputError:
        if fresh and Path(args.out).is_dir() and not any(Path(args.out).iterdir()):
            Path(args.out).rmdir()  # a refused run leaves nothing, not even the lock's folder
        raise
    printable = {k: v for k, v in summary.items() if k != "folds"}
    printable["folds"] = [{k: f.get(k) for k in ("fold", "accuracy", "roc_auc", "heat_score", "best_epoch")}
                          for f in summary.get("folds", [])]
    print(json.dumps(printable, indent=2))
    return 0
