"""FCDDetect: FCD-II detection, explanation heatmap and Heat-Score in 3D Slicer.

Thin module file: the panel is :mod:`FCDDetectWidgets.detect_widget` (its decisions in the
Qt-free :mod:`FCDDetectLib.slicer_support`), the Slicer logic :mod:`FCDDetectWidgets.detect_module_logic`,
the MRML work :mod:`FCDDetectLib.mrml` (tested outside Slicer on a real MRML scene).
Nothing heavy is imported at module scope: torch, MONAI, captum and nibabel are checked
(and installed after the user agrees) on first use. Needs Slicer 5.10 or newer; an older
Slicer gets a message in the panel instead of a failure.

Slicer Python console::

    import FCDDetect
    logic = FCDDetect.FCDDetectLogic()
    print(logic.checkInstallation(["/models"]).text())
    out = logic.process([getNode("FLAIR")], "/models/flair.fcdbundle",
                        segmentationNode=getNode("Lesion"), segmentId="Segment_1")
    print(out.prediction, out.probability, out.heat_score)
"""

import slicer
from FCDDetectWidgets.compat import slicer_version_problem
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# Checked before the engine is imported: an older Slicer (Python 3.9) gets a panel with the
# message instead of a failure on the engine's Python 3.10 code.
if slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion) is None:
    from FCDDetectWidgets.detect_module_logic import FCDDetectLogic
    from FCDDetectWidgets.detect_widget import FCDDetectWidget
    from FCDDetectWidgets.installer import ensureDependencies, requirementsPath
    from FCDDetectWidgets.self_test import FCDDetectTest
else:  # pragma: no cover - Slicer < 5.10
    from FCDDetectWidgets.unsupported import unsupportedClasses

    FCDDetectWidget, FCDDetectLogic, FCDDetectTest = unsupportedClasses("FCDDetect")
    ensureDependencies = requirementsPath = None

__all__ = ["FCDDetect", "FCDDetectLogic", "FCDDetectTest", "FCDDetectWidget", "ensureDependencies",
           "requirementsPath"]


class FCDDetect(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "FCD Detect"
        self.parent.categories = ["Neuroimaging"]
        self.parent.dependencies = []
        self.parent.contributors = ["FCD Detection contributors (https://github.com/fcd-detect/SlicerFCDDetection)"]
        self.parent.helpText = (
            "Classifies a brain MRI (FLAIR and/or T1) as FCD type II or control with a 3D ResNet, "
            "shows where the network looked (Grad-CAM heatmap over the scan), the lesion clusters "
            "and, with a lesion segmentation, the Heat-Score. Needs Slicer 5.10 or newer. "
            "Research use only, not for diagnosis. "
            '<a href="https://github.com/fcd-detect/SlicerFCDDetection">Documentation</a>.'
        )
        self.parent.acknowledgementText = (
            "Method after Lasagni et al., FCD-II detection with 3D ResNets, MedicalNet transfer "
            "learning and Grad-CAM (Heat-Score)."
        )
