"""``fcd audit``: label by acquisition protocol, and whether the protocol alone predicts the label.

Example:
    $ fcd audit --data ds004199 --format table
"""

from __future__ import annotations

import argparse
import json

from FCDTrainLib.data.audit import FACTORS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check whether the scanner protocol alone predicts the label (dataset confound)",
        description="Read a dataset (ds004199-style BIDS folder or CSV manifest), tabulate label by "
        "acquisition protocol and report the accuracy of a protocol-only classifier.",
    )
    parser.add_argument("--data", required=True, help="BIDS root (ds004199 layout) or CSV/TSV manifest")
    parser.add_argument("--by", choices=FACTORS, default="protocol",
                        help="protocol (T1 and FLAIR acq labels together, default) or one modality's acq label")
    parser.add_argument("--format", choices=("json", "table"), default="json", help="output format (default json)")
    parser.add_argument("--positive-label", action="append", default=[], metavar="NAME",
                        help="extra label name meaning patient/positive (repeatable)")
    parser.add_argument("--negative-label", action="append", default=[], metavar="NAME",
                        help="extra label name meaning control/negative (repeatable)")
    parser.add_argument("--margin", type=float, default=0.10,
                        help="warn when the protocol-only accuracy beats chance by this much (default 0.10)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from FCDTrainLib.data.audit import audit_dataset
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.data.labels import LabelNames

    names = LabelNames.with_extra(args.positive_label, args.negative_label)
    dataset = load_dataset(args.data, names)
    audit = audit_dataset(dataset, factor=args.by, margin=args.margin)
    if args.format == "table":
        summary = dataset.summary()
        print(f"{summary['subjects']} subjects ({summary['patients']} fcd, {summary['controls']} control), "
              f"{summary['with_roi']} with ROI, flags: {summary['flags'] or 'none'}")
        print(audit.format_table())
        for warning in dataset.warnings:
            print(f"note: {warning}")
    else:
        print(json.dumps({"dataset": dataset.summary(), "audit": audit.to_dict()}, indent=2))
    return 0
