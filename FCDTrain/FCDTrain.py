"""FCDTrain: fold-based training of FCD-II classifiers from 3D Slicer, in a separate process.

Thin Slicer-facing layer over :mod:`FCDTrainLib.mrml` (tested outside Slicer): the panel
builds ``fcd train`` / ``fcd experiment`` settings, runs them with Slicer's Python in a
child process (never in the GUI thread), follows ``events.jsonl`` for the progress bar and
log, stops the whole process tree, and loads the results as table and plot nodes.

Slicer Python console::

    import FCDTrain
    FCDTrain.FCDTrainLogic().train(data="/data/ds004199", out="/runs/r18", depths=[18],
                                   pretrained=["none"], modalities=["flair"], max_epochs=50, wait=True)
"""

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from FCDDetectLib.choices import DEVICES, GEOMETRIES
from FCDTrainLib.run_config import RunConfig
from FCDTrainLib.slicer_support.train_logic import TrainLogic, TrainSettings
from slicer import vtkMRMLPlotChartNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

EXTRA_MODEL_FOLDERS_KEY = "FCDDetect/ExtraModelFolders"  # read by FCDDetect's model list


def _ensureDependencies(askConfirmation: bool = True) -> bool:
    from FCDDetect import ensureDependencies  # one installer for both modules

    return ensureDependencies(askConfirmation)


def _setPath(path) -> bool:
    return bool(path) and str(path) not in ("", ".")


class FCDTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "FCD Train"
        self.parent.categories = ["Neuroimaging"]
        self.parent.dependencies = ["FCDDetect"]
        self.parent.contributors = ["FCD Detection contributors (https://github.com/fcd-detect/SlicerFCDDetection)"]
        self.parent.helpText = (
            "Trains 3D ResNet FCD-II classifiers fold by fold on your own data (BIDS or CSV "
            "manifest), with MedicalNet transfer learning, in a background process that can be "
            "stopped and resumed. Results: the paper-style table, per-fold plots, and model "
            "bundles usable in FCD Detect."
        )
        self.parent.acknowledgementText = "Protocol after Lasagni et al. (5-fold, ResNet-18/34/50, MedicalNet)."


# The panel starts from RunConfig's defaults (the single source of the training defaults).
RUN_DEFAULTS = RunConfig.defaults()

@parameterNodeWrapper
class FCDTrainParameterNode:
    dataPath: Path
    outputPath: Path
    depth18: bool = True
    depth34: bool = False
    depth50: bool = False
    pretrainedNone: bool = True
    pretrainedMedicalNet8: bool = False
    pretrainedMedicalNet23: bool = False
    modalityFlair: bool = True
    modalityT1: bool = False
    modalityT1Flair: bool = False
    geometry: Annotated[str, Choice(list(GEOMETRIES))] = RUN_DEFAULTS["geometry"]
    weightsPath: Path
    weightsCacheFolder: Path
    folds: Annotated[int, WithinRange(2, 20)] = RUN_DEFAULTS["folds"]
    maxEpochs: Annotated[int, WithinRange(1, 1000)] = RUN_DEFAULTS["max_epochs"]
    seed: Annotated[int, WithinRange(0, 2147483647)] = RUN_DEFAULTS["seed"]
    device: Annotated[str, Choice(list(DEVICES))] = RUN_DEFAULTS["device"]
    resultsTable: vtkMRMLTableNode
    resultsChart: vtkMRMLPlotChartNode


class FCDTrainWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.timer = qt.QTimer()
        self.timer.setInterval(1000)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FCDTrain.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = FCDTrainLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.auditButton.connect("clicked(bool)", self.onAudit)
        self.ui.startButton.connect("clicked(bool)", self.onStart)
        self.ui.stopButton.connect("clicked(bool)", self.onStop)
        self.ui.loadResultsButton.connect("clicked(bool)", self.onLoadResults)
        self.ui.downloadWeightsButton.connect("clicked(bool)", self.onDownloadWeights)
        self.ui.deleteWeightsButton.connect("clicked(bool)", self.onDeleteWeights)
        self.ui.refreshWeightsButton.connect("clicked(bool)", self.refreshWeightsCache)
        self.timer.connect("timeout()", self.onPoll)
        self.initializeParameterNode()
        if not _setPath(self._parameterNode.weightsCacheFolder):
            from FCDTrainLib.medicalnet_weights import default_cache_dir

            self._parameterNode.weightsCacheFolder = default_cache_dir()
        self.refreshWeightsCache()

    def cleanup(self) -> None:
        self.timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        running = self.logic.running
        self.ui.startButton.enabled = bool(p and _setPath(p.dataPath) and _setPath(p.outputPath)) and not running
        self.ui.stopButton.enabled = running

    # -- settings -------------------------------------------------------------------------------
    def settings(self) -> TrainSettings:
        """TrainSettings from the panel; MedicalNet files from the field or the cache."""
        from FCDTrainLib.medicalnet_weights import find_cached

        p = self._parameterNode
        depths = [d for d, on in ((18, p.depth18), (34, p.depth34), (50, p.depth50)) if on]
        pretrained = [name for name, on in (("none", p.pretrainedNone), ("medicalnet8", p.pretrainedMedicalNet8),
                                            ("medicalnet23", p.pretrainedMedicalNet23)) if on]
        modalities = [name for name, on in (("flair", p.modalityFlair), ("t1", p.modalityT1),
                                            ("t1+flair", p.modalityT1Flair)) if on]
        cache = str(p.weightsCacheFolder) if _setPath(p.weightsCacheFolder) else None
        weights = str(p.weightsPath) if _setPath(p.weightsPath) else None
        settings = TrainSettings(data=str(p.dataPath), out=str(p.outputPath), depths=depths, pretrained=pretrained,
                                 modalities=modalities, geometry=p.geometry, folds=p.folds, max_epochs=p.maxEpochs,
                                 device=p.device, seed=p.seed)
        if settings.is_experiment:
            settings.weights_dir = cache
        elif pretrained and pretrained[0] != "none" and depths:
            settings.weights = weights or (cache and find_cached(cache, pretrained[0], depths[0]))
        return settings

    # -- actions --------------------------------------------------------------------------------
    def onAudit(self) -> None:
        with slicer.util.tryWithErrorDisplay("Dataset audit failed.", waitCursor=True):
            if not _ensureDependencies():
                return
            from FCDTrainLib.data import audit_dataset, load_dataset

            dataset = load_dataset(str(self._parameterNode.dataPath))
            audit = audit_dataset(dataset)
            text = [f"{len(dataset.subjects)} subjects in {dataset.root}", audit.format_table()]
            text += [f"WARNING: {w}" for w in dataset.warnings]
            self.ui.auditTextEdit.setPlainText("\n".join(text))

    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not start training.", waitCursor=True):
            if not _ensureDependencies():
                return
            settings = self.settings()
            self.logic.start(settings)
            self.ui.logTextEdit.appendPlainText("$ fcd " + " ".join(settings.arguments()))
            self.ui.statusLabel.text = "Running..."
            self.timer.start()
        self._updateButtons()

    def onStop(self) -> None:
        self.logic.stop()
        self.onPoll()
        self.ui.statusLabel.text = "Stopped. Start again with the same settings to resume."

    def onPoll(self) -> None:
        result = self.logic.poll()
        for line in result.lines:
            self.ui.logTextEdit.appendPlainText(line)
        progress = result.progress
        self.ui.progressBar.value = int(round(100 * progress.get("fraction", 0.0)))
        if result.running:
            eta = progress.get("eta_seconds")
            where = f"fold {progress.get('fold')}, epoch {progress.get('epoch')}/{progress.get('max_epochs')}"
            self.ui.statusLabel.text = where + (f", about {eta / 60:.0f} min left" if eta else "")
            return
        self.timer.stop()
        self._updateButtons()
        if self.logic.process is not None and self.logic.process.stopped:
            return
        try:
            self.logic.check_finished()
        except Exception as error:
            self.ui.statusLabel.text = f"Failed: {error}"
            slicer.util.errorDisplay(f"Training failed: {error}")
            return
        self.ui.statusLabel.text = "Done."
        self.onLoadResults()

    def onLoadResults(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not load the results.", waitCursor=True):
            out = str(self._parameterNode.outputPath)
            nodes = self.logic.loadResults(out)
            table = nodes.get("results_table") or nodes.get("folds_table")
            chart = nodes.get("chart") or nodes.get("curves_chart")
            self._parameterNode.resultsTable = table
            self._parameterNode.resultsChart = chart
            if chart is not None:
                slicer.modules.plots.logic().ShowChartInLayout(chart)
            bundles = self.logic.registerModelsFolder(out)
            self.ui.statusLabel.text = f"{self.ui.statusLabel.text} {bundles} model(s) now listed in FCD Detect."

    # -- MedicalNet weights -----------------------------------------------------------------------
    def refreshWeightsCache(self) -> None:
        from FCDTrainLib.medicalnet_weights import cached_files

        self.ui.weightsCacheListWidget.clear()
        for entry in cached_files(str(self._parameterNode.weightsCacheFolder)):
            self.ui.weightsCacheListWidget.addItem(f"{entry.name}  ({entry.size_text})")

    def onDeleteWeights(self) -> None:
        from FCDTrainLib.medicalnet_weights import delete_cached

        item = self.ui.weightsCacheListWidget.currentItem()
        if item is None:
            return
        name = item.text().split("  (")[0]
        if slicer.util.confirmOkCancelDisplay(f"Delete {name} from the weights cache?"):
            with slicer.util.tryWithErrorDisplay("Could not delete the file."):
                delete_cached(str(self._parameterNode.weightsCacheFolder), name)
        self.refreshWeightsCache()

    def onDownloadWeights(self) -> None:
        from FCDTrainLib import medicalnet_weights as weights_cache

        with slicer.util.tryWithErrorDisplay("Download failed."):
            settings, cache = self.settings(), str(self._parameterNode.weightsCacheFolder)
            wanted = [(f, d) for f in settings.pretrained if f != "none" for d in settings.depths
                      if not weights_cache.find_cached(cache, f, d)]
            if not wanted:
                slicer.util.infoDisplay("Tick a MedicalNet strategy: the files it needs are already cached.")
            for family, depth in wanted:
                name, url = weights_cache.medicalnet_file_name(family, depth), weights_cache.download_url(family, depth)
                size = weights_cache.human_size(weights_cache.remote_size(url))
                if not slicer.util.confirmOkCancelDisplay(f"Download {name} ({size}) from\n{url}\ninto {cache}?"):
                    continue
                dialog = slicer.util.createProgressDialog(labelText=f"Downloading {name}...", maximum=100)

                def progress(done, total, dialog=dialog):
                    dialog.value = int(100 * done / total) if total else 0
                    slicer.app.processEvents()
                    return not dialog.wasCanceled

                try:
                    weights_cache.download(url, cache, name, progress=progress)
                finally:
                    dialog.close()
        self.refreshWeightsCache()


class FCDTrainLogic(ScriptedLoadableModuleLogic, TrainLogic):
    """Training from Slicer and the console (FCDTrainLib.slicer_support.train_logic.TrainLogic inside)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        TrainLogic.__init__(self, shutil.which("PythonSlicer") or sys.executable)

    def getParameterNode(self):
        return FCDTrainParameterNode(super().getParameterNode())

    def train(self, settings=None, wait=True, on_progress=None, on_line=print, **kwargs):
        """Run ``fcd train``/``fcd experiment``; ``TrainSettings`` or its fields as keywords.

        ``wait=True`` blocks (the GUI keeps repainting) and returns the final progress;
        ``wait=False`` returns the running process (poll with ``poll()``, stop with ``stop()``).
        """
        if not _ensureDependencies():
            raise RuntimeError("Restart Slicer to finish installing the Python packages.")
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

    def registerModelsFolder(self, out) -> int:
        """List the run's bundles in FCD Detect's model list; returns how many there are."""
        folders = qt.QSettings().value(EXTRA_MODEL_FOLDERS_KEY, []) or []
        folders = [folders] if isinstance(folders, str) else list(folders)
        if str(out) not in folders:
            qt.QSettings().setValue(EXTRA_MODEL_FOLDERS_KEY, folders + [str(out)])
        try:
            slicer.modules.fcddetect.widgetRepresentation().self().refreshModels()
        except Exception as error:  # FCD Detect's panel not created yet: it lists them when opened
            logging.debug(f"FCDDetect model list not refreshed: {error}")
        return len(self.bundles(out))


class FCDTrainTest(ScriptedLoadableModuleTest):
    """Self-test: command line, progress from events, results as table and plot nodes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FCDTrain_events_and_results()

    def test_FCDTrain_events_and_results(self):
        import tempfile

        from FCDTrainLib.events import EventLog
        from FCDTrainLib.mrml.results_nodes import experiment_results_nodes
        from FCDTrainLib.slicer_support.train_logic import run_progress

        with tempfile.TemporaryDirectory() as folder:
            settings = TrainSettings(data=folder, out=os.path.join(folder, "run"), depths=[18], max_epochs=2, folds=2)
            self.assertEqual(settings.arguments()[:1], ["train"])
            log = EventLog(Path(settings.out) / "events.jsonl")
            log.emit("start", folds=[0, 1], max_epochs=2)
            for fold in (0, 1):
                for epoch in (1, 2):
                    log.emit("epoch", fold=fold, epoch=epoch, train_loss=1.0 / epoch, val_loss=1.2 / epoch, seconds=1.0)
                log.emit("fold_done", fold=fold, metrics={"accuracy": 0.5 + fold / 4, "roc_auc": 0.7})
            log.emit("done")
            self.assertEqual(run_progress(settings.out)["status"], "done")
            nodes = experiment_results_nodes(slicer.mrmlScene, settings.out)
            self.assertEqual(nodes["folds_table"].GetTable().GetNumberOfRows(), 2)
            self.assertEqual(nodes["curves_table"].GetTable().GetNumberOfRows(), 2)
        self.delayDisplay("FCDTrain self-test passed")
