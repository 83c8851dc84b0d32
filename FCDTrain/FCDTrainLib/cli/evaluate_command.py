"""``fcd evaluate``: recompute a finished run's metrics, or test it on an external dataset.

Example:
    $ fcd evaluate --run runs/r18-flair                       # the run's own test folds
    $ fcd evaluate --run runs/r18-flair --data other-centre/  # every subject through every fold
"""

from __future__ import annotations

import argparse
import json

from FCDDetectLib.choices import DEVICES, EXPLANATION_LAYERS, EXPLANATION_METHODS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    from FCDDetectLib.explain.localized_smoothgrad import DEFAULT_NOISE_SD, DEFAULT_NT_SAMPLES
    parser = subparsers.add_parser(
        "evaluate",
        help="recompute a run's test metrics, or evaluate its fold models on an external dataset",
        description="Without --data: each fold's bundle on its own test fold. With --data: every subject "
        "through every fold's bundle, per fold and as an ensemble (mean probability; mean Heat-Score). "
        "Writes predictions.csv and metrics.json to --out (default RUN/evaluation[-NAME]).",
    )
    parser.add_argument("--run", required=True, help="a training run folder (fcd train --out)")
    parser.add_argument("--data", help="external dataset folder or CSV manifest")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--method", choices=EXPLANATION_METHODS,
                        help="explanation method for the Heat-Score and clusters (default: the run's)")
    parser.add_argument("--layer", choices=EXPLANATION_LAYERS,
                        help="network stage of the CAM methods (default: the bundle's, else layer4)")
    parser.add_argument("--modality-contributions", action="store_true",
                        help="localized signed SmoothGrad over the run's test patients (ROI components), TP vs FN: "
                        "OUT/modality-contributions/{contributions.csv,.png,.json} with a FLAIR vs T1 Wilcoxon test")
    parser.add_argument("--reports", action="store_true",
                        help="write the PDF report of every test subject into OUT/reports/<subject>/")
    parser.add_argument("--nt-samples", type=int, default=DEFAULT_NT_SAMPLES,
                        help=f"SmoothGrad noisy copies (default {DEFAULT_NT_SAMPLES})")
    parser.add_argument("--noise-sd", type=float, default=DEFAULT_NOISE_SD,
                        help=f"SmoothGrad noise sd as a fraction of the input's value range (default {DEFAULT_NOISE_SD})")
    parser.add_argument("--allow-missing", action="store_true",
                        help="evaluate the folds that have a bundle even if others have none (default: error)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; prints the report as JSON."""
    from FCDTrainLib.run_folder.write_guard import guarded_writes

    with guarded_writes(args.out if args.out is not None else args.run):  # a full disk: one error line
        report = _evaluate(args)
    print(json.dumps(report, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> dict:
    if args.modality_contributions or args.reports:
        from FCDDetectLib.errors import FCDInputError

        from FCDTrainLib.experiment.heldout_saliency import cohort_saliency

        if args.data is not None:
            raise FCDInputError("--modality-contributions / --reports work on the run's own test folds, not --data")
        return cohort_saliency(args.run, contributions=args.modality_contributions, reports=args.reports,
                               out=args.out, device=args.device, method=args.method,
                               nt_samples=args.nt_samples, noise_sd=args.noise_sd)
    from FCDTrainLib.experiment.evaluate_run import evaluate_run

    return evaluate_run(args.run, data=args.data, out=args.out, device=args.device, method=args.method,
                        allow_missing=args.allow_missing, layer=args.layer)
