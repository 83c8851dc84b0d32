"""What an older Slicer (before 5.10) loads instead of the modules: a panel with the message.

Only ``qt``, ``slicer`` and :mod:`.compat` are imported (Python 3.9 syntax), so Slicer 5.6
or 5.8 shows why the module does not run instead of failing on the engine's Python 3.10 code.
"""

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from FCDDetectWidgets.compat import slicer_version_problem


def versionProblem():
    return slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)


class UnsupportedWidget(ScriptedLoadableModuleWidget):
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        label = qt.QLabel(versionProblem() or "")
        label.wordWrap = True
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class UnsupportedLogic(ScriptedLoadableModuleLogic):
    def __getattr__(self, name):
        raise RuntimeError(versionProblem())


class UnsupportedTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.delayDisplay(f"skipped: {versionProblem()}")


def unsupportedClasses(moduleName):
    """``(Widget, Logic, Test)`` classes named like the module's (Slicer derives the module
    name from the class name, e.g. ``FCDDetectWidget`` -> ``FCDDetect``)."""
    return tuple(type(f"{moduleName}{kind}", (base,), {})
                 for kind, base in (("Widget", UnsupportedWidget), ("Logic", UnsupportedLogic),
                                    ("Test", UnsupportedTest)))
