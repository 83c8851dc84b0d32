"""FCDDetect's panel (Qt). It reads widgets, asks :class:`DetectPresenter`, applies the answer.

Fixes that need Qt and how this code avoids them:

- the models-folder field is connected only *after* the parameter node is set, it is
  bound by hand to a ``str`` parameter ("" when unset, never "."), and an unset field is
  never stored or scanned;
- typing in it restarts a 0.6 s single-shot timer: the folder is scanned once typing
  pauses, with a depth limit, never "." nor a filesystem root nor the home folder;
- restoring the saved segment runs inside ``presenter.restoring_segment()``, so the
  selector's own signals (``setCurrentNode`` clears the segment) do not erase it;
- the panel re-reads the shared models-folder registry on ``enter``: FCDTrain registers a
  finished run there and never touches this widget;
- nothing long runs in the GUI thread: detection, the report and the installation check run
  in a child process followed by a :class:`~FCDDetectWidgets.task_runner.TaskRunner` (progress,
  Cancel); their nodes are added on the main thread when the child has ended;
- *Reload* imports the packages again (:mod:`FCDDetectWidgets.reload`), not only this file.
"""

import qt
import slicer
import vtk
from FCDDetectLib.slicer_support.detect_presenter import ClusterTables, DetectPresenter, panel_options
from FCDDetectLib.slicer_support.models_registry import ModelsFolderRegistry
from FCDDetectLib.slicer_support.paths import path_or_none
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from FCDDetectWidgets.installer import versionProblem
from FCDDetectWidgets.reload import DETECT_PACKAGES, forget_packages
from FCDDetectWidgets.task_runner import TaskRunner

SCAN_DELAY_MS = 600


class FCDDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self.presenter = None
        self.lastResult = None
        self.runner = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        problem = versionProblem()
        if problem:  # an older Slicer: say so instead of failing later
            label = qt.QLabel(problem)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        if self.logic is None:
            from FCDDetectWidgets.detect_module_logic import FCDDetectLogic

            self.logic = FCDDetectLogic()
        self.presenter = DetectPresenter(self.logic, ModelsFolderRegistry(qt.QSettings()))
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FCDDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.scanTimer = qt.QTimer()
        self.scanTimer.setSingleShot(True)
        self.scanTimer.setInterval(SCAN_DELAY_MS)
        self.scanTimer.connect("timeout()", self.refreshModels)
        self.runner = TaskRunner(self.ui.taskWidget, self.ui.taskProgressBar, self.ui.taskStatusLabel,
                                 self.ui.cancelButton, onBusyChanged=self.updateApplyButton)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        # the FCD sample's model is listed only for the sample scan
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", lambda _node: self.scanTimer.start())
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.segmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        self.ui.opacitySliderWidget.connect("valueChanged(double)", self.onDisplayChanged)
        self.ui.thresholdSliderWidget.connect("valueChanged(double)", self.onDisplayChanged)
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onDisplayChanged)
        for view in (self.ui.clustersTableView, self.ui.lesionClustersTableView):
            view.connect("selectionChanged()", lambda view=view: self.onClusterSelected(view))
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReport)
        self.ui.checkInstallationButton.connect("clicked(bool)", self.onCheckInstallation)
        self.initializeParameterNode()
        # Connected only now: an earlier connection would store the field's initial value.
        self.ui.modelsPathLineEdit.connect("currentPathChanged(QString)", self.onModelsPathEdited)
        self.refreshModels()

    def cleanup(self) -> None:
        if self.presenter is not None:
            self.scanTimer.stop()
            self.runner.cleanup()  # Slicer closes or the module reloads: stop the running child
        self.removeObservers()

    def onReload(self) -> None:
        """Developer mode's Reload: import FCDDetectLib and FCDDetectWidgets again, then the module."""
        forget_packages(DETECT_PACKAGES)
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        if self.presenter is None:
            return
        self.initializeParameterNode()
        self.refreshModels()  # FCDTrain may have registered a run folder meanwhile

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)

    def onSceneStartClose(self, caller, event) -> None:
        self.runner.cleanup()  # a running detection's nodes would land in the closed scene
        self.setParameterNode(None)
        self.lastResult = None

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        if self.parent.isEntered:  # a loaded scene brings its own parameter node values
            self.setParameterNode(None)
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first and not first.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
        self._parameterNode = inputParameterNode
        if not self._parameterNode:
            return
        self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
        self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
        folder = self.presenter.initial_models_folder(self._parameterNode.modelsPath) or ""
        wasBlocked = self.ui.modelsPathLineEdit.blockSignals(True)
        self.ui.modelsPathLineEdit.currentPath = folder
        self.ui.modelsPathLineEdit.blockSignals(wasBlocked)
        self._parameterNode.modelsPath = folder
        with self.presenter.restoring_segment():  # the selector's signals must not clear the saved id
            self.ui.segmentSelector.setCurrentNode(self._parameterNode.segmentationNode)
            if self._parameterNode.segmentId:
                self.ui.segmentSelector.setCurrentSegmentID(self._parameterNode.segmentId)
        self.showClusterTables(ClusterTables(self._parameterNode.clustersTable,
                                             self._parameterNode.lesionClustersTable))
        self.updateApplyButton()

    def updateApplyButton(self, caller=None, event=None) -> None:
        p = self._parameterNode
        state = self.presenter.apply_state(bool(p and p.inputVolume), p.modelPath if p else "")
        busy = self.runner is not None and self.runner.running
        self.ui.applyButton.enabled = state.enabled and not busy
        self.ui.applyButton.toolTip = "Running: wait, or Cancel." if busy else state.tooltip
        self.ui.saveReportButton.enabled = self.lastResult is not None and not busy
        self.ui.checkInstallationButton.enabled = not busy
        ownPoint = not (p and p.useModelOperatingPoint)  # the fields apply only when the model's point is off
        self.ui.clusterThresholdSliderWidget.enabled = ownPoint
        self.ui.minClusterSpinBox.enabled = ownPoint

    # -- models -------------------------------------------------------------------------------
    def onModelsPathEdited(self, path: str) -> None:
        if self._parameterNode is not None:
            self._parameterNode.modelsPath = path_or_none(path) or ""
        if self.presenter.models_folder_edited(path):
            self.scanTimer.start()  # restarts while the user types

    def refreshModels(self) -> None:
        """Fill the model list from the models folder and the folders FCDTrain trained into."""
        inputNode = self.ui.inputVolumeSelector.currentNode()
        listing = self.presenter.model_list(inputNode.GetName() if inputNode else None)
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for choice in listing.choices:
            combo.addItem(choice.name, choice.path)
            combo.setItemData(combo.count - 1, choice.tooltip, qt.Qt.ToolTipRole)
        combo.blockSignals(wasBlocked)
        self.ui.modelInfoLabel.text = listing.info
        self.onModelSelected(combo.currentIndex)

    def onModelSelected(self, index: int) -> None:
        if self._parameterNode is None:
            return
        path = self.ui.modelComboBox.itemData(index) if index >= 0 else ""
        self._parameterNode.modelPath = path or ""
        self.ui.modelComboBox.toolTip = self.ui.modelComboBox.itemData(index, qt.Qt.ToolTipRole) or ""

    def onSegmentChanged(self, *_args) -> None:
        if self._parameterNode is None:
            return
        update = self.presenter.segment_changed(self.ui.segmentSelector.currentNode(),
                                                self.ui.segmentSelector.currentSegmentID())
        if update is not None:
            self._parameterNode.segmentationNode, self._parameterNode.segmentId = update

    # -- display ------------------------------------------------------------------------------
    def onDisplayChanged(self, *_args) -> None:
        if self.lastResult is None:
            return
        node = self.presenter.overlay_node(self.lastResult, self.ui.overlayComboBox.currentText)
        if node is None or node.GetDisplayNode() is None:
            return
        # Read the sliders (this slot may run before connectGui has updated the parameter node).
        node.GetDisplayNode().SetThreshold(self.ui.thresholdSliderWidget.value, 1.0)
        self.logic.showOverlay(self.lastResult, node, self.ui.opacitySliderWidget.value)

    def showClusterTables(self, tables) -> None:
        self.ui.clustersTableView.setMRMLTableNode(tables.heatmap)
        self.ui.lesionClustersTableView.setMRMLTableNode(tables.lesion)
        self.ui.lesionClustersLabel.visible = tables.lesion_shown
        self.ui.lesionClustersTableView.visible = tables.lesion_shown

    def onClusterSelected(self, view) -> None:
        """A row was selected in ``view`` (the heatmap's or the lesion map's clusters table)."""
        table = view.mrmlTableNode()
        index = view.currentIndex()
        if table is None or not index.isValid():
            return
        row = index.row()  # sorting off, not transposed, column names as header: model row == table row
        ras = self.presenter.cluster_selected(table, row)
        if ras is not None:
            self.logic.jumpToCluster(table, row)

    # -- run (in a child process; see TaskRunner) -----------------------------------------------
    def onApplyButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("FCD detection could not start.", waitCursor=True):
            if not self.logic.ensureDependencies():  # cancelled, or a restart is needed: already said
                return
            inputs = [node for node in (p.inputVolume, p.secondVolume) if node]
            options = panel_options(p.method, p.device, p.layer, p.clusterThreshold, p.minClusterMm3,
                                    use_model_point=p.useModelOperatingPoint)
            job = self.logic.process(
                inputs, p.modelPath, options,
                segmentationNode=p.segmentationNode if p.segmentId else None, segmentId=p.segmentId or None,
                brainMaskNode=p.brainMask, lowerThreshold=p.lowerThreshold, opacity=p.opacity, wait=False,
            )
            self.runner.run(job, "FCD detection", self.onDetectionDone)

    def onDetectionDone(self, job) -> str:
        out = self.logic.finishDetection(job)
        self.showResult(out)
        return f"FCD detection: done in {out.result.seconds:.1f} s."

    def showResult(self, out) -> None:
        p = self._parameterNode
        self.lastResult = out
        self.updateApplyButton()
        p.heatmapVolume = out.heatmap_node
        p.lesionMapVolume = out.lesion_map_node
        p.resultTable = out.table_node
        tables = self.presenter.cluster_tables(out)
        p.clustersTable, p.lesionClustersTable = tables.heatmap, tables.lesion
        self.showClusterTables(tables)
        combo = self.ui.overlayComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for choice in self.presenter.overlay_choices(out):
            combo.addItem(choice)
        combo.blockSignals(wasBlocked)
        text = self.presenter.result_text(out)
        self.ui.resultLabel.text = text
        self.ui.resultLabel.setStyleSheet(
            "color: #b35900" if self.presenter.result_message_kind(out) == "warning" else "")
        if out.contributions_chart_node is not None:
            slicer.modules.plots.logic().ShowChartInLayout(out.contributions_chart_node)

    def onSaveReport(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Folder for the report")
        if not folder:
            return
        problem = self.presenter.report_problem(self.lastResult, folder)
        if problem is not None:
            self.showMessage(problem)
            return
        with slicer.util.tryWithErrorDisplay("The report could not start.", waitCursor=True):
            self.runner.run(self.logic.startReport(self.lastResult, folder), "Report",
                            lambda task: self.presenter.report_written(task.result()).text)

    def onCheckInstallation(self) -> None:
        with slicer.util.tryWithErrorDisplay("Installation check could not start.", waitCursor=True):
            task = self.logic.checkInstallation(self.presenter.installation_folders(), wait=False)
            self.runner.run(task, "Installation check", self.onInstallationChecked)

    def onInstallationChecked(self, task) -> str:
        message = self.presenter.installation_message(self.logic.installationReport(task.result()))
        self.ui.installationTextEdit.setPlainText(message.text)
        self.ui.installationTextEdit.visible = True
        return "Installation checked: " + ("problems found (see below)." if message.kind == "warning" else "no problem.")

    @staticmethod
    def showMessage(message) -> None:
        if message.kind == "error":
            slicer.util.errorDisplay(message.text)
        elif message.kind == "warning":
            slicer.util.warningDisplay(message.text)
        else:
            slicer.util.infoDisplay(message.text)
