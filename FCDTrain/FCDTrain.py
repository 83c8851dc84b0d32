"""FCDTrain: fold-based training of FCD-II classifiers from 3D Slicer, in a separate process.

Thin module file: the panel is :mod:`FCDTrainWidgets.train_widget` (its decisions in the
Qt-free :mod:`FCDTrainLib.slicer_support`), the Slicer logic :mod:`FCDTrainWidgets.train_module_logic`
over :mod:`FCDTrainLib.mrml` (tested outside Slicer). It builds ``fcd train`` /
``fcd experiment`` settings, runs them with Slicer's Python in a child process (never in
the GUI thread), follows ``events.jsonl`` for the progress bar and log, stops the whole
process tree, and loads the results as table and plot nodes. Needs Slicer 5.10 or newer.

Slicer Python console::

    import FCDTrain
    FCDTrain.FCDTrainLogic().train(data="/data/ds004199", out="/runs/r18", depths=[18],
                                   pretrained=["none"], modalities=["flair"], max_epochs=50, wait=True)
"""

import slicer
from FCDDetectWidgets.compat import slicer_version_problem
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# Checked before the engine is imported: an older Slicer (Python 3.9) gets a panel with the
# message instead of a failure on the engine's Python 3.10 code.
if slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion) is None:
    from FCDTrainWidgets.self_test import FCDTrainTest
    from FCDTrainWidgets.train_module_logic import FCDTrainLogic
    from FCDTrainWidgets.train_widget import FCDTrainWidget
else:  # pragma: no cover - Slicer < 5.10
    from FCDDetectWidgets.unsupported import unsupportedClasses

    FCDTrainWidget, FCDTrainLogic, FCDTrainTest = unsupportedClasses("FCDTrain")

__all__ = ["FCDTrain", "FCDTrainLogic", "FCDTrainTest", "FCDTrainWidget"]


class FCDTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "FCD Train"
        self.parent.categories = ["Neuroimaging"]
        self.parent.dependencies = ["FCDDetect"]
        self.parent.contributors = ["FCD Detection contributors (SlicerFCDDetection project)"]
        self.parent.helpText = (
            "Trains 3D ResNet FCD-II classifiers fold by fold on your own data (BIDS or CSV "
            "manifest), with MedicalNet transfer learning, in a background process that can be "
            "stopped and resumed. Results: the paper-style table, per-fold plots, and model "
            "bundles usable in FCD Detect. Needs Slicer 5.10 or newer."
        )
        self.parent.acknowledgementText = "Protocol after Lasagni et al. (5-fold, ResNet-18/34/50, MedicalNet)."
