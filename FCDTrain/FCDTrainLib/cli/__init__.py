"""``fcd`` sub-commands for data and training.

The engine's ``fcd`` finds them through the ``fcd.commands`` entry point
``FCDTrainLib.cli:register_commands`` (declared in ``pyproject.toml``); the engine never
imports this package by name. :func:`main` runs ``fcd`` with these commands passed
explicitly, for Pythons without the package metadata (Slicer).

Example:
    $ python -c "from FCDTrainLib.cli import main; main(['train', '--help'])"
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

COMMAND_MODULES = (
    "FCDTrainLib.cli.synth_command",
    "FCDTrainLib.cli.audit_command",
    "FCDTrainLib.cli.demo_command",
    "FCDTrainLib.cli.train_command",
    "FCDTrainLib.cli.experiment_command",
    "FCDTrainLib.cli.evaluate_command",
)
"""The trainer's command modules, in ``fcd --help`` order."""


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add every trainer sub-command; a module that fails to import raises naming it."""
    from FCDDetectLib.cli.registry import register_module

    for module_name in COMMAND_MODULES:
        register_module(subparsers, module_name)


def main(argv: Sequence[str] | None = None) -> int:
    """``fcd`` with the trainer's commands registered explicitly (no metadata needed)."""
    from FCDDetectLib.cli import main as engine_main

    return engine_main(argv, extra=(register_commands,))
