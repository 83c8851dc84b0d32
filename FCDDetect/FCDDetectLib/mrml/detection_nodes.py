"""The lesion-level outputs of a detection as MRML nodes, all saved with the scene.

- :func:`map_volume_node`: a map (float array on the input grid) as a volume on the input's
  exact grid, with its own colour map, window 0..1 and a lower threshold. The heatmap uses
  Iron; the lesion map (:data:`LESION_MAP_COLOR_NODE_ID`, green) is a second overlay.
  A fold ensemble's uncertainty (the spread across its folds) is a third map
  (:data:`UNCERTAINTY_COLOR_NODE_ID`, window 0..:data:`UNCERTAINTY_WINDOW`).
- :func:`clusters_table_node`: one row per cluster: id, volume_mm3, peak, mean, centroid
  R/A/S, hemisphere, and for a fold ensemble folds_found and mean_uncertainty (NaN otherwise).
- :func:`clusters_markups_node`: a markups fiducial node with one point per cluster, at the
  cluster's peak (always inside the cluster; a centroid may fall outside a curved one);
  the lesion map's clusters get :data:`LESION_CLUSTER_COLOR` (green, like their map).
- :func:`cluster_jump_point`: the RAS to centre the slice views on for a table row, and
  :func:`jump_slices_to`, which centres every slice view there (pure MRML).
- :func:`contributions_plot_nodes`: the modality contributions (per modality, positive and
  negative) as a table and a bar chart (plot chart + two plot series).

Inputs follow the engine's result fields: ``result.clusters`` and ``result.lesion_clusters``
(the engine's ``ClusterSet``; its ``to_json()["clusters"]`` rows: list of dicts
``{"id", "voxels", "volume_mm3", "peak", "mean", "peak_ras", "centroid_ras", "hemisphere"}``),
``result.lesion_map`` (array on the input grid, like ``heatmap``) and
``result.modality_contributions`` (``{modality: {"positive": p, "negative": n}}`` or a list of
``{"modality", "positive", "negative"}`` dicts). Only ``slicer``'s VTK classes are used.

Example:
    >>> table = clusters_table_node(scene, result.clusters, "FLAIR clusters")  # doctest: +SKIP
    >>> cluster_jump_point(table, 0)  # doctest: +SKIP
    [12.0, -30.5, 8.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import vtk

IRON_COLOR_NODE_ID = "vtkMRMLColorTableNodeIron"
LESION_MAP_COLOR_NODE_ID = "vtkMRMLColorTableNodeGreen"
LESION_CLUSTER_COLOR = (0.2, 0.8, 0.2)  # markups of the lesion map's clusters: green like their map
UNCERTAINTY_COLOR_NODE_ID = "vtkMRMLColorTableNodeBlue"
UNCERTAINTY_WINDOW = 0.5  # the largest standard deviation of values in [0, 1]
CLUSTER_POINTS_REFERENCE = "FCDClusterPoints"
CLUSTER_COLUMNS = ("id", "volume_mm3", "peak", "mean", "centroid_r", "centroid_a", "centroid_s", "hemisphere",
                   "folds_found", "mean_uncertainty")
_COLOR_TYPES = {IRON_COLOR_NODE_ID: "SetTypeToIron", LESION_MAP_COLOR_NODE_ID: "SetTypeToGreen",
                UNCERTAINTY_COLOR_NODE_ID: "SetTypeToBlue"}


def map_display(volume_node: Any, color_node_id: str, lower_threshold: float, window_max: float = 1.0) -> list[Any]:
    """Colour map ``color_node_id``, window 0..``window_max``, values below ``lower_threshold`` hidden.

    Returns the nodes it added (the display node, and the colour node on a bare scene
    without the default colour nodes).
    """
    scene = volume_node.GetScene()
    display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
    made = [display]
    color = scene.GetNodeByID(color_node_id)
    if color is None:
        color = scene.AddNewNodeByClass("vtkMRMLColorTableNode", color_node_id.replace("vtkMRMLColorTableNode", ""))
        getattr(color, _COLOR_TYPES.get(color_node_id, "SetTypeToIron"))()
        made.append(color)
    display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, float(window_max))
    display.AutoThresholdOff()
    display.SetThreshold(float(lower_threshold), float(window_max))
    display.ApplyThresholdOn()
    volume_node.SetAndObserveDisplayNodeID(display.GetID())
    return made


def map_volume_node(input_node: Any, values: np.ndarray, name: str, color_node_id: str,
                    lower_threshold: float, window_max: float = 1.0) -> list[Any]:
    """A map on ``input_node``'s exact grid (IJK-to-RAS, parent transform) with its display.

    Returns the nodes added, the volume first.
    """
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.io.image_io import Image
    from FCDDetectLib.mrml.conversion import new_volume_node, node_label

    array = np.asarray(values, dtype=np.float32)
    expected = tuple(input_node.GetImageData().GetDimensions())
    if array.shape != expected:
        raise FCDInputError(f"{node_label(input_node)}: map shape {array.shape} != volume {expected}")
    node = new_volume_node(input_node.GetScene(), Image(array, np.eye(4)), name)
    made = [node]
    try:
        ijk_to_ras = vtk.vtkMatrix4x4()
        input_node.GetIJKToRASMatrix(ijk_to_ras)
        node.SetIJKToRASMatrix(ijk_to_ras)
        node.SetAndObserveTransformNodeID(input_node.GetTransformNodeID())
        made += map_display(node, color_node_id, lower_threshold, window_max)
    except Exception:
        for item in made:
            input_node.GetScene().RemoveNode(item)
        raise
    return made


def _ras(value: Any) -> list[float]:
    try:
        r, a, s = (float(v) for v in value)
    except (TypeError, ValueError):
        return [math.nan, math.nan, math.nan]
    return [r, a, s]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def clusters_table_node(scene: Any, clusters: Sequence[Mapping[str, Any]], name: str) -> Any:
    """A table node with one row per cluster (columns :data:`CLUSTER_COLUMNS`)."""
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    columns: dict[str, Any] = {}
    for column in CLUSTER_COLUMNS:
        array = vtk.vtkIntArray() if column == "id" else (
            vtk.vtkStringArray() if column == "hemisphere" else vtk.vtkDoubleArray())
        array.SetName(column)
        columns[column] = array
    for cluster in clusters:
        r, a, s = _ras(cluster.get("centroid_ras"))
        values = {"id": int(cluster.get("id", 0)), "volume_mm3": float(cluster.get("volume_mm3", math.nan)),
                  "peak": float(cluster.get("peak", math.nan)), "mean": float(cluster.get("mean", math.nan)),
                  "centroid_r": r, "centroid_a": a, "centroid_s": s,
                  "hemisphere": str(cluster.get("hemisphere", "")),
                  "folds_found": _number(cluster.get("folds_found")),
                  "mean_uncertainty": _number(cluster.get("mean_uncertainty"))}
        for column, value in values.items():
            columns[column].InsertNextValue(value)
    for column in CLUSTER_COLUMNS:
        table_node.AddColumn(columns[column])
    table_node.SetUseColumnTitleAsColumnHeader(True)  # model row == table row
    return table_node


def clusters_markups_node(scene: Any, clusters: Sequence[Mapping[str, Any]], name: str,
                          color: Sequence[float] | None = None) -> Any:
    """A markups fiducial node: point ``i`` is cluster ``i``'s peak, labelled "cluster <id>".

    ``color`` (RGB 0..1) colours its points; None keeps the markups default.
    """
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for cluster in clusters:
        point = _ras(cluster.get("peak_ras") or cluster.get("centroid_ras"))
        index = markups.AddControlPoint(vtk.vtkVector3d(*point), f"cluster {int(cluster.get('id', 0))}")
        markups.SetNthControlPointLocked(index, True)
    if color is not None:
        if markups.GetDisplayNode() is None:
            markups.CreateDefaultDisplayNodes()
        display = markups.GetDisplayNode()
        display.SetSelectedColor(*(float(c) for c in color))
        display.SetColor(*(float(c) for c in color))
    return markups


def link_cluster_points(table_node: Any, markups_node: Any) -> None:
    """Reference the markups from the table, so the jump survives a scene save and load."""
    table_node.SetNodeReferenceID(CLUSTER_POINTS_REFERENCE, markups_node.GetID())


def cluster_jump_point(table_node: Any, row: int) -> list[float] | None:
    """RAS to centre the slice views on for ``row``: the cluster's markup point (its peak),
    else the centroid columns; None for a row that does not exist."""
    if table_node is None or not 0 <= int(row) < table_node.GetTable().GetNumberOfRows():
        return None
    markups = table_node.GetNodeReference(CLUSTER_POINTS_REFERENCE)
    if markups is not None and int(row) < markups.GetNumberOfControlPoints():
        position = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPositionWorld(int(row), position)
        return [float(v) for v in position]
    table = table_node.GetTable()
    values = []
    for column in ("centroid_r", "centroid_a", "centroid_s"):
        array = table.GetColumnByName(column)
        if array is None:
            return None
        values.append(float(array.GetValue(int(row))))
    return values


def jump_slices_to(scene: Any, ras: Sequence[float]) -> None:
    """Centre every slice view of ``scene`` on ``ras`` (what Markups' jump-to-point does)."""
    from slicer import vtkMRMLSliceNode

    vtkMRMLSliceNode.JumpAllSlices(scene, float(ras[0]), float(ras[1]), float(ras[2]),
                                   vtkMRMLSliceNode.CenteredJumpSlice)


def contribution_rows(contributions: Any) -> list[tuple[str, float, float]]:
    """``(modality, positive, negative)`` rows from either accepted form (see module doc)."""
    if not contributions:
        return []
    if isinstance(contributions, Mapping):
        items = [(str(k), v) for k, v in contributions.items()]
    else:
        items = [(str(c.get("modality", "?")), c) for c in contributions]
    return [(modality, float(values.get("positive", math.nan)), float(values.get("negative", math.nan)))
            for modality, values in items]


def contributions_plot_nodes(scene: Any, contributions: Any, name: str) -> list[Any]:
    """Table (modality, positive, negative) + bar chart with a positive and a negative series.

    Returns ``[table, chart, positive series, negative series]``; [] without contributions.
    """
    rows = contribution_rows(contributions)
    if not rows:
        return []
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} table")
    index, modality, positive, negative = vtk.vtkDoubleArray(), vtk.vtkStringArray(), vtk.vtkDoubleArray(), \
        vtk.vtkDoubleArray()
    for array, column in ((index, "index"), (modality, "modality"), (positive, "positive"), (negative, "negative")):
        array.SetName(column)
    for i, (mod, pos, neg) in enumerate(rows):
        index.InsertNextValue(float(i))
        modality.InsertNextValue(mod)
        positive.InsertNextValue(pos)
        negative.InsertNextValue(neg)
    for array in (index, modality, positive, negative):
        table_node.AddColumn(array)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle("Modality contributions")
    chart.SetXAxisTitle("modality")
    chart.SetYAxisTitle("contribution per voxel")
    made = [table_node, chart]
    for column, color in (("positive", (0.85, 0.2, 0.15)), ("negative", (0.2, 0.35, 0.85))):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} {column}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName("index")
        series.SetYColumnName(column)
        series.SetLabelColumnName("modality")
        series.SetPlotType(series.PlotTypeBar)
        series.SetColor(*color)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        made.append(series)
    return made
