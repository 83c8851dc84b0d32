"""A real MRML scene from the ``slicer-core`` wheel, set up like a Slicer application.

The set-up follows trame-slicer's ``SlicerApp``: an application logic owning the scene,
its colour logic's default colour nodes (so ``vtkMRMLColorTableNodeIron`` exists), and the
Colors, Volumes, Segmentations, Subject Hierarchy and Markups module logics registered with it.
No Qt and no ``slicer.app``.

The ``slicer_app`` fixture is made available to every test by ``Testing/conftest.py``.

Example (in a test module)::

    def test_load(slicer_app, tmp_path):
        node = slicer_app.load_volume(path)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@dataclass
class SlicerTestApp:
    """Scene plus the module logics the FCD MRML glue relies on."""

    scene: Any
    app_logic: Any
    color_logic: Any  # kept referenced: the application logic holds module logics weakly
    volumes_logic: Any
    segmentations_logic: Any
    subject_hierarchy_logic: Any
    markups_logic: Any = None  # registers the markups storage nodes (saving markups with the scene)

    def load_volume(self, path: str | Path, name: str = "volume", labelmap: bool = False) -> Any:
        """Load a NIfTI file with Slicer's volumes logic (ITK reader), like File > Add Data."""
        import vtk

        properties = vtk.vtkStringArray()
        node = self.volumes_logic.AddArchetypeVolume(str(path), name, 1 if labelmap else 0, properties)
        assert node is not None, f"Slicer could not read {path}"
        return node

    def segmentation_from_labelmap(self, labelmap_node: Any, name: str = "segmentation") -> Any:
        """A segmentation node holding the labels of ``labelmap_node`` (one segment per label)."""
        import slicer

        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, segmentation)
        assert ok, "ImportLabelmapToSegmentationNode failed"
        return segmentation

    def node_ids(self) -> set[str]:
        nodes = self.scene.GetNodes()
        return {nodes.GetItemAsObject(i).GetID() for i in range(nodes.GetNumberOfItems())}


def make_slicer_app() -> SlicerTestApp:
    """Scene + application logic + module logics, as trame-slicer's SlicerApp sets them up."""
    slicer = pytest.importorskip("slicer")
    vtk = pytest.importorskip("vtk")
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.GetColorLogic().SetMRMLScene(scene)
    app_logic.GetColorLogic().AddDefaultColorNodes()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())

    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Colors", color_logic)

    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLScene(scene)
    volumes_logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Volumes", volumes_logic)

    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(scene)
    segmentations_logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Segmentations", segmentations_logic)

    sh_logic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    sh_logic.SetMRMLScene(scene)
    sh_logic.SetMRMLApplicationLogic(app_logic)
    markups_logic = slicer.vtkSlicerMarkupsLogic()
    markups_logic.SetMRMLScene(scene)
    markups_logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Markups", markups_logic)
    return SlicerTestApp(scene, app_logic, color_logic, volumes_logic, segmentations_logic, sh_logic, markups_logic)


@pytest.fixture
def slicer_app() -> SlicerTestApp:
    """A fresh scene with the default colour nodes and module logics."""
    app = make_slicer_app()
    yield app
    app.scene.Clear(1)


def node_matrix(node: Any) -> np.ndarray:
    """IJK-to-RAS of a volume node as numpy."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
