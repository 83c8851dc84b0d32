"""FCDDetect: FCD-II detection, explanation heatmap and Heat-Score in 3D Slicer.

Thin Slicer-facing layer: the MRML work is done by
:class:`FCDDetectLib.mrml.detection_logic.DetectionLogic` (tested outside Slicer on a real
MRML scene). Nothing heavy is imported at module scope: torch, MONAI, captum and nibabel
are checked (and installed after the user agrees) on first use.

Slicer Python console::

    import FCDDetect
    out = FCDDetect.FCDDetectLogic().process([getNode("FLAIR")], "/models/flair.fcdbundle",
                                             segmentationNode=getNode("Lesion"), segmentId="Segment_1")
    print(out.prediction, out.probability, out.heat_score)
"""

import logging
import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from FCDDetectLib.choices import DEVICES  # stdlib only: nothing heavy at module scope
from FCDDetectLib.choices import EXPLANATION_METHODS as METHODS
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

EXTRA_MODEL_FOLDERS_KEY = "FCDDetect/ExtraModelFolders"
MODELS_FOLDER_KEY = "FCDDetect/ModelsFolder"


def requirementsPath() -> str:
    return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")


def ensureDependencies(askConfirmation: bool = True) -> bool:
    """Install missing Python packages (after asking); False when Slicer must restart first.

    torch comes through the PyTorch extension (right CUDA build), the rest through
    slicer.util.pip_install with the >= bounds of Resources/requirements.txt.
    """
    from FCDDetectLib.slicer_support.dependencies import (
        missing_requirements,
        needs_restart,
        read_requirements,
    )

    missing = missing_requirements(read_requirements(requirementsPath()))
    if not missing:
        return True
    names = ", ".join(str(r) for r in missing)
    ask = askConfirmation and not slicer.app.testingEnabled()
    if ask and not slicer.util.confirmOkCancelDisplay(
        f"FCD detection needs these Python packages, not yet installed in Slicer: {names}.\n\n"
        "Download and install them now? torch is installed by the PyTorch extension. "
        "This can take several minutes.",
        "FCD detection: install Python packages",
    ):
        raise RuntimeError(f"Python packages not installed (cancelled): {names}")
    restart = needs_restart(missing)
    torchRequirement = next((r for r in missing if r.name == "torch"), None)
    if torchRequirement is not None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError as error:
            raise RuntimeError(
                "FCD detection needs the PyTorch extension: install 'PyTorch' from the Extensions "
                "Manager, restart Slicer and try again."
            ) from error
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=ask, torchVersionRequirement=f">={torchRequirement.minimum}"
        )
        if torch is None:
            raise RuntimeError("PyTorch was not installed.")
    others = [str(r) for r in missing if r.name != "torch"]
    if others:
        with slicer.util.WaitCursor():
            slicer.util.pip_install(others)
    if restart:
        message = f"Updated packages already in use ({', '.join(restart)}): restart Slicer before continuing."
        logging.warning(message)
        if not slicer.app.testingEnabled():
            slicer.util.infoDisplay(message, "FCD detection: restart needed")
        return False
    return True


class FCDDetect(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "FCD Detect"
        self.parent.categories = ["Neuroimaging"]
        self.parent.dependencies = []
        self.parent.contributors = ["FCD Detection contributors (https://github.com/fcd-detect/SlicerFCDDetection)"]
        self.parent.helpText = (
            "Classifies a brain MRI (FLAIR and/or T1) as FCD type II or control with a 3D ResNet, "
            "shows where the network looked (Grad-CAM heatmap over the scan) and, with a lesion "
            "segmentation, the Heat-Score. Research use only, not for diagnosis. "
            '<a href="https://github.com/fcd-detect/SlicerFCDDetection">Documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "Method after Lasagni et al., FCD-II detection with 3D ResNets, MedicalNet transfer "
            "learning and Grad-CAM (Heat-Score)."
        )


@parameterNodeWrapper
class FCDDetectParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    secondVolume: vtkMRMLScalarVolumeNode
    modelsPath: Path
    modelPath: str = ""
    method: Annotated[str, Choice(METHODS)] = "gradcam"
    device: Annotated[str, Choice(DEVICES)] = "auto"
    segmentationNode: vtkMRMLSegmentationNode
    segmentId: str = ""
    brainMask: vtkMRMLScalarVolumeNode
    lowerThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.2
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    heatmapVolume: vtkMRMLScalarVolumeNode
    resultTable: vtkMRMLTableNode


class FCDDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FCDDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = FCDDetectLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.ui.modelsPathLineEdit.connect("currentPathChanged(QString)", self.onModelsPathChanged)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.segmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        self.ui.opacitySliderWidget.connect("valueChanged(double)", self.onDisplayChanged)
        self.ui.thresholdSliderWidget.connect("valueChanged(double)", self.onDisplayChanged)
        self.initializeParameterNode()
        if not str(self._parameterNode.modelsPath) or str(self._parameterNode.modelsPath) == ".":
            saved = qt.QSettings().value(MODELS_FOLDER_KEY, "")
            if saved:
                self._parameterNode.modelsPath = Path(saved)
        self.refreshModels()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            # The segment selector is not bound by connectGui: restore it by hand.
            self.ui.segmentSelector.setCurrentNode(self._parameterNode.segmentationNode)
            if self._parameterNode.segmentId:
                self.ui.segmentSelector.setCurrentSegmentID(self._parameterNode.segmentId)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        ready = bool(p and p.inputVolume and p.modelPath)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Run the detection." if ready else "Select an input volume and a model."

    # -- models -------------------------------------------------------------------------------
    def onModelsPathChanged(self, path: str) -> None:
        qt.QSettings().setValue(MODELS_FOLDER_KEY, path)
        self.refreshModels()

    def modelFolders(self) -> list:
        folders = []
        current = self.ui.modelsPathLineEdit.currentPath
        if current and current != ".":  # an unset Path parameter reads as "."
            folders.append(current)
        extra = qt.QSettings().value(EXTRA_MODEL_FOLDERS_KEY, []) or []
        extra = [extra] if isinstance(extra, str) else list(extra)
        return folders + [f for f in extra if f and os.path.isdir(f) and f not in folders]

    def refreshModels(self) -> None:
        """Fill the model list from the models folder and the folders FCDTrain trained into."""
        from FCDDetectLib.errors import FCDInputError
        from FCDDetectLib.models_folder import list_bundles

        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        notes = []
        for folder in self.modelFolders():
            try:
                listing = list_bundles(folder)
            except FCDInputError as error:
                notes.append(str(error))
                continue
            notes += listing.skipped
            for entry in listing.bundles:
                combo.addItem(entry.name, str(entry.path))
                combo.setItemData(combo.count - 1, entry.tooltip, qt.Qt.ToolTipRole)
        combo.blockSignals(wasBlocked)
        self.ui.modelInfoLabel.text = "\n".join(notes[:3]) if notes else f"{combo.count} model(s) found."
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
        self._parameterNode.segmentationNode = self.ui.segmentSelector.currentNode()
        self._parameterNode.segmentId = self.ui.segmentSelector.currentSegmentID() or ""

    def onDisplayChanged(self, *_args) -> None:
        p = self._parameterNode
        if not p or not p.heatmapVolume or not p.heatmapVolume.GetDisplayNode():
            return
        # Read the sliders (this slot may run before connectGui has updated the parameter node).
        p.heatmapVolume.GetDisplayNode().SetThreshold(self.ui.thresholdSliderWidget.value, 1.0)
        slicer.util.setSliceViewerLayers(foreground=p.heatmapVolume,
                                         foregroundOpacity=self.ui.opacitySliderWidget.value)

    # -- run ----------------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("FCD detection failed.", waitCursor=True):
            inputs = [node for node in (p.inputVolume, p.secondVolume) if node]
            out = self.logic.process(
                inputs, p.modelPath, method=p.method, device=p.device,
                segmentationNode=p.segmentationNode if p.segmentId else None, segmentId=p.segmentId or None,
                brainMaskNode=p.brainMask, lowerThreshold=p.lowerThreshold, opacity=p.opacity,
            )
            p.heatmapVolume = out.heatmap_node
            p.resultTable = out.table_node
            details = out.result.heat_score_details
            extra = " (segment resampled onto the volume grid)" if details and details.roi_resampled else ""
            self.ui.resultLabel.text = f"{out.summary()}{extra}\nModel: {out.result.model}, {out.result.seconds:.1f} s"


class FCDDetectLogic(ScriptedLoadableModuleLogic):
    """Detection from Slicer and the console; delegates to FCDDetectLib.mrml.detection_logic."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return FCDDetectParameterNode(super().getParameterNode())

    def process(self, inputVolumes, model, method="gradcam", device="auto", segmentationNode=None,
                segmentId=None, brainMaskNode=None, lowerThreshold=0.2, opacity=0.5, showResult=True):
        """Run detection on ``inputVolumes`` (model modality order); returns DetectionNodes.

        ``model``: a .fcdbundle path or a loaded ModelBundle. The result has ``probability``,
        ``prediction``, ``heat_score``, ``heatmap_node``, ``table_node`` and ``result`` (the
        engine's DetectionResult). With ``showResult`` the heatmap becomes the slice views'
        foreground over the first input.
        """
        if not ensureDependencies():
            raise RuntimeError("Restart Slicer to finish installing the Python packages.")
        from FCDDetectLib.mrml.detection_logic import DetectionLogic

        logic = DetectionLogic(lower_threshold=lowerThreshold, opacity=opacity)
        out = logic.process(inputVolumes, model, method=method, device=device, segmentation_node=segmentationNode,
                            segment_id=segmentId, brain_mask_node=brainMaskNode)
        if showResult:
            first = inputVolumes[0] if isinstance(inputVolumes, (list, tuple)) else inputVolumes
            slicer.util.setSliceViewerLayers(background=first, foreground=out.heatmap_node,
                                             foregroundOpacity=opacity)
        logging.info(f"FCDDetect: {out.summary()}")
        return out


class FCDDetectTest(ScriptedLoadableModuleTest):
    """Self-test: a generated oblique volume and a tiny bundle built here."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FCDDetect_generated_volume()

    def test_FCDDetect_generated_volume(self):
        self.assertTrue(ensureDependencies(askConfirmation=False))
        import tempfile

        import numpy as np
        import torch
        from FCDDetectLib.bundle import BundleMetadata, save_bundle
        from FCDDetectLib.image_io import Image
        from FCDDetectLib.models import build_resnet
        from FCDDetectLib.mrml.conversion import new_volume_node

        shape = (24, 20, 12)
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(np.float32)
        rel = (ijk - (np.array(shape) - 1) / 2) / (np.array(shape) * 0.4)
        volume = np.where((rel**2).sum(-1) < 1, 150.0, 5.0).astype(np.float32)
        volume += np.random.default_rng(0).normal(0, 3, shape).astype(np.float32)
        affine = np.array([[-1.1, 0.2, 0.0, 10.0], [0.1, -0.9, 0.3, -5.0], [0.0, 0.2, 2.8, 3.0], [0, 0, 0, 1]])
        node = new_volume_node(slicer.mrmlScene, Image(volume, affine), "FCDDetectSelfTest")
        torch.manual_seed(0)
        metadata = BundleMetadata(depth=18, geometry="medicalnet", modalities=["flair"],
                                  target_spacing=[2.0, 2.0, 2.0], target_shape=[24, 24, 24], name="self-test")
        with tempfile.TemporaryDirectory() as folder:
            bundle = save_bundle(Path(folder) / "self-test.fcdbundle", build_resnet(18, widen_factor=0.25, geometry="medicalnet"), metadata)
            out = FCDDetectLogic().process([node], bundle, device="cpu")
        heat = slicer.util.arrayFromVolume(out.heatmap_node)
        self.assertEqual(heat.shape, shape[::-1])
        self.assertTrue(0.0 <= heat.min() and heat.max() <= 1.0)
        self.assertEqual(out.heatmap_node.GetDisplayNode().GetColorNodeID(), "vtkMRMLColorTableNodeIron")
        matrix = vtk.vtkMatrix4x4()
        out.heatmap_node.GetIJKToRASMatrix(matrix)
        self.assertTrue(np.allclose(slicer.util.arrayFromVTKMatrix(matrix), affine))
        self.assertEqual(out.table_node.GetTable().GetNumberOfRows(), 1)
        self.delayDisplay("FCDDetect self-test passed")
