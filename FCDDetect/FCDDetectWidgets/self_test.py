"""FCDDetect's self-test (Slicer's "Reload and Test", and ``py_FCDDetect`` in ctest): a real detection.

It loads the FCD sample shipped in ``Resources/Sample`` (a synthetic scan with a planted lesion
and a tiny model), runs the module logic's detection on it (in a child process, offline, on the
CPU) and checks that p(FCD) reaches the model's threshold and that the heatmap's maximum, the
lesion map's maximum and cluster 1 lie in the lesion
(:func:`FCDDetectLib.mrml.sample_detection.detect_sample`). It never installs packages, and it
FAILS, never skips, when a package is missing, the sample is incomplete or the detection is
wrong (``Testing/slicer/test_slicer_self_test.py`` runs this class outside the app and proves it).
"""

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from FCDDetectWidgets.detect_module_logic import FCDDetectLogic
from FCDDetectWidgets.installer import ensureDependencies


class FCDDetectTest(ScriptedLoadableModuleTest):
    """Self-test: a detection of the FCD sample must find its planted lesion."""

    sampleFolder = None  # None: the sample beside the module (Resources/Sample)

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FCDDetect_sample_detection()

    def test_FCDDetect_sample_detection(self):
        from FCDDetectLib.mrml.detection_nodes import IRON_COLOR_NODE_ID
        from FCDDetectLib.mrml.sample_detection import detect_sample
        from FCDDetectLib.slicer_support.sample_data import SampleFiles, sample_files

        # Raises (the test fails) when a package is missing under --testing: nothing is installed here.
        self.assertTrue(ensureDependencies(askConfirmation=False), "the Python packages are not usable")
        files = SampleFiles(self.sampleFolder) if self.sampleFolder else sample_files()

        def load(path, name, labelmap):
            return slicer.util.loadVolume(str(path), {"name": name, "labelmap": labelmap})

        def process(nodes, bundle):
            return FCDDetectLogic().process(nodes, bundle, device="cpu", showProgress=False)

        problems, out = detect_sample(load, process, files)
        self.assertEqual(problems, [], "the detection of the FCD sample is wrong")
        heat = slicer.util.arrayFromVolume(out.heatmap_node)
        self.assertEqual(heat.shape, tuple(out.input_nodes[0].GetImageData().GetDimensions())[::-1])
        self.assertTrue(np.isfinite(heat).all() and 0.0 <= heat.min() and heat.max() <= 1.0)
        self.assertEqual(out.heatmap_node.GetDisplayNode().GetColorNodeID(), IRON_COLOR_NODE_ID)
        self.assertEqual(out.table_node.GetTable().GetNumberOfRows(), 1)
        self.assertGreater(out.clusters_table_node.GetTable().GetNumberOfRows(), 0)
        self.delayDisplay(f"FCDDetect self-test passed: {out.summary()}")
