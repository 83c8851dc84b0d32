"""FCDDetect's parameter node (module state, saved with the scene).

Paths are plain strings ("" when unset): a ``pathlib.Path`` parameter reads as "." when
unset, which the panel would show and scan. The models-folder field is therefore bound by
hand in :mod:`.detect_widget` (connectGui binds ctkPathLineEdit only to Path parameters).
"""

from typing import Annotated

from FCDDetectLib.choices import DEVICES as DEVICE_CHOICES
from FCDDetectLib.choices import EXPLANATION_METHODS
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

METHODS = list(EXPLANATION_METHODS)
DEVICES = list(DEVICE_CHOICES)


@parameterNodeWrapper
class FCDDetectParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    secondVolume: vtkMRMLScalarVolumeNode
    modelsPath: str = ""
    modelPath: str = ""
    method: Annotated[str, Choice(METHODS)] = "gradcam"
    device: Annotated[str, Choice(DEVICES)] = "auto"
    segmentationNode: vtkMRMLSegmentationNode
    segmentId: str = ""
    brainMask: vtkMRMLScalarVolumeNode
    lowerThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.2
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    heatmapVolume: vtkMRMLScalarVolumeNode
    lesionMapVolume: vtkMRMLScalarVolumeNode
    resultTable: vtkMRMLTableNode
    clustersTable: vtkMRMLTableNode
    lesionClustersTable: vtkMRMLTableNode
