"""Run the modules' own Qt-side Python (module file, logic, self-test) on a slicer-core scene.

Only what the Slicer *application* provides is stood in for: ``slicer.app`` (version 5.10,
``--testing``), ``slicer.mrmlScene`` (an :class:`~FCDDetectLib.mrml.offscreen_scene.OffscreenScene`'s
scene), ``slicer.util.loadVolume`` (Slicer's volumes logic), ``slicer.ScriptedLoadableModule``
(``ScriptedLoadableModuleTest`` is a ``unittest.TestCase``, as in Slicer) and an empty ``qt`` module
(no widget is made). Everything else is the product's code.

Example::

    def test_x(monkeypatch):
        app = stub_slicer_application(monkeypatch)
        from FCDDetectWidgets.self_test import FCDDetectTest
"""

from __future__ import annotations

import sys
import types
import unittest
from types import SimpleNamespace
from typing import Any

# The modules that must be imported again under the stand-ins (and forgotten afterwards).
QT_SIDE_MODULES = ("FCDDetect", "FCDDetectWidgets.self_test", "FCDDetectWidgets.detect_module_logic",
                   "FCDDetectWidgets.detect_widget", "FCDDetectWidgets.installer", "FCDDetectWidgets.task_runner")


class LoadableTest(unittest.TestCase):
    """Slicer's ScriptedLoadableModuleTest: a unittest.TestCase with delayDisplay."""

    def delayDisplay(self, message: str, msec: int | None = None) -> None:
        print(message)


class _Loadable:
    def __init__(self, parent: Any = None) -> None:
        self.parent = parent


def stub_slicer_application(monkeypatch: Any) -> Any:
    """Install the stand-ins (undone by ``monkeypatch``); returns the OffscreenScene used as
    ``slicer.mrmlScene``. Call :func:`forget_qt_side` when done."""
    import slicer
    from FCDDetectLib.mrml.offscreen_scene import OffscreenScene

    app = OffscreenScene.create()
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")
    loadable.ScriptedLoadableModuleTest = LoadableTest
    loadable.ScriptedLoadableModuleLogic = _Loadable
    loadable.ScriptedLoadableModuleWidget = _Loadable
    loadable.ScriptedLoadableModule = _Loadable
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", loadable)
    monkeypatch.setitem(sys.modules, "qt", types.ModuleType("qt"))
    connections: list[tuple[str, Any]] = []
    monkeypatch.setattr(slicer, "app", SimpleNamespace(
        majorVersion=5, minorVersion=10, applicationVersion="5.10.0", testingEnabled=lambda: True,
        processEvents=lambda: None, connect=lambda signal, slot: connections.append((signal, slot))), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", app.scene, raising=False)
    monkeypatch.setattr(slicer.util, "loadVolume",
                        lambda path, properties=None: app.load_volume(path, properties["name"], properties["labelmap"]))
    app.connections = connections
    forget_qt_side()
    return app


def forget_qt_side() -> None:
    """Drop the Qt-side modules imported under the stand-ins."""
    for name in QT_SIDE_MODULES:
        sys.modules.pop(name, None)
