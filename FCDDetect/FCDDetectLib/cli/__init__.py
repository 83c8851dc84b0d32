"""The ``fcd`` command line: one sub-command per module, JSON on stdout.

Each command module defines ``register(subparsers)`` (adds its parser and sets
``func``) and keeps heavy imports (torch, monai) inside the function it runs, so
``fcd --help`` is instant. Bad input (:class:`FCDInputError`) prints one line
``error: ...`` on stderr and exits with code 2.

Example:
    $ fcd detect --model model.fcdbundle --image sub-01_FLAIR.nii.gz --out result/
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from ..errors import FCDInputError

COMMAND_MODULES = (
    "FCDDetectLib.cli.detect_command",
    "FCDDetectLib.cli.heat_score_command",
    "FCDTrainLib.cli.synth_command",
    "FCDTrainLib.cli.audit_command",
    "FCDTrainLib.cli.demo_command",
    "FCDTrainLib.cli.train_command",
    "FCDTrainLib.cli.experiment_command",
    "FCDTrainLib.cli.evaluate_command",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``fcd`` parser with every sub-command registered."""
    parser = _Parser(prog="fcd", description="FCD-II detection, explanation and training.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fcd`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FCDInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
