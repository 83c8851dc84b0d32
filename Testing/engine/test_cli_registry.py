"""``fcd`` sub-command registry: entry points, explicit fallback, errors that name the module,
and the one-way dependency engine -> (nothing of the trainer)."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _subparsers():
    return argparse.ArgumentParser().add_subparsers()


def test_engine_never_imports_the_trainer():
    """No import statement of the engine names the trainer (its commands come through an entry point).

    import-linter's layer contract (``make test``) checks the same over the whole import graph;
    this test keeps the rule visible beside the registry. The Slicer background task may run a
    trainer function whose name its caller gives it (data, not an import of the engine's).
    """
    import ast

    offenders = []
    for path in (ROOT / "FCDDetect" / "FCDDetectLib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "FCDTrainLib" for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_source_tree_declares_the_trainer_entry_point():
    from FCDDetectLib.cli.registry import _source_tree_entry_points

    declared = {ep.name: ep.value for ep in _source_tree_entry_points()}
    assert declared == {"train": "FCDTrainLib.cli:register_commands"}


def test_engine_only_when_no_entry_points():
    from FCDDetectLib.cli.registry import register_commands

    assert register_commands(_subparsers(), entry_points=[]) == ["detect", "heat-score"]


def test_entry_point_that_fails_to_import_is_an_error_naming_it():
    from FCDDetectLib.cli.registry import CommandLoadError, register_commands

    broken = importlib.metadata.EntryPoint("broken", "no_such_package_xyz.cli:register", "fcd.commands")
    with pytest.raises(CommandLoadError, match=r"'broken' \(no_such_package_xyz.cli:register\)"):
        register_commands(_subparsers(), entry_points=[broken])


def test_command_module_that_fails_to_import_is_an_error_naming_it(monkeypatch):
    from FCDDetectLib.cli.registry import CommandLoadError, register_module

    module = types.ModuleType("fcd_fake_command")
    module.register = lambda subparsers: 1 / 0
    monkeypatch.setitem(sys.modules, "fcd_fake_command", module)
    with pytest.raises(CommandLoadError, match="'fcd_fake_command'.*ZeroDivisionError"):
        register_module(_subparsers(), "fcd_fake_command")
    with pytest.raises(CommandLoadError, match="'no_such_module_xyz'.*ModuleNotFoundError"):
        register_module(_subparsers(), "no_such_module_xyz")


def test_main_reports_a_broken_command_as_one_error_line(monkeypatch, capsys):
    import FCDDetectLib.cli.registry as registry
    from FCDDetectLib.cli import main

    broken = importlib.metadata.EntryPoint("broken", "no_such_package_xyz.cli:register", "fcd.commands")
    monkeypatch.setattr(registry, "discover_entry_points", lambda: [broken])
    assert main(["detect", "--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no_such_package_xyz" in err


def test_trainer_main_registers_explicitly_without_entry_points(monkeypatch, capsys):
    import FCDDetectLib.cli.registry as registry
    from FCDTrainLib.cli import main

    monkeypatch.setattr(registry, "discover_entry_points", lambda: [])
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0 and "--max-epochs" in capsys.readouterr().out


def test_help_imports_neither_torch_nor_monai():
    code = ("import sys; from FCDDetectLib.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'monai', 'captum') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"



def test_an_ascii_locale_gets_escaped_text_not_a_traceback():
    """``fcd experiment --help`` (its text holds a "±") under an ASCII locale without Python's
    UTF-8 mode (as on CI; a cp1252 console is alike): printed escaped, exit 0."""
    from Testing.builders.hostile_fixtures import run_fcd

    done = run_fcd(["experiment", "--help"],
                   env={"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "mean \\xb1 std" in done.stdout
