"""FCDTrain's panel (Qt). It reads widgets, asks :class:`TrainPresenter`, applies the answer.

Fixes that need Qt and how this code avoids them:

- path fields are bound by hand to ``str`` parameters ("" when unset), so none shows "."
  and none is read as Slicer's working directory; the dataset's browse button picks a
  folder (BIDS) and the "CSV..." button a manifest file;
- ``cleanup`` (Slicer closing) stops a running training child, which would otherwise
  outlive Slicer in its own session; the run folder's lock file refuses a second writer;
- the end-of-run results load reads the folder of the run that ended from the logic, not
  the parameter node (which a Close Scene replaces); the weights cache folder gets its
  default again after a scene close;
- a cancelled weights download is an information, not a failure, and the cache list is
  refreshed either way;
- a finished run is registered in the shared models-folder registry; FCD Detect reads it
  when shown, so this module never reaches into FCD Detect's widget;
- the dataset audit, the MedicalNet size request and the download run in a child process,
  followed by a :class:`~FCDDetectWidgets.task_runner.TaskRunner` (progress, Cancel);
- *Reload* imports FCDTrainLib and FCDTrainWidgets again (:mod:`FCDDetectWidgets.reload`).
"""

import qt
import slicer
import vtk
from FCDDetectLib.slicer_support.models_registry import ModelsFolderRegistry
from FCDDetectLib.slicer_support.paths import path_or_none
from FCDDetectWidgets.installer import versionProblem
from FCDDetectWidgets.reload import TRAIN_PACKAGES, forget_packages
from FCDDetectWidgets.task_runner import TaskRunner
from FCDTrainLib.slicer_support.train_presenter import PanelValues, TrainPresenter
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

# Path field -> parameter name (bound by hand, see the module docstring).
PATH_FIELDS = {"dataPathLineEdit": "dataPath", "outputPathLineEdit": "outputPath",
               "weightsPathLineEdit": "weightsPath", "weightsCachePathLineEdit": "weightsCacheFolder"}
# Depth / input modality -> the check box's parameter (read by panelValues, set by a Recipe).
DEPTH_PARAMETERS = {18: "depth18", 34: "depth34", 50: "depth50"}
MODALITY_PARAMETERS = {"flair": "modalityFlair", "t1": "modalityT1", "t1+flair": "modalityT1Flair"}


class FCDTrainWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self.presenter = None
        self.taskRunner = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.timer = qt.QTimer()
        self.timer.setInterval(1000)
        self.pendingDownloads = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        problem = versionProblem()
        if problem:
            label = qt.QLabel(problem)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        if self.logic is None:
            from FCDTrainWidgets.train_module_logic import FCDTrainLogic

            self.logic = FCDTrainLogic()
        self.presenter = TrainPresenter(self.logic, ModelsFolderRegistry(qt.QSettings()))
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FCDTrain.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.auditButton.connect("clicked(bool)", self.onAudit)
        self.ui.startButton.connect("clicked(bool)", self.onStart)
        self.ui.stopButton.connect("clicked(bool)", self.onStop)
        self.ui.loadResultsButton.connect("clicked(bool)", self.onLoadResults)
        self.ui.downloadWeightsButton.connect("clicked(bool)", self.onDownloadWeights)
        self.ui.deleteWeightsButton.connect("clicked(bool)", self.onDeleteWeights)
        self.ui.refreshWeightsButton.connect("clicked(bool)", self.refreshWeightsCache)
        self.ui.dataManifestButton.connect("clicked(bool)", self.onPickManifest)
        # activated: the user's pick only, not connectGui restoring a saved scene's value
        self.ui.presetComboBox.connect("activated(int)", self.onPresetChosen)
        self.timer.connect("timeout()", self.onPoll)
        self.taskRunner = TaskRunner(self.ui.taskWidget, self.ui.taskProgressBar, self.ui.taskStatusLabel,
                                     self.ui.cancelTaskButton, onBusyChanged=self.updateButtons)
        self.initializeParameterNode()
        for fieldName in PATH_FIELDS:  # connected after the parameter node is set
            getattr(self.ui, fieldName).connect("currentPathChanged(QString)",
                                                lambda text, f=fieldName: self.onPathEdited(f, text))
        self.refreshWeightsCache()

    def cleanup(self) -> None:
        """Slicer closes: stop the training child (Start resumes it later)."""
        self.timer.stop()
        if self.presenter is not None:
            self.presenter.on_close()
            self.taskRunner.cleanup()
        self.removeObservers()

    def onReload(self) -> None:
        """Developer mode's Reload: import FCDTrainLib and FCDTrainWidgets again, then the module."""
        forget_packages(TRAIN_PACKAGES)
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        if self.presenter is not None:
            self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        from FCDTrainLib.training.medicalnet_weights import default_cache_dir

        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        p.weightsCacheFolder = self.presenter.weights_cache_folder(p.weightsCacheFolder, default_cache_dir)
        self.writePathFields()

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.writePathFields()
            self.updateButtons()

    def writePathFields(self) -> None:
        for fieldName, parameter in PATH_FIELDS.items():
            widget = getattr(self.ui, fieldName)
            wasBlocked = widget.blockSignals(True)
            widget.currentPath = getattr(self._parameterNode, parameter) or ""
            widget.blockSignals(wasBlocked)

    def onPathEdited(self, fieldName: str, text: str) -> None:
        if self._parameterNode is not None:
            setattr(self._parameterNode, PATH_FIELDS[fieldName], path_or_none(text) or "")
        if fieldName == "weightsCachePathLineEdit":
            self.refreshWeightsCache()

    def onPickManifest(self) -> None:
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), "CSV manifest", "", "CSV files (*.csv)")
        if path:
            self.ui.dataPathLineEdit.currentPath = path  # fires onPathEdited

    def panelValues(self) -> PanelValues:
        p = self._parameterNode
        return PanelValues(
            data_path=p.dataPath, output_path=p.outputPath,
            depths=[depth for depth, name in DEPTH_PARAMETERS.items() if getattr(p, name)],
            pretrained=[n for n, on in (("none", p.pretrainedNone), ("medicalnet8", p.pretrainedMedicalNet8),
                                        ("medicalnet23", p.pretrainedMedicalNet23)) if on],
            modalities=[modality for modality, name in MODALITY_PARAMETERS.items() if getattr(p, name)],
            geometry=p.geometry, weights_path=p.weightsPath, weights_cache_folder=p.weightsCacheFolder,
            folds=p.folds, max_epochs=p.maxEpochs, seed=p.seed, device=p.device, supervision=p.supervision,
            preset=p.preset, executor=p.executor, ray_address=p.rayAddress, gpus_per_run=p.gpusPerRun)

    def onPresetChosen(self, index) -> None:
        """A Recipe was picked: the fields it sets take its values (see TrainPresenter.with_preset)."""
        values = self.presenter.with_preset(self.panelValues(), self.ui.presetComboBox.currentText)
        p = self._parameterNode
        p.preset = values.preset
        for depth, name in DEPTH_PARAMETERS.items():
            setattr(p, name, depth in values.depths)
        for modality, name in MODALITY_PARAMETERS.items():
            setattr(p, name, modality in values.modalities)
        p.geometry, p.maxEpochs, p.supervision = values.geometry, values.max_epochs, values.supervision
        p.folds, p.seed = values.folds, values.seed

    def updateButtons(self, caller=None, event=None) -> None:
        if self._parameterNode is None:
            return
        state = self.presenter.buttons(self.panelValues(), self.logic.running)
        busy = self.taskRunner is not None and self.taskRunner.running
        self.ui.startButton.enabled = state.start
        self.ui.startButton.toolTip = state.start_tooltip
        self.ui.stopButton.enabled = state.stop
        self.ui.auditButton.enabled = not busy
        self.ui.downloadWeightsButton.enabled = not busy
        self.ui.rayAddressLineEdit.enabled = self.ui.gpusPerRunSpinBox.enabled = self._parameterNode.executor == "ray"

    def settings(self):
        from FCDTrainLib.training.medicalnet_weights import find_cached

        return self.presenter.settings(self.panelValues(), find_cached)

    # -- actions --------------------------------------------------------------------------------
    def onAudit(self) -> None:
        with slicer.util.tryWithErrorDisplay("The dataset audit could not start.", waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            self.taskRunner.run(self.logic.audit(self._parameterNode.dataPath, wait=False), "Dataset audit",
                                lambda task: self.ui.auditTextEdit.setPlainText(task.result()))

    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not start training.", waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            settings = self.settings()
            self.logic.start(settings)
            self.ui.logTextEdit.appendPlainText("$ fcd " + " ".join(settings.arguments()))
            self.ui.statusLabel.text = "Running..."
            self.timer.start()
        self.updateButtons()

    def onStop(self) -> None:
        self.logic.stop(wait=False)  # SIGTERM now; the timer's polls SIGKILL later if needed
        self.ui.stopButton.enabled = False
        self.ui.statusLabel.text = "Stopping... Start again with the same settings to resume."

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
        self.updateButtons()
        if self.logic.process is not None and self.logic.process.stopped:
            self.ui.statusLabel.text = "Stopped. Start again with the same settings to resume."
            return
        try:
            self.logic.checkFinished()
        except Exception as error:
            self.ui.statusLabel.text = f"Failed: {error}"
            slicer.util.errorDisplay(f"Training failed: {error}")
            return
        self.ui.statusLabel.text = "Done."
        self.loadResults(self.presenter.finished_run_folder())

    def onLoadResults(self) -> None:
        self.loadResults(self._parameterNode.outputPath if self._parameterNode else "")

    def loadResults(self, folder) -> None:
        with slicer.util.tryWithErrorDisplay("Could not load the results.", waitCursor=True):
            out = self.presenter.results_folder(folder)
            nodes = self.logic.loadResults(out)
            table = nodes.get("results_table") or nodes.get("folds_table")
            chart = nodes.get("chart") or nodes.get("curves_chart")
            if self._parameterNode is not None:
                self._parameterNode.resultsTable = table
                self._parameterNode.resultsChart = chart
            if chart is not None:
                slicer.modules.plots.logic().ShowChartInLayout(chart)
            message = self.presenter.register_models(out)
            self.ui.statusLabel.text = f"{self.ui.statusLabel.text} {message.text}"

    # -- MedicalNet weights -----------------------------------------------------------------------
    def refreshWeightsCache(self) -> None:
        from FCDTrainLib.training.medicalnet_weights import cached_files

        self.ui.weightsCacheListWidget.clear()
        folder = path_or_none(self._parameterNode.weightsCacheFolder) if self._parameterNode else None
        for entry in cached_files(folder) if folder else []:
            self.ui.weightsCacheListWidget.addItem(f"{entry.name}  ({entry.size_text})")

    def onDeleteWeights(self) -> None:
        from FCDTrainLib.training.medicalnet_weights import delete_cached

        item = self.ui.weightsCacheListWidget.currentItem()
        if item is None:
            return
        name = item.text().split("  (")[0]
        if slicer.util.confirmOkCancelDisplay(f"Delete {name} from the weights cache?"):
            with slicer.util.tryWithErrorDisplay("Could not delete the file."):
                delete_cached(self._parameterNode.weightsCacheFolder, name)
        self.refreshWeightsCache()

    def onDownloadWeights(self) -> None:
        """Each missing MedicalNet file: its size (asked in a child process), a confirmation,
        then the download (a child process); one file after the other."""
        from FCDTrainLib.training import medicalnet_weights as weights_cache

        with slicer.util.tryWithErrorDisplay("The download could not start.", waitCursor=True):
            settings, cache = self.settings(), self._parameterNode.weightsCacheFolder
            self.pendingDownloads = [(f, d) for f in settings.pretrained if f != "none" for d in settings.depths
                                     if not weights_cache.find_cached(cache, f, d)]
            if not self.pendingDownloads:
                slicer.util.infoDisplay("Tick a MedicalNet strategy: the files it needs are already cached.")
                return
            self.downloadNext()

    def downloadNext(self) -> None:
        from FCDDetectLib.io.byte_sizes import human_size
        from FCDTrainLib.training import medicalnet_weights as weights_cache

        if not self.pendingDownloads:
            self.refreshWeightsCache()
            return
        family, depth = self.pendingDownloads.pop(0)
        name, url = weights_cache.medicalnet_file_name(family, depth), weights_cache.download_url(family, depth)
        cache = self._parameterNode.weightsCacheFolder

        def sizeKnown(task):
            size = human_size(task.result())
            if not slicer.util.confirmOkCancelDisplay(f"Download {name} ({size}) from\n{url}\ninto {cache}?"):
                self.pendingDownloads = []
                return f"Download of {name} not started."
            qt.QTimer.singleShot(0, lambda: self.startDownload(url, cache, name))
            return f"{name}: {size}."

        self.taskRunner.run(self.logic.remoteSize(url, wait=False), f"Size of {name}", sizeKnown)

    def startDownload(self, url, cache, name) -> None:
        def downloaded(task):
            error = None
            try:
                task.result()
            except Exception as failure:  # cancelled, or failed: one status line either way
                error = failure
            self.refreshWeightsCache()
            message = self.presenter.download_outcome(error, name)
            if message.kind == "error":
                slicer.util.errorDisplay(message.text)
                self.pendingDownloads = []
            else:
                qt.QTimer.singleShot(0, self.downloadNext)
            return message.text

        with slicer.util.tryWithErrorDisplay("The download could not start.", waitCursor=True):
            self.taskRunner.run(self.logic.downloadWeights(url, cache, name, wait=False), f"Download of {name}",
                                downloaded)
