"""``fcd`` sub-command registry: entry points, explicit fallback, errors that name the module,
and the one-way dependency engine -> (nothing of the trainer)."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _subparsers():
    return argparse.ArgumentParser().add_subparsers()


def test_engine_never_imports_the_trainer():
    """Not even by name: the trainer registers its commands through an entry point."""
    pattern = re.compile(r"FCDTrainLib")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "FCDDetect" / "FCDDetectLib").rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
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
