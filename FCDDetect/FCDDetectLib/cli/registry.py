"""Where ``fcd`` finds its sub-commands: the engine's own list plus entry points.

A package adds sub-commands by declaring, in its distribution metadata, an entry point
in the group ``fcd.commands`` whose object is a function ``register(subparsers)``
(it adds one or more sub-parsers). This project's ``pyproject.toml`` declares the
trainer's this way (``NAME = "package.module:function"``)::

    [project.entry-points."fcd.commands"]
    train = "<trainer package>.cli:register_commands"

Where no installed distribution declares the group (a source checkout on
``PYTHONPATH``, or an editable install made before the group existed), the same table
is read from the ``pyproject.toml`` of the source tree this package sits in: the one
declaration, not a second list. Inside Slicer, which installs no metadata, the trainer
module starts ``fcd`` through its own ``cli.main``, which passes its commands explicitly
(``extra=`` of :func:`FCDDetectLib.cli.main`).

An entry point (or command module) that fails to import is a :class:`CommandLoadError`
naming it, never a silently missing sub-command.

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> register_commands(sub, entry_points=[])  # engine commands only
    ['detect', 'heat-score']
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ENTRY_POINT_GROUP = "fcd.commands"
ENGINE_COMMANDS = (
    "FCDDetectLib.cli.detect_command",
    "FCDDetectLib.cli.heat_score_command",
)
"""Command modules of the engine itself (each has ``register(subparsers)``)."""

Register = Callable[[argparse._SubParsersAction], object]


class CommandLoadError(RuntimeError):
    """A sub-command module or ``fcd.commands`` entry point failed to import or register."""


def _source_tree_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The ``fcd.commands`` table of the ``pyproject.toml`` beside this source tree, if any."""
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    if not pyproject.is_file() or sys.version_info < (3, 11):
        return []
    import tomllib

    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CommandLoadError(f"{pyproject}: cannot read the {ENTRY_POINT_GROUP} entry points: {error}") from error
    group = table.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    return [importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in group.items()]


def discover_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Installed ``fcd.commands`` entry points; the source tree's table when none is installed."""
    installed = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    unique = {(ep.name, ep.value): ep for ep in installed}
    return list(unique.values()) or _source_tree_entry_points()


def register_module(subparsers: argparse._SubParsersAction, module_name: str) -> None:
    """Import ``module_name`` and call its ``register(subparsers)``; errors name the module."""
    try:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    except CommandLoadError:
        raise
    except Exception as error:  # any import/registration failure must name the module
        raise CommandLoadError(f"fcd sub-command module {module_name!r} failed to load: "
                               f"{type(error).__name__}: {error}") from error


def register_commands(
    subparsers: argparse._SubParsersAction,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    extra: Iterable[Register] = (),
) -> list[str]:
    """Register the engine's commands, the entry points' and ``extra`` registrars.

    ``entry_points`` defaults to :func:`discover_entry_points`. A registrar already given in
    ``extra`` is not registered twice by its entry point. Returns the sub-command names.
    """
    for module_name in ENGINE_COMMANDS:
        register_module(subparsers, module_name)
    registrars: list[Register] = list(extra)
    for ep in discover_entry_points() if entry_points is None else entry_points:
        try:
            registrar = ep.load()
        except Exception as error:
            raise CommandLoadError(f"fcd.commands entry point {ep.name!r} ({ep.value}) failed to load: "
                                   f"{type(error).__name__}: {error}") from error
        if registrar not in registrars:
            registrars.append(registrar)
    for registrar in registrars:
        try:
            registrar(subparsers)
        except CommandLoadError:
            raise
        except Exception as error:
            name = f"{getattr(registrar, '__module__', '?')}.{getattr(registrar, '__qualname__', registrar)}"
            raise CommandLoadError(f"fcd sub-command registrar {name} failed: {type(error).__name__}: {error}") from error
    return list(subparsers.choices)
