"""FCDTrain's Slicer logic: runs :class:`FCDTrainLib.slicer_support.train_launcher.TrainLogic` with
Slicer's Python. One naming style (Slicer's camelCase): the Qt-free runner is held, not
inherited, so its snake_case methods do not mix into this class.

Example (Slicer Python console)::

    import FCDTrain
    FCDTrain.FCDTrainLogic().train(data="/data/ds004199", out="/runs/r18", depths=[18], wait=True)
"""

import shutil
import sys

import slicer
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic


class FCDTrainLogic(ScriptedLoadableModuleLogic):
    """Training from Slicer and the console; satisfies ``TrainPanelLogic``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.runner = TrainLogic(shutil.which("PythonSlicer") or sys.executable)

    def getParameterNode(self):
        from FCDTrainWidgets.parameters import FCDTrainParameterNode

        return FCDTrainParameterNode(super().getParameterNode())

    def ensureDependencies(self, askConfirmation: bool = True) -> bool:
        from FCDDetectWidgets.installer import ensureDependencies  # one installer for both modules

        return ensureDependencies(askConfirmation)

    # -- the running process (TrainPanelLogic) --------------------------------------------------
    @property
    def settings(self):
        return self.runner.settings

    @property
    def process(self):
        return self.runner.process

    @property
    def running(self) -> bool:
        return self.runner.running

    def start(self, settings):
        return self.runner.start(settings)

    def stop(self):
        return self.runner.stop()

    def poll(self):
        return self.runner.poll()

    def checkFinished(self):
        return self.runner.check_finished()

    def bundles(self, out=None):
        return self.runner.bundles(out)

    # -- console ------------------------------------------------------------------------------
    def train(self, settings=None, wait=True, onProgress=None, onLine=print, **kwargs):
        """Run ``fcd train``/``fcd experiment``; ``TrainSettings`` or its fields as keywords.

        ``wait=True`` blocks (the GUI keeps repainting) and returns the final progress;
        ``wait=False`` returns the running process (poll with ``poll()``, stop with ``stop()``).
        """
        if not self.ensureDependencies():
            raise RuntimeError("The Python packages are not usable yet: restart Slicer (or install them).")
        settings = settings if settings is not None else TrainSettings(**kwargs)

        def report(progress):
            slicer.app.processEvents()
            if onProgress is not None:
                onProgress(progress)

        return self.runner.train(settings, wait=wait, on_progress=report, on_line=onLine)

    def loadResults(self, out) -> dict:
        """Results table and plot nodes of a finished run or experiment folder."""
        from FCDTrainLib.mrml.experiment_nodes import experiment_results_nodes

        return experiment_results_nodes(slicer.mrmlScene, out)
