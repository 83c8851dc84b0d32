"""An MRML scene set up like Slicer's application, without the application (``slicer-core`` wheel).

What the FCD glue, the offscreen slice views (:mod:`.slice_views`), the tests and
``make screenshots`` need from Slicer's application, and nothing more: an application logic
owning the scene, its colour logic's default colour nodes (so ``vtkMRMLColorTableNodeIron``
exists), the Colors, Volumes, Segmentations, Subject Hierarchy and Markups module logics
registered with it (without "Colors" volumes get no colour node and every view renders black;
without "Markups" no point is drawn), the interaction, selection and crosshair nodes and the
slice orientation presets that slice views read. It follows trame-slicer's ``SlicerApp`` set-up. No Qt, no ``slicer.app``.

Example:
    >>> from FCDDetectLib.mrml.offscreen_scene import OffscreenScene
    >>> app = OffscreenScene.create()  # doctest: +SKIP
    >>> flair = app.load_volume("flair.nii.gz", "FLAIR")  # doctest: +SKIP
    >>> app.scene.GetNodeByID("vtkMRMLColorTableNodeIron") is not None  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slicer
import vtk

from FCDDetectLib.errors import FCDInputError


@dataclass
class OffscreenScene:
    """A scene plus the module logics the FCD glue relies on (kept referenced: the
    application logic holds its module logics weakly)."""

    scene: Any
    app_logic: Any
    color_logic: Any
    volumes_logic: Any
    segmentations_logic: Any
    subject_hierarchy_logic: Any
    markups_logic: Any

    @classmethod
    def create(cls) -> OffscreenScene:
        """A new scene with the default colour nodes, the module logics, a crosshair and
        the slice orientation presets (Axial, Sagittal, Coronal)."""
        scene = slicer.vtkMRMLScene()
        # the application's singletons, there before the application logic looks for them
        for class_name in ("vtkMRMLInteractionNode", "vtkMRMLSelectionNode"):
            node = scene.CreateNodeByClass(class_name)
            node.SetSingletonTag("Singleton")
            scene.AddNode(node)
        app_logic = slicer.vtkSlicerApplicationLogic()
        app_logic.SetMRMLScene(scene)
        app_logic.GetColorLogic().SetMRMLScene(scene)
        app_logic.GetColorLogic().AddDefaultColorNodes()
        app_logic.SetSliceLogics(vtk.vtkCollection())
        app_logic.SetViewLogics(vtk.vtkCollection())

        def register(name: str | None, logic: Any) -> Any:
            logic.SetMRMLScene(scene)
            logic.SetMRMLApplicationLogic(app_logic)
            if name:
                app_logic.SetModuleLogic(name, logic)
            return logic

        color_logic = slicer.vtkMRMLColorLogic()
        color_logic.SetMRMLApplicationLogic(app_logic)
        color_logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic("Colors", color_logic)
        volumes_logic = register("Volumes", slicer.vtkSlicerVolumesLogic())
        segmentations_logic = register("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic())
        subject_hierarchy_logic = register(None, slicer.vtkSlicerSubjectHierarchyModuleLogic())
        markups_logic = register("Markups", slicer.vtkSlicerMarkupsLogic())

        crosshair = scene.AddNewNodeByClass("vtkMRMLCrosshairNode")
        crosshair.SetCrosshairName("default")
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
        return cls(scene, app_logic, color_logic, volumes_logic, segmentations_logic, subject_hierarchy_logic,
                   markups_logic)

    def load_volume(self, path: str | Path, name: str = "volume", labelmap: bool = False) -> Any:
        """Load an image file with Slicer's volumes logic (ITK reader), like File > Add Data."""
        node = self.volumes_logic.AddArchetypeVolume(str(path), name, 1 if labelmap else 0, vtk.vtkStringArray())
        if node is None:
            raise FCDInputError(f"{path}: Slicer's volumes logic could not read it")
        return node

    def segmentation_from_labelmap(self, labelmap_node: Any, name: str = "segmentation") -> Any:
        """A segmentation node holding the labels of ``labelmap_node`` (one segment per label)."""
        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, segmentation):
            self.scene.RemoveNode(segmentation)
            raise FCDInputError(f"{labelmap_node.GetName()}: could not import it into a segmentation")
        return segmentation

    def node_ids(self) -> set[str]:
        """IDs of every node of the scene."""
        nodes = self.scene.GetNodes()
        return {nodes.GetItemAsObject(i).GetID() for i in range(nodes.GetNumberOfItems())}
