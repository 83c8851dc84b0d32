"""The Qt side of FCDDetect: widget, Slicer logic and first-use installer.

Imported only by ``FCDDetect.py`` (and ``FCDTrain``'s widgets) inside Slicer: these
modules import ``qt`` and ``slicer``. Their decisions live in the Qt-free
:mod:`FCDDetectLib.slicer_support`, so tests drive them without Qt.
"""

__all__ = [
    "compat",
    "detect_module_logic",
    "detect_widget",
    "installer",
    "parameters",
    "reload",
    "self_test",
    "task_runner",
    "unsupported",
]
