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

import logging
import os

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
        self.parent.contributors = ["FCD Detection contributors (SlicerFCDDetection project)"]
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
        if ensureDependencies is not None:  # a supported Slicer: "FCD sample" in Sample Data
            slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add "FCD sample" (synthetic scan + lesion outline, FCDDetect/Resources/Sample) to Slicer's
    Sample Data module; FCD Detect lists the sample's demonstration model when its scan is the input.
    Runs inside Slicer only (at start-up); a failure is logged, never raised."""
    try:
        import SampleData
        from FCDDetectLib.slicer_support.sample_data import (
            LESION_FILE,
            LESION_NODE_NAME,
            SAMPLE_CATEGORY,
            SAMPLE_NAME,
            SCAN_FILE,
            SCAN_NODE_NAME,
            sample_files,
        )

        files = sample_files(os.path.join(os.path.dirname(__file__), "Resources"))
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category=SAMPLE_CATEGORY, sampleName=SAMPLE_NAME, thumbnailFileName=str(files.thumbnail),
            uris=[files.scan.as_uri(), files.lesion.as_uri()], fileNames=[SCAN_FILE, LESION_FILE],
            nodeNames=[SCAN_NODE_NAME, LESION_NODE_NAME], loadFileType=["VolumeFile", "SegmentationFile"],
        )
    except Exception:  # Sample Data missing or changed: the module works without the entry
        logging.exception("FCD Detect: could not register the FCD sample with Sample Data")
