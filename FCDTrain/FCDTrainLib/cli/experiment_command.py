"""``fcd experiment``: the paper's grid (depths x transfer strategies x modalities) and its tables.

Example:
    $ fcd experiment --data ds004199/ --out exp/ --depths 18 50 --pretrained none medicalnet23 \\
          --modalities flair --weights-dir medicalnet/
    {"paths": {"csv": "exp/results.csv", "markdown": "exp/results.md", ...}, ...}

Finished folds are skipped and unfinished ones resume, so the same command continues an
interrupted experiment. ``--executor ray`` runs each fold as a Ray task (docs/cluster.md):

    $ fcd experiment --data /shared/ds004199 --out /shared/exp --executor ray \\
          --ray-address head-node:6379 --gpus-per-run 1 --cpus-per-run 4
"""

from __future__ import annotations

import argparse
import os

from FCDDetectLib.choices import DEPTHS, INPUT_MODALITIES, MODALITIES, PRETRAINED_STRATEGIES, SUPERVISION
from FCDDetectLib.cli.executor_options import add_executor_options

from FCDTrainLib.cli.config_options import config_from_args
from FCDTrainLib.cli.train_command import add_training_options
from FCDTrainLib.run_folder.run_config import RunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``experiment`` sub-command."""
    parser = subparsers.add_parser(
        "experiment",
        help="run the grid of models x transfer strategies x modalities and write the paper's tables",
        description="One fcd train run per grid point under OUT/runs/, then OUT/results.csv, results.md "
        "(mean ± std over folds, paired t-tests against no transfer) and results.png.",
    )
    parser.add_argument("--out", required=True, help="experiment folder (created; reused to resume)")
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS), choices=DEPTHS,
                        help=f"ResNet depths (default: {' '.join(map(str, DEPTHS))})")
    parser.add_argument("--pretrained", nargs="+", default=list(PRETRAINED_STRATEGIES),
                        choices=PRETRAINED_STRATEGIES,
                        help=f"initialisations (default: {' '.join(PRETRAINED_STRATEGIES)})")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=INPUT_MODALITIES,
                        help=f"inputs (default: {' '.join(MODALITIES)})")
    parser.add_argument("--supervision", nargs="+", choices=SUPERVISION,
                        help="supervision axis: none (the paper), lesion (+ lesion head), or both to compare "
                        "them with paired t-tests on accuracy, Heat-Score and detection rate (default: the "
                        "--preset's, else none)")
    parser.add_argument("--weights-dir", help="folder with MedicalNet files under their official names "
                        "(resnet_18.pth, resnet_18_23dataset.pth, ...)")
    add_training_options(parser, single_run=False)
    add_executor_options(parser, unit="run")
    parser.set_defaults(func=run)


def supervisions_of(args: argparse.Namespace, base: RunConfig) -> list[str]:
    """The supervision axis: ``--supervision`` (each once), else the ``--preset``'s (``base``), else none.

    Example:
        >>> supervisions_of(argparse.Namespace(supervision=None), RunConfig.preset("lesion", data="d"))
        ['lesion']
    """
    return list(dict.fromkeys(args.supervision or [base.supervision]))


def run(args: argparse.Namespace) -> int:
    """Run the grid; prints the report paths and the summary table as JSON."""
    from FCDDetectLib.io.atomic_files import json_text
    from FCDDetectLib.io.output_folder import check_output_folder

    from FCDTrainLib.experiment.executors import make_executor
    from FCDTrainLib.experiment.paper_comparison import run_experiment
    from FCDTrainLib.run_folder.run_files import check_links
    from FCDTrainLib.run_folder.run_lock import RunLock
    from FCDTrainLib.run_folder.write_guard import guarded_writes

    base = config_from_args(args)
    executor = make_executor(args.executor, address=args.ray_address or (
        os.environ.get("RAY_ADDRESS") if args.executor == "ray" else None), gpus_per_run=args.gpus_per_task,
        cpus_per_run=args.cpus_per_task, max_retries=args.max_retries, device=base.device)
    with guarded_writes(args.out):  # a full disk, a name too long: one error line, no empty folder left
        check_output_folder(args.out, ("events.jsonl",))  # before the lock creates the folder
        check_links(args.out, "experiment folder", marker="events.jsonl")
        with RunLock(args.out):  # one writer per experiment folder
            result = run_experiment(base, args.out, depths=args.depths, pretrained=args.pretrained,
                                    modalities=args.modalities, weights_dir=args.weights_dir,
                                    progress=not args.no_progress, executor=executor,
                                    supervisions=supervisions_of(args, base))
    print(json_text(result))
    return 0
