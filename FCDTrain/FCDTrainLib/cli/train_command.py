"""``fcd train``: fold-based training of one model x strategy x modality, resumable.

Example:
    $ fcd train --data ds004199/ --out runs/r18-flair --depth 18 --pretrained medicalnet23 \\
          --weights resnet_18_23dataset.pth --modality flair --folds 5
    {"accuracy": {"mean": 0.78, "std": 0.06, "n": 5}, ...}

Run the same command again after an interruption: it continues from the last
completed epoch. ``RUN/events.jsonl`` reports progress line by line. Every training
option comes from :class:`~FCDTrainLib.run_folder.run_config.RunConfig` (names, choices, defaults).
"""

from __future__ import annotations

import argparse

from FCDTrainLib.cli.config_options import SINGLE_RUN_FIELDS, add_config_options, config_from_args


def add_training_options(parser: argparse.ArgumentParser, single_run: bool = True) -> None:
    """RunConfig's options (all, or without the single-run ones for ``fcd experiment``) and ``--no-progress``."""
    add_config_options(parser, exclude=() if single_run else SINGLE_RUN_FIELDS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier fold by fold (resumable), with test metrics and Heat-Scores",
        description="Subject-level stratified k-fold training (paper section 2.3). Writes RUN/config.json, "
        "RUN/events.jsonl and per fold RUN/fold-K/{model.fcdbundle,predictions.csv,metrics.json}. "
        "Run the same command again to resume.",
    )
    parser.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    parser.add_argument("--fold", type=int, help="run only fold K (0-based)")
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the run; prints the summary as JSON."""
    from FCDDetectLib.io.atomic_files import json_text
    from FCDDetectLib.io.output_folder import check_output_folder

    from FCDTrainLib.experiment.train_run import RUN_FILES, train_run
    from FCDTrainLib.run_folder.run_files import check_links
    from FCDTrainLib.run_folder.run_lock import RunLock
    from FCDTrainLib.run_folder.write_guard import guarded_writes

    config = config_from_args(args)
    with guarded_writes(args.out):  # a full disk: one error line, no empty folder left behind
        check_output_folder(args.out, RUN_FILES)  # before the lock creates the folder
        check_links(args.out)  # before the lock writes into it
        with RunLock(args.out, fold=args.fold):  # one writer per run folder (or per fold)
            summary = train_run(config, args.out, only_fold=args.fold, progress=not args.no_progress)
    printable = {k: v for k, v in summary.items() if k != "folds"}
    printable["folds"] = [{k: f.get(k) for k in ("fold", "accuracy", "roc_auc", "heat_score", "best_epoch")}
                          for f in summary.get("folds", [])]
    print(json_text(printable))
    return 0


__all__ = ["add_training_options", "register", "run"]
