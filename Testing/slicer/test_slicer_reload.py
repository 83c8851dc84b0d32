"""Reload that reloads: the modules' *Reload* forgets their packages, so the next import reads them from disk."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

from FCDDetectWidgets.reload import DETECT_PACKAGES, TRAIN_PACKAGES, forget_packages, stale_modules

ROOT = Path(__file__).resolve().parents[2]


def test_which_modules_are_dropped():
    loaded = ["FCDDetectLib", "FCDDetectLib.mrml.slice_views", "FCDDetectWidgets.detect_widget", "FCDDetectLibX",
              "FCDTrainLib.cli", "FCDTrainWidgets", "FCDDetect", "numpy", "slicer"]
    assert stale_modules(loaded, DETECT_PACKAGES) == ["FCDDetectLib", "FCDDetectLib.mrml.slice_views",
                                                      "FCDDetectWidgets.detect_widget"]
    assert stale_modules(loaded, TRAIN_PACKAGES) == ["FCDTrainLib.cli", "FCDTrainWidgets"]
    # The module file itself ("FCDDetect") is Slicer's reload's business; other packages stay.
    modules = dict.fromkeys(loaded)
    assert forget_packages(DETECT_PACKAGES, modules) == stale_modules(loaded, DETECT_PACKAGES)
    assert sorted(modules) == ["FCDDetect", "FCDDetectLibX", "FCDTrainLib.cli", "FCDTrainWidgets", "numpy", "slicer"]


def test_forgotten_packages_are_read_from_disk_again(tmp_path, monkeypatch):
    package = tmp_path / "fcdreloadprobe"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "code.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    first = importlib.import_module("fcdreloadprobe.sub.code")
    assert first.VALUE == 1
    (package / "sub" / "code.py").write_text("VALUE = 2  # edited while Slicer runs\n")
    assert importlib.import_module("fcdreloadprobe.sub.code").VALUE == 1  # what Slicer's reload alone keeps
    assert forget_packages(["fcdreloadprobe"]) == ["fcdreloadprobe", "fcdreloadprobe.sub", "fcdreloadprobe.sub.code"]
    second = importlib.import_module("fcdreloadprobe.sub.code")
    assert second is not first and second.VALUE == 2
    forget_packages(["fcdreloadprobe"])


def _on_reload_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    method = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "onReload")
    return [ast.unparse(n.func) for n in ast.walk(method) if isinstance(n, ast.Call)]


def test_both_widgets_forget_their_packages_before_slicers_reload():
    for path, packages in ((ROOT / "FCDDetect" / "FCDDetectWidgets" / "detect_widget.py", "DETECT_PACKAGES"),
                           (ROOT / "FCDTrain" / "FCDTrainWidgets" / "train_widget.py", "TRAIN_PACKAGES")):
        calls = _on_reload_calls(path)
        assert calls == ["forget_packages", "ScriptedLoadableModuleWidget.onReload"], (path, calls)
        assert f"forget_packages({packages})" in path.read_text(encoding="utf-8")
