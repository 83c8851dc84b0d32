"""FCDTrain's parameter node. Paths are plain strings ("" when unset, never "."), bound by
hand in :mod:`.train_widget` (connectGui binds ctkPathLineEdit only to Path parameters,
whose unset value reads as ".")."""

from typing import Annotated

from FCDDetectLib.choices import DEVICES, GEOMETRIES, SUPERVISION
from FCDTrainLib.experiment.executors import EXECUTORS
from FCDTrainLib.slicer_support.train_presenter import PANEL_PRESETS
from slicer import vtkMRMLPlotChartNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper


@parameterNodeWrapper
class FCDTrainParameterNode:
    dataPath: str = ""
    outputPath: str = ""
    depth18: bool = True
    depth34: bool = False
    depth50: bool = False
    pretrainedNone: bool = True
    pretrainedMedicalNet8: bool = False
    pretrainedMedicalNet23: bool = False
    modalityFlair: bool = True
    modalityT1: bool = False
    modalityT1Flair: bool = False
    geometry: Annotated[str, Choice(list(GEOMETRIES))] = "paper"
    supervision: Annotated[str, Choice(list(SUPERVISION))] = "none"
    preset: Annotated[str, Choice(list(PANEL_PRESETS))] = "none"
    weightsPath: str = ""
    weightsCacheFolder: str = ""
    folds: Annotated[int, WithinRange(2, 20)] = 5
    maxEpochs: Annotated[int, WithinRange(1, 1000)] = 100
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    executor: Annotated[str, Choice(list(EXECUTORS))] = "local"
    rayAddress: str = ""
    gpusPerRun: Annotated[float, WithinRange(0.0, 64.0)] = 0.0
    resultsTable: vtkMRMLTableNode
    resultsChart: vtkMRMLPlotChartNode
