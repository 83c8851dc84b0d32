"""FCDTrain's Slicer logic: :class:`FCDTrainLib.slicer_support.train_logic.TrainLogic` with Slicer's Python.

Example (Slicer Python console)::

    import FCDTrain
    FCDTrain.FCDTrainLogic().train(data="/data/ds004199", out="/runs/r18", depths=[18], wait=True)
"""

import shutil
import sys

import slicer
from FCDTrainLib.slicer_support.train_logic import TrainLogic, TrainSettings
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic


def _ensureDependencies(askConfirmation: bool = True) -> bool:
    from FCDDetectWidgets.installer import ensureDependencies  # one installer for both modules

    return ensureDependencies(askConfirmation)


class FCDTrainLogic(ScriptedLoadableModuleLogic, TrainLogic):
    """Training from Slicer and the console (FCDTrainLib.slicer_support.train_logic.TrainLogic inside)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        TrainLogic.__init__(self, shutil.which("PythonSlicer") or sys.executable)

    def getParameterNode(self):
        from .parameters import FCDTrainParameterNode

        return FCDTrainParameterNode(super().getParameterNode())

    def ensureDependencies(self, askConfirmation: bool = True) -> bool:
        return _ensureDependencies(askConfirmation)

    def train(self, settings=None, wait=True, on_progress=None, on_line=print, **kwargs):
        """Run ``fcd train``/``fcd experiment``; ``TrainSettings`` or its fields as keywords.

        ``wait=True`` blocks (the GUI keeps repainting) and returns the final progress;
        ``wait=False`` returns the running process (poll with ``poll()``, stop with ``stop()``).
        """
        if not _ensureDependencies():
            raise RuntimeError("The Python packages are not usable yet: restart Slicer (or install them).")
        settings = settings if settings is not None else TrainSettings(**kwargs)

        def report(progress):
            slicer.app.processEvents()
            if on_progress is not None:
                on_progress(progress)

        return TrainLogic.train(self, settings, wait=wait, on_progress=report, on_line=on_line)

    def loadResults(self, out) -> dict:
        """Results table and plot nodes of a finished run or experiment folder."""
        from FCDTrainLib.mrml.results_nodes import experiment_results_nodes

        return experiment_results_nodes(slicer.mrmlScene, out)
