"""FCDDetect's self-test (Slicer's "Reload and Test", ctest): a generated oblique volume.

It never installs packages: inside Slicer's tests a missing package skips the test.
"""

from pathlib import Path

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from FCDDetectWidgets.detect_module_logic import FCDDetectLogic
from FCDDetectWidgets.installer import ensureDependencies


class FCDDetectTest(ScriptedLoadableModuleTest):
    """Self-test: a generated oblique volume and a tiny bundle built here."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FCDDetect_generated_volume()

    def test_FCDDetect_generated_volume(self):
        if not ensureDependencies(askConfirmation=False):  # never installs inside ctest
            self.delayDisplay("FCDDetect self-test skipped: the Python packages are not installed")
            return
        import tempfile

        import numpy as np
        import torch
        from FCDDetectLib.io.image_io import Image
        from FCDDetectLib.mrml.conversion import new_volume_node
        from FCDDetectLib.networks.bundle import save_bundle
        from FCDDetectLib.networks.bundle_metadata import BundleMetadata
        from FCDDetectLib.networks.resnets import build_resnet

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
