"""Detection on MRML nodes: engine in, heatmap volume + results table out.

:class:`DetectionLogic` converts the input nodes to engine images (through
:mod:`.conversion`), runs :func:`FCDDetectLib.detection.detect.detect`, and only once the engine has
succeeded adds to the scene of the input nodes:

- a scalar volume node holding the heatmap on the input's exact grid (same IJK-to-RAS,
  same parent transform), shown with the Iron colour map, window 0..1 and a lower threshold;
- a table node with one row: probability, prediction, threshold, Heat-Score, method, model...,
  ``out_of_distribution`` (true/false/unknown), ``ood_reasons`` and ``warnings``;
- when the result has them: the lesion map volume, a fold ensemble's uncertainty volume (the
  spread across its folds), the heatmap's clusters (table + peaks markups), the lesion map's
  clusters (table + peaks markups) and the modality contributions chart (see :class:`DetectionNodes`);

all beside the input in the subject hierarchy. Any failure leaves the scene as it was.
The scene always comes from the nodes given (never ``slicer.mrmlScene``), so this runs on
the ``slicer-core`` wheel as well as in the application.

Example (Slicer Python console)::

    from FCDDetectLib.mrml.detection_logic import DetectionLogic
    out = DetectionLogic().process([getNode("FLAIR")], "/models/flair.fcdbundle",
                                   segmentation_node=getNode("Lesion"), segment_id="Segment_1")
    print(out.probability, out.prediction, out.heat_score)
    out.heatmap_node, out.table_node
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vtk

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.mrml.conversion import (
    image_from_volume_node,
    mask_from_segment,
    mask_from_volume_node,
    new_volume_node,
    node_label,
)
from FCDDetectLib.mrml.detection_nodes import IRON_COLOR_NODE_ID, map_display

DEFAULT_LOWER_THRESHOLD = 0.2
DEFAULT_OPACITY = 0.5
UNCERTAINTY_LOWER_THRESHOLD = 0.05  # spreads below this (folds agreeing within 0.05) are hidden


@dataclass
class DetectionNodes:
    """What :meth:`DetectionLogic.process` made: the engine's result and the new nodes."""

    result: Any  # FCDDetectLib.detection.detect.DetectionResult
    heatmap_node: Any  # vtkMRMLScalarVolumeNode
    table_node: Any  # vtkMRMLTableNode
    lesion_map_node: Any = None  # vtkMRMLScalarVolumeNode, when the bundle has a lesion head
    uncertainty_node: Any = None  # vtkMRMLScalarVolumeNode, a fold ensemble's spread across its folds
    clusters_table_node: Any = None  # vtkMRMLTableNode, one row per cluster
    clusters_markups_node: Any = None  # vtkMRMLMarkupsFiducialNode, one point per cluster
    lesion_clusters_table_node: Any = None  # vtkMRMLTableNode, one row per cluster of the lesion map
    lesion_clusters_markups_node: Any = None  # vtkMRMLMarkupsFiducialNode, one point per lesion cluster
    contributions_chart_node: Any = None  # vtkMRMLPlotChartNode (per modality, positive / negative)
    input_nodes: list[Any] = field(default_factory=list)  # the input volumes (the report reads them)
    roi_source: tuple[Any, str] | None = None  # (segmentation node, segment id) of the Heat-Score, if any

    @property
    def probability(self) -> float:
        return self.result.probability

    @property
    def prediction(self) -> str:
        return self.result.prediction

    @property
    def heat_score(self) -> float | None:
        return self.result.heat_score

    def summary(self) -> str:
        """One line for the panel: prediction, probability and Heat-Score."""
        heat = "n/a (no lesion segment)" if self.heat_score is None else f"{self.heat_score:.2f}"
        return (
            f"{self.prediction.upper()}  p(FCD) = {self.probability:.3f} (threshold {self.result.threshold:.2f})"
            f"  Heat-Score = {heat}"
        )


@dataclass
class NodeInputs:
    """A detection's input nodes and their engine images (:meth:`DetectionLogic.read_inputs`)."""

    nodes: list[Any]
    images: list[Any]  # FCDDetectLib.io.image_io.Image, one per input node
    roi: Any = None  # the segment as a mask Image on the first input's grid
    brain_mask: Any = None
    roi_source: tuple[Any, str] | None = None  # (segmentation node, segment id)

    def adopt(self, out: DetectionNodes) -> DetectionNodes:
        """Record on ``out`` the inputs it came from (the report reads them again)."""
        out.input_nodes = list(self.nodes)
        out.roi_source = self.roi_source
        return out


def model_modalities(model: Any) -> list[str]:
    """Modalities a bundle (or a fold ensemble: a run folder, a list of bundles) expects, from its
    metadata (no torch needed for a path)."""
    metadata = getattr(model, "metadata", None)
    if metadata is None:
        from FCDDetectLib.detection.ensemble_detect import is_ensemble_request
        from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata
        from FCDDetectLib.networks.ensemble import read_ensemble_metadata

        paths = list(model) if isinstance(model, (list, tuple)) else [model]
        metadata = (read_ensemble_metadata(paths)[0] if is_ensemble_request(paths)
                    else read_bundle_metadata(paths[0]))
    return list(metadata.modalities)


class DetectionLogic:
    """Runs FCD detection on volume nodes and builds the output nodes (no Qt, no slicer.app).

    ``lower_threshold`` hides heatmap values below it in the slice views; ``opacity`` is
    the foreground opacity used by :meth:`show_in_slice_views`.
    """

    def __init__(self, lower_threshold: float = DEFAULT_LOWER_THRESHOLD, opacity: float = DEFAULT_OPACITY):
        self.lower_threshold = float(lower_threshold)
        self.opacity = float(opacity)

    # -- inputs ---------------------------------------------------------------------------------
    def check_inputs(self, input_nodes: Sequence[Any] | Any, model: Any) -> list[Any]:
        """The input volume nodes as a list, checked against the model (count, one scene, the
        bundle exists); raises :class:`FCDInputError`. Reads only the bundle's metadata."""
        if input_nodes is None or not isinstance(input_nodes, (list, tuple)):
            input_nodes = [input_nodes]
        nodes = [node for node in input_nodes if node is not None]
        if not nodes:
            raise FCDInputError("no input volume selected")
        for path in (model if isinstance(model, (list, tuple)) else [model]):
            if isinstance(path, (str, Path)) and not Path(path).exists():
                raise FCDInputError(f"model {path}: no such bundle")
        modalities = model_modalities(model)
        if len(nodes) != len(modalities):
            names = ", ".join(node_label(n) for n in nodes)
            raise FCDInputError(
                f"model expects {len(modalities)} volume(s) ({', '.join(modalities)}), "
                f"got {len(nodes)}: {names}"
            )
        scenes = {id(node.GetScene()) for node in nodes}
        if None in (node.GetScene() for node in nodes) or len(scenes) != 1:
            raise FCDInputError("input volumes must belong to one MRML scene")
        return nodes

    # -- main entry -----------------------------------------------------------------------------
    def process(
        self,
        input_nodes: Sequence[Any] | Any,
        model: Any,
        options: Any = None,
        segmentation_node: Any = None,
        segment_id: str | None = None,
        brain_mask_node: Any = None,
        name: str | None = None,
        **option_values: Any,
    ) -> DetectionNodes:
        """Detect FCD on ``input_nodes`` (in the model's modality order) with ``model``.

        ``options`` is a :class:`~FCDDetectLib.detection.options.DetectOptions` (keyword values such
        as ``method="gradcam++"`` or ``cluster_threshold=0.4`` replace its fields), the same object
        ``fcd detect`` builds from its command line.

        ``model`` is a ``.fcdbundle`` path or a loaded ``ModelBundle``, or a fold ensemble (a run
        folder, a list of bundles, or a loaded ensemble: the result then has ``uncertainty``, shown
        as :attr:`DetectionNodes.uncertainty_node`). With a segmentation
        node and a segment ID, the Heat-Score of the heatmap against that segment is computed
        (a segment on another grid is resampled and the table says so). ``brain_mask_node``
        (label map or scalar volume) restricts the Heat-Score background. Raises
        :class:`FCDInputError` for bad input; nothing is added to the scene then.
        """
        from FCDDetectLib.detection.ensemble_detect import detect_any

        inputs = self.read_inputs(input_nodes, model, segmentation_node, segment_id, brain_mask_node)
        result = detect_any(model, inputs.images, roi=inputs.roi, brain_mask=inputs.brain_mask, options=options,
                            **option_values)
        return inputs.adopt(self.create_nodes(inputs.nodes[0], result, name=name))

    def read_inputs(self, input_nodes: Sequence[Any] | Any, model: Any, segmentation_node: Any = None,
                    segment_id: str | None = None, brain_mask_node: Any = None) -> NodeInputs:
        """The nodes of a detection checked (:meth:`check_inputs`) and read as engine images
        (the segment on the first input's grid); raises :class:`FCDInputError`."""
        nodes = self.check_inputs(input_nodes, model)
        images = [image_from_volume_node(node) for node in nodes]
        roi = None
        if segmentation_node is not None or segment_id:
            roi = mask_from_segment(segmentation_node, segment_id or "", reference=images[0])
        mask = mask_from_volume_node(brain_mask_node) if brain_mask_node is not None else None
        source = (segmentation_node, segment_id or "") if roi is not None else None
        return NodeInputs(nodes, images, roi, mask, source)

    # -- outputs --------------------------------------------------------------------------------
    def create_nodes(self, input_node: Any, result: Any, name: str | None = None) -> DetectionNodes:
        """Heatmap volume + table for ``result`` beside ``input_node``; all or nothing."""
        from FCDDetectLib.io.image_io import Image

        scene = input_node.GetScene()
        base = name or f"{input_node.GetName()} FCD {result.method}"
        heatmap = np.asarray(result.heatmap, dtype=np.float32)
        expected = input_node.GetImageData().GetDimensions()
        if heatmap.shape != tuple(expected):
            raise FCDInputError(f"{node_label(input_node)}: heatmap shape {heatmap.shape} != volume {expected}")
        created: list[Any] = []
        try:
            heat_node = new_volume_node(scene, Image(heatmap, np.eye(4)), f"{base} heatmap")
            created.append(heat_node)
            ijk_to_ras = vtk.vtkMatrix4x4()
            input_node.GetIJKToRASMatrix(ijk_to_ras)
            heat_node.SetIJKToRASMatrix(ijk_to_ras)  # exactly the input's grid
            heat_node.SetAndObserveTransformNodeID(input_node.GetTransformNodeID())
            created.extend(self._display(heat_node))
            table_node = self._table(scene, result, f"{base} results", input_node)
            created.append(table_node)
            lesion_outputs = self._lesion_outputs(input_node, result, base, created)
            place_beside(input_node, [heat_node, table_node] + [n for n in lesion_outputs.values() if n is not None])
        except Exception:
            for node in reversed(created):
                if node.GetScene() is scene:
                    scene.RemoveNode(node)
            raise
        return DetectionNodes(result=result, heatmap_node=heat_node, table_node=table_node, **lesion_outputs)

    def _lesion_outputs(self, input_node: Any, result: Any, base: str, created: list[Any]) -> dict[str, Any]:
        """Lesion map, clusters of the heatmap and of the lesion map (table + markups each) and
        modality contributions, when the result has them."""
        from FCDDetectLib.mrml.detection_nodes import (
            LESION_CLUSTER_COLOR,
            LESION_MAP_COLOR_NODE_ID,
            UNCERTAINTY_COLOR_NODE_ID,
            UNCERTAINTY_WINDOW,
            contributions_plot_nodes,
            map_volume_node,
        )

        scene = input_node.GetScene()
        out: dict[str, Any] = {}
        lesion_map = getattr(result, "lesion_map", None)
        if lesion_map is not None:
            made = map_volume_node(input_node, lesion_map, f"{base} lesion map", LESION_MAP_COLOR_NODE_ID,
                                   self.lower_threshold)
            created.extend(made)
            out["lesion_map_node"] = made[0]
        uncertainty = getattr(result, "uncertainty", None)
        if uncertainty is not None:
            made = map_volume_node(input_node, uncertainty, f"{base} uncertainty", UNCERTAINTY_COLOR_NODE_ID,
                                   UNCERTAINTY_LOWER_THRESHOLD, window_max=UNCERTAINTY_WINDOW)
            created.extend(made)
            out["uncertainty_node"] = made[0]
        out["clusters_table_node"], out["clusters_markups_node"] = _cluster_nodes(
            scene, getattr(result, "clusters", None), f"{base} clusters", f"{base} cluster peaks", created)
        out["lesion_clusters_table_node"], out["lesion_clusters_markups_node"] = _cluster_nodes(
            scene, getattr(result, "lesion_clusters", None), f"{base} lesion clusters",
            f"{base} lesion cluster peaks", created, color=LESION_CLUSTER_COLOR)
        plot = contributions_plot_nodes(scene, getattr(result, "modality_contributions", None),
                                        f"{base} modality contributions")
        created.extend(plot)
        if plot:
            out["contributions_chart_node"] = plot[1]
        return out

    def _display(self, heat_node: Any) -> list[Any]:
        """Iron colour map, window 0..1, values below the lower threshold hidden."""
        return map_display(heat_node, IRON_COLOR_NODE_ID, self.lower_threshold)

    def _table(self, scene: Any, result: Any, name: str, input_node: Any) -> Any:
        """A one-row table: the numbers the panel shows, saved with the scene."""
        details = result.heat_score_details
        heat = math.nan if result.heat_score is None else float(result.heat_score)
        rows: list[tuple[str, Any]] = [
            ("input", input_node.GetName()),
            ("model", str(result.model)),
            ("method", str(result.method)),
            ("probability", float(result.probability)),
            ("prediction", str(result.prediction)),
            ("decision_source", str(getattr(result, "decision_source", "classifier"))),
            ("lesion_evidence", _evidence(result, "score")),
            ("lesion_evidence_threshold", _evidence(result, "threshold")),
            ("n_folds", float((getattr(result, "ensemble", None) or {}).get("n_members", math.nan))),
            ("threshold", float(result.threshold)),
            ("heat_score", heat),
            ("roi_voxels", float(details.roi_voxels) if details else math.nan),
            ("roi_resampled", str(bool(details.roi_resampled)) if details else ""),
            ("seconds", float(result.seconds)),
            # "true" / "false" / "unknown" (a bundle without training input ranges)
            ("out_of_distribution", str(result.to_json()["out_of_distribution"]).lower()),
            ("ood_reasons", "; ".join(result.ood_reasons)),
            ("warnings", "; ".join(result.warnings)),
        ]
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        for column, value in rows:
            array = vtk.vtkDoubleArray() if isinstance(value, float) else vtk.vtkStringArray()
            array.SetName(column)
            array.InsertNextValue(value)
            table_node.AddColumn(array)
        return table_node

    def show_in_slice_views(self, background_node: Any, heat_node: Any, opacity: float | None = None) -> None:
        """Pure-MRML part of the overlay: every slice composite node shows the heatmap as
        foreground over ``background_node`` (the Qt module uses setSliceViewerLayers)."""
        scene = heat_node.GetScene()
        opacity = self.opacity if opacity is None else float(opacity)
        composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for i in range(composites.GetNumberOfItems()):
            composite = composites.GetItemAsObject(i)
            composite.SetBackgroundVolumeID(background_node.GetID())
            composite.SetForegroundVolumeID(heat_node.GetID())
            composite.SetForegroundOpacity(opacity)


def _evidence(result: Any, key: str) -> float:
    evidence = getattr(result, "lesion_evidence", None) or {}
    return math.nan if evidence.get(key) is None else float(evidence[key])


def _cluster_nodes(scene: Any, clusters: Any, table_name: str, markups_name: str, created: list[Any],
                   color: Sequence[float] | None = None) -> tuple[Any, Any]:
    """Clusters table + peaks markups (linked, for the jump) of ``clusters``, or (None, None)
    without clusters; every node added goes into ``created``.

    ``clusters``: the engine's ``ClusterSet`` (its ranked clusters as JSON rows) or those rows.
    """
    from FCDDetectLib.mrml.detection_nodes import (
        clusters_markups_node,
        clusters_table_node,
        link_cluster_points,
    )

    if hasattr(clusters, "to_json"):
        clusters = clusters.to_json()["clusters"]
    clusters = list(clusters or [])
    if not clusters:
        return None, None
    table = clusters_table_node(scene, clusters, table_name)
    created.append(table)
    markups = clusters_markups_node(scene, clusters, markups_name, color=color)
    created.append(markups)
    # its display node too: a bare MRML scene does not remove it with the markups node
    created.extend(markups.GetNthDisplayNode(i) for i in range(markups.GetNumberOfDisplayNodes()))
    link_cluster_points(table, markups)
    return table, markups


def place_beside(input_node: Any, new_nodes: Sequence[Any]) -> None:
    """Put ``new_nodes`` under the input's parent item in the subject hierarchy."""
    from slicer import vtkMRMLSubjectHierarchyNode

    shn = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(input_node.GetScene())
    if shn is None:
        return
    input_item = shn.GetItemByDataNode(input_node)
    # Without the application's SH plugins (slicer-core) data nodes may have no item yet.
    parent = (shn.GetItemParent(input_item) if input_item else 0) or shn.GetSceneItemID()
    for node in new_nodes:
        item = shn.GetItemByDataNode(node)
        if item:
            shn.SetItemParent(item, parent)
        else:
            shn.CreateItem(parent, node)
