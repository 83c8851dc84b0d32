"""``fcd train`` / ``fcd experiment`` options generated from :class:`RunConfig`'s fields.

Each field's metadata (help, flag, choices, bounds, metavar) becomes one argparse option
whose help ends with the field's real default, so nothing here repeats a default, a
choice list or a help text. ``--preset NAME`` starts from a named set of values
(:data:`~FCDTrainLib.run_folder.run_config.PRESETS`); the options given on the command line
override it, which is why an option left out puts nothing in the namespace
(``argparse.SUPPRESS``) and the field's default comes from :class:`RunConfig` itself. A
switch a preset turns on gets a ``--no-...`` twin to turn it off. :func:`config_arguments`
goes the other way (overrides -> command-line arguments) for the Slicer module, which starts
``fcd train`` in a process.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_config_options(parser)
    >>> config_from_args(parser.parse_args(["--data", "d", "--lr", "0.01"])).lr
    0.01
    >>> lesion = config_from_args(parser.parse_args(["--data", "d", "--preset", "lesion", "--max-epochs", "50"]))
    >>> lesion.supervision, lesion.patch, lesion.max_epochs
    ('lesion', [48, 48, 48], 50)
    >>> config_arguments({"folds": 2, "flip": True})
    ['--folds', '2', '--flip']
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from typing import Any

from FCDTrainLib.run_folder.run_config import PRESETS, RunConfig, flag_of

SINGLE_RUN_FIELDS = ("depth", "pretrained", "weights", "modality", "supervision")
"""Fields of one run; ``fcd experiment`` takes lists instead (``--depths``, ...)."""


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def add_config_options(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """Add ``--preset`` and one option per CLI field of RunConfig (``dest`` = the field name), except ``exclude``.

    An option left out sets nothing (its default is RunConfig's, or the preset's). The parser
    remembers which fields it added (``config_fields``), for :func:`config_from_args`.
    """
    skip = set(exclude)
    added = []
    parser.add_argument("--preset", choices=tuple(PRESETS), help="start from a named set of training options, "
                        "which the options given here override: " + "; ".join(
                            f"{name}: " + " ".join(config_arguments(values)) for name, values in PRESETS.items()))
    switched_on = {name for values in PRESETS.values() for name, value in values.items() if value is True}
    for f in fields(RunConfig):
        meta = f.metadata
        if not meta.get("cli", True) or f.name in skip:
            continue
        default = _default(f)
        kwargs: dict[str, Any] = {"dest": f.name}
        if default is MISSING:
            kwargs.update(required=True, help=meta["help"])
        else:
            kwargs.update(default=argparse.SUPPRESS, help=f"{meta['help']} (default: {_shown(default)})")
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
            if f.name in switched_on:
                parser.add_argument("--no-" + flag_of(f)[2:], dest=f.name, action="store_false",
                                    default=argparse.SUPPRESS, help=f"turn {flag_of(f)} off (after a --preset)")
        else:
            if isinstance(default, list):
                kwargs.update(nargs=len(default), type=type(default[0]))
            elif isinstance(default, (int, float)):
                kwargs["type"] = type(default)
            if meta.get("arg_type") is not None:
                kwargs["type"] = meta["arg_type"]
            if meta.get("nargs") is not None:
                kwargs["nargs"] = meta["nargs"]
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar") is not None:
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag_of(f), **kwargs)
        added.append(f.name)
    parser.set_defaults(config_fields=tuple(added))


def config_from_args(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """A :class:`RunConfig` from the options :func:`add_config_options` added (+ ``overrides``).

    The fields given on the command line (and ``overrides``) go over the ``--preset``'s values,
    which go over RunConfig's defaults.
    """
    values = {name: getattr(args, name) for name in args.config_fields if hasattr(args, name)}
    values.update(overrides)
    for name in ("spacing", "shape", "patch"):
        if values.get(name) is not None:
            values[name] = list(values[name])
    return RunConfig.preset(args.preset, **values) if args.preset else RunConfig(**values)


def config_arguments(overrides: Mapping[str, Any]) -> list[str]:
    """Command-line arguments setting ``overrides`` (RunConfig field -> value); unknown fields are an error."""
    by_name = {f.name: f for f in fields(RunConfig)}
    args: list[str] = []
    for name, value in overrides.items():
        f = by_name.get(name)
        if f is None or not f.metadata.get("cli", True):
            raise ValueError(f"{name!r} is not a RunConfig option")
        flag = flag_of(f)
        if isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            args += [flag, *map(str, value)]
        elif value is not None:
            args += [flag, str(value)]
    return args
