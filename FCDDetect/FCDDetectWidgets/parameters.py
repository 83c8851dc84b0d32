"""FCDDetect's parameter node (module state, saved with the scene).

Paths are plain strings ("" when unset): a ``pathlib.Path`` parameter reads as "." when
unset, which the panel would show and scan. The models-folder field is therefore bound by
hand in :mod:`.detect_widget` (connectGui binds ctkPathLineEdit only to Path parameters).
"""

from typing import Annotated

from FCDDetectLib.choices import DEVICES as DEVICE_CHOICES
from FCDDetectLib.choices import EXPLANATION_LAYERS, EXPLANATION_METHODS
from FCDDetectLib.maps.clusters import DEFAULT_MIN_SIZE_MM3, DEFAULT_THRESHOLD
from FCDDetectLib.slicer_support.detect_presenter import BUNDLE_LAYER
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

METHODS = list(EXPLANATION_METHODS)
DEVICES = list(DEVICE_CHOICES)
LAYERS = [BUNDLE_LAYER, *EXPLANATION_LAYERS]


@parameterNodeWrapper
class FCDDetectParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    secondVolume: vtkMRMLScalarVolumeNode
    modelsPath: str = ""
    modelPath: str = ""
    method: Annotated[str, Choice(METHODS)] = "gradcam"
    device: Annotated[str, Choice(DEVICES)] = "auto"
    layer: Annotated[str, Choice(LAYERS)] = BUNDLE_LAYER
    useModelOperatingPoint: bool = True
    clusterThreshold: Annotated[float, WithinRange(0.0, 1.0)] = DEFAULT_THRESHOLD
    minClusterMm3: Annotated[float, WithinRange(0.0, 100000.0)] = DEFAULT_MIN_SIZE_MM3
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
