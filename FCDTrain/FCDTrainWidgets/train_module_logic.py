"""FCDTrain's Slicer logic: runs :class:`FCDTrainLib.slicer_support.train_launcher.TrainLogic` with
Slicer's Python. One naming style (Slicer's camelCase): the Qt-free runner is held, not
inherited, so its snake_case methods do not mix into this class.

Example (Slicer Python console)::

    import FCDTrain
    FCDTrain.FCDTrainLogic().train(data="/data/ds004199", out="/runs/r18", depths=[18], wait=True)
"""

import slicer
from FCDDetectLib.slicer_support.background_task import child_python
from FCDDetectWidgets.task_runner import waitWithProgress
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic


class FCDTrainLogic(ScriptedLoadableModuleLogic):
    """Training from Slicer and the console; satisfies ``TrainPanelLogic``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.runner = TrainLogic(child_python())

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

    def stop(self, wait=True):
        return self.runner.stop(wait)

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

    # -- the dataset audit and the MedicalNet requests (child processes, never the GUI thread) -----
    def audit(self, data, wait=True):
        """The audit of ``data`` as text (``wait=False``: the running task; its ``result()`` is the text)."""
        from FCDTrainLib.slicer_support.train_tasks import start_audit

        task = start_audit(data)
        return waitWithProgress(task, "Auditing the dataset...") if wait else task

    def remoteSize(self, url, wait=True):
        """Bytes the server announces for ``url`` (None: not said); ``wait=False``: the running task."""
        from FCDTrainLib.slicer_support.train_tasks import start_remote_size

        task = start_remote_size(url)
        return waitWithProgress(task, "Asking the file size...") if wait else task

    def downloadWeights(self, url, cacheFolder, name, wait=True):
        """Download ``url`` into ``cacheFolder/name`` (atomically; Cancel writes nothing)."""
        from FCDTrainLib.slicer_support.train_tasks import start_download

        task = start_download(url, cacheFolder, name)
        return waitWithProgress(task, f"Downloading {name}...") if wait else task

    def loadResults(self, out) -> dict:
        """Results table and plot nodes of a finished run or experiment folder."""
        from FCDTrainLib.mrml.experiment_nodes import experiment_results_nodes

        return experiment_results_nodes(slicer.mrmlScene, out)
