"""FCD Detect's own self-test (what ``py_FCDDetect`` runs in ctest), run outside the app, and broken on purpose.

The module's real ``FCDDetectTest`` class and its real logic (``FCDDetectWidgets.self_test``,
``detect_module_logic``, ``installer``) run against a slicer-core scene: only what the Slicer
application itself provides is stood in for (:mod:`Testing.builders.slicer_app_stubs`). The detection runs in a child process,
as in Slicer. It passes on the shipped FCD sample; it FAILS (is never skipped) when the model's
evidence is reversed, when the weights are unreadable, and when a package is missing.
"""

from __future__ import annotations

import shutil
import unittest

import pytest
from FCDDetectLib.slicer_support.sample_data import sample_files

from Testing.builders.slicer_app_stubs import forget_qt_side, stub_slicer_application

pytestmark = pytest.mark.slow  # a real detection in a child process per case


@pytest.fixture
def slicer_application(monkeypatch):
    app = stub_slicer_application(monkeypatch)
    yield app
    app.scene.Clear(1)
    forget_qt_side()


@pytest.fixture
def self_test_class(slicer_application):
    """The module's ``FCDDetectTest``, imported under the application's stand-ins."""
    from FCDDetectWidgets.self_test import FCDDetectTest

    return FCDDetectTest


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


def test_the_sample_is_registered_with_sample_data(slicer_application, monkeypatch):
    """FCDDetect.py registers "FCD sample" once Slicer has started (inside Slicer only)."""
    import importlib.util
    import sys
    import types
    from pathlib import Path

    from FCDDetectLib.slicer_support.sample_data import SAMPLE_NAME

    # the module file as Slicer loads it (by path: the repository's FCDDetect/ folder would otherwise
    # import as a namespace package when the repository root is on sys.path)
    spec = importlib.util.spec_from_file_location("FCDDetect", Path(__file__).resolve().parents[2] / "FCDDetect" / "FCDDetect.py")
    FCDDetect = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "FCDDetect", FCDDetect)
    spec.loader.exec_module(FCDDetect)

    assert ("startupCompleted()", FCDDetect.registerSampleData) not in slicer_application.connections
    FCDDetect.FCDDetect(types.SimpleNamespace())  # the module object Slicer makes at start-up
    assert ("startupCompleted()", FCDDetect.registerSampleData) in slicer_application.connections
    calls = []
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    FCDDetect.registerSampleData()
    (entry,) = calls
    assert entry["sampleName"] == SAMPLE_NAME and Path(entry["thumbnailFileName"]).is_file()
    assert [Path(uri.removeprefix("file://")).is_file() for uri in entry["uris"]] == [True, True]
    assert entry["loadFileType"] == ["VolumeFile", "SegmentationFile"]
    assert [Path(uri).name for uri in entry["uris"]] == entry["fileNames"]
