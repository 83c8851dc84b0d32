"""FCD Detect's own self-test (what ``py_FCDDetect`` runs in ctest), run outside the app, and broken on purpose.

The module's real ``FCDDetectTest`` class and its real logic (``FCDDetectWidgets.self_test``,
``detect_module_logic``, ``installer``) run against a slicer-core scene: only what the Slicer
application itself provides is stood in for (``slicer.app``: version 5.10 under ``--testing``,
``slicer.mrmlScene``, ``slicer.util.loadVolume`` on Slicer's volumes logic,
``ScriptedLoadableModuleTest`` = ``unittest.TestCase``). The detection runs in a child process,
as in Slicer. It passes on the shipped FCD sample; it FAILS (is never skipped) when the model's
evidence is reversed, when the weights are unreadable, and when a package is missing.
"""

from __future__ import annotations

import shutil
import sys
import types
import unittest
from types import SimpleNamespace

import pytest
import slicer
from FCDDetectLib.slicer_support.sample_data import sample_files

from Testing.builders.slicer_fixtures import make_slicer_app

pytestmark = pytest.mark.slow  # a real detection in a child process per case


class _LoadableTest(unittest.TestCase):
    """Slicer's ScriptedLoadableModuleTest is a unittest.TestCase with delayDisplay."""

    def delayDisplay(self, message, msec=None):
        print(message)


class _LoadableLogic:
    def __init__(self, parent=None):
        pass


@pytest.fixture
def self_test_class(monkeypatch):
    """``FCDDetectTest`` imported with the application's parts stood in for."""
    app = make_slicer_app()
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")
    loadable.ScriptedLoadableModuleTest = _LoadableTest
    loadable.ScriptedLoadableModuleLogic = _LoadableLogic
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", loadable)
    monkeypatch.setattr(slicer, "app", SimpleNamespace(majorVersion=5, minorVersion=10, applicationVersion="5.10.0",
                                                       testingEnabled=lambda: True, processEvents=lambda: None),
                        raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", app.scene, raising=False)
    monkeypatch.setattr(slicer.util, "loadVolume",
                        lambda path, properties: app.load_volume(path, properties["name"], properties["labelmap"]))
    for name in ("FCDDetectWidgets.self_test", "FCDDetectWidgets.detect_module_logic", "FCDDetectWidgets.installer",
                 "FCDDetectWidgets.task_runner"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "qt", types.ModuleType("qt"))  # task_runner's import; no widget is made
    from FCDDetectWidgets.self_test import FCDDetectTest

    yield FCDDetectTest
    app.scene.Clear(1)
    for name in ("FCDDetectWidgets.self_test", "FCDDetectWidgets.detect_module_logic", "FCDDetectWidgets.installer",
                 "FCDDetectWidgets.task_runner"):
        sys.modules.pop(name, None)


def _run(test_class, sample_folder=None) -> unittest.TestResult:
    test_class.sampleFolder = sample_folder
    result = unittest.TestResult()
    test_class("runTest").run(result)
    return result


def _broken_sample(tmp_path, break_weights) -> str:
    folder = tmp_path / "Sample"
    shutil.copytree(sample_files().folder, folder)
    break_weights(folder / "fcd-sample.fcdbundle" / "weights.pt")
    return str(folder)


def test_self_test_detects_the_sample(self_test_class):
    result = _run(self_test_class)
    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun == 1 and not result.skipped


def test_self_test_fails_when_the_detection_is_wrong(self_test_class, tmp_path):
    import torch

    def reverse_the_evidence(path):
        state = torch.load(path, weights_only=True)
        state["fc.weight"] = -state["fc.weight"]
        state["fc.bias"] = -state["fc.bias"]
        torch.save(state, path)

    result = _run(self_test_class, _broken_sample(tmp_path, reverse_the_evidence))
    assert not result.wasSuccessful() and not result.skipped
    assert len(result.failures) == 1 and "p(FCD)" in result.failures[0][1], result.errors


def test_self_test_fails_when_the_detection_cannot_run(self_test_class, tmp_path):
    result = _run(self_test_class, _broken_sample(tmp_path, lambda path: path.write_bytes(b"not weights")))
    assert not result.wasSuccessful() and not result.skipped
    assert "weights" in (result.failures + result.errors)[0][1]


def test_self_test_fails_when_a_package_is_missing(self_test_class, monkeypatch):
    import FCDDetectWidgets.installer as installer
    from FCDDetectLib.slicer_support.dependencies import parse_requirement

    monkeypatch.setattr(installer, "missing_requirements", lambda requirements: [parse_requirement("monai>=99")])
    result = _run(self_test_class)
    assert not result.wasSuccessful() and not result.skipped
    assert "missing while Slicer runs its tests" in (result.failures + result.errors)[0][1]
