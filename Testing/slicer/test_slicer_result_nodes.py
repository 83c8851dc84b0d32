"""Lesion-level outputs in the scene (issue 14, item 3): clusters table + markups (jump to a
cluster), the lesion map as a second overlay with its own colour map, the modality
contributions as a plot, all saved with the scene (MRB round trip), on slicer-core.

The result is the engine's real ``DetectionResult`` carrying the fields the lesion and
saliency work adds (``clusters`` as the engine's ``ClusterSet``, ``lesion_map``,
``modality_contributions``, OOD fields), set here on a synthetic head with known values.
"""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import Cluster, ClusterSet
from FCDDetectLib.mrml.conversion import new_volume_node
from FCDDetectLib.mrml.detection_logic import DetectionLogic
from FCDDetectLib.mrml.detection_nodes import (
    CLUSTER_COLUMNS,
    LESION_MAP_COLOR_NODE_ID,
    cluster_jump_point,
    contribution_rows,
    jump_slices_to,
)

from Testing.builders.geometry_fixtures import centred_affine

SHAPE = (20, 16, 12)
CLUSTERS = ClusterSet(
    clusters=[
        Cluster(1, 40, 320.5, 0.93, 0.71, (10.0, -20.0, 5.0), (11.0, -19.0, 6.0), "right", 0.93),
        Cluster(2, 12, 96.0, 0.61, 0.55, (-14.0, 3.0, -2.0), (-13.5, 2.5, -1.0), "left", 0.61),
    ],
    labels=np.zeros(SHAPE, np.int16), threshold=0.5, min_size_mm3=50.0,
)


def _result(affine, **extra):
    rng = np.random.default_rng(0)
    result = DetectionResult(probability=0.8, prediction="fcd", threshold=0.5, method="gradcam", model="tiny",
                             target_class="fcd", seconds=0.1, heatmap=rng.random(SHAPE).astype(np.float32),
                             affine=affine)
    for key, value in extra.items():
        setattr(result, key, value)
    return result


@pytest.fixture
def volume(slicer_app):
    affine = centred_affine((1.5, 1.2, 2.5), SHAPE, centre_world=(2.0, -3.0, 4.0), angles_deg=(10.0, 0.0, -20.0))
    data = np.random.default_rng(1).normal(100, 10, SHAPE).astype(np.float32)
    return new_volume_node(slicer_app.scene, Image(data, affine), "FLAIR"), affine


def _column(table_node, name):
    array = table_node.GetTable().GetColumnByName(name)
    return [array.GetValue(i) for i in range(array.GetNumberOfTuples())]


def test_clusters_lesion_map_and_contributions_become_nodes(slicer_app, volume):
    node, affine = volume
    lesion = np.zeros(SHAPE, np.float32)
    lesion[5:9, 4:8, 3:6] = 0.9
    contributions = {"flair": {"positive": 0.4, "negative": -0.1}, "t1": {"positive": 0.05, "negative": -0.02}}
    result = _result(affine, clusters=CLUSTERS, lesion_map=lesion, modality_contributions=contributions)
    out = DetectionLogic(lower_threshold=0.3).create_nodes(node, result)

    table = out.clusters_table_node
    names = [table.GetTable().GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert names == list(CLUSTER_COLUMNS)
    assert _column(table, "id") == [1, 2] and _column(table, "hemisphere") == ["right", "left"]
    assert _column(table, "volume_mm3") == [320.5, 96.0] and _column(table, "centroid_s") == [6.0, -1.0]

    markups = out.clusters_markups_node
    assert markups.GetNumberOfControlPoints() == 2 and markups.GetNthControlPointLabel(1) == "cluster 2"
    assert cluster_jump_point(table, 1) == [-14.0, 3.0, -2.0]  # the peak, always inside the cluster
    assert cluster_jump_point(table, 2) is None and cluster_jump_point(table, -1) is None

    lesion_node = out.lesion_map_node
    assert lesion_node.GetDisplayNode().GetColorNodeID() == LESION_MAP_COLOR_NODE_ID
    assert out.heatmap_node.GetDisplayNode().GetColorNodeID() == "vtkMRMLColorTableNodeIron"
    assert lesion_node.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.3)
    import slicer

    assert np.array_equal(slicer.util.arrayFromVolume(lesion_node), lesion.transpose(2, 1, 0))
    m_in, m_out = (np.zeros((4, 4)) for _ in range(2))
    import vtk

    for target, source in ((m_in, node), (m_out, lesion_node)):
        matrix = vtk.vtkMatrix4x4()
        source.GetIJKToRASMatrix(matrix)
        target[:] = [[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]
    assert np.allclose(m_in, m_out)  # exactly the input grid

    chart = out.contributions_chart_node
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = [chart.GetNthPlotSeriesNode(i) for i in range(2)]
    assert [s.GetYColumnName() for s in series] == ["positive", "negative"]
    contribution_table = series[0].GetTableNode()
    assert _column(contribution_table, "modality") == ["flair", "t1"]
    assert _column(contribution_table, "negative") == pytest.approx([-0.1, -0.02])


def test_a_plain_result_adds_no_lesion_nodes(slicer_app, volume):
    node, affine = volume
    out = DetectionLogic().create_nodes(node, _result(affine))
    assert out.lesion_map_node is None and out.clusters_table_node is None and out.contributions_chart_node is None


def test_contribution_forms():
    as_list = [{"modality": "flair", "positive": 1.0, "negative": -0.5}]
    assert contribution_rows(as_list) == [("flair", 1.0, -0.5)]
    assert contribution_rows({"flair": {"positive": 1.0, "negative": -0.5}}) == [("flair", 1.0, -0.5)]
    assert contribution_rows(None) == []


def test_lesion_map_on_another_grid_is_refused_and_nothing_is_added(slicer_app, volume):
    from FCDDetectLib.errors import FCDInputError

    node, affine = volume
    before = slicer_app.node_ids()
    with pytest.raises(FCDInputError, match="map shape"):
        DetectionLogic().create_nodes(node, _result(affine, lesion_map=np.zeros((4, 4, 4), np.float32),
                                                    clusters=CLUSTERS))
    assert slicer_app.node_ids() == before


def test_selecting_a_cluster_centres_every_slice_view(slicer_app, volume):
    import slicer

    node, affine = volume
    out = DetectionLogic().create_nodes(node, _result(affine, clusters=CLUSTERS))
    slices = []
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        slice_node = slicer.vtkMRMLSliceNode()
        slice_node.SetName(name)
        slice_node.SetLayoutName(name)
        slice_node.SetOrientation(orientation)
        slicer_app.scene.AddNode(slice_node)
        slices.append(slice_node)
    ras = cluster_jump_point(out.clusters_table_node, 0)
    jump_slices_to(slicer_app.scene, ras)
    for slice_node in slices:
        matrix = slice_node.GetSliceToRAS()
        assert [matrix.GetElement(i, 3) for i in range(3)] == pytest.approx(ras)


def test_everything_is_saved_with_the_scene(slicer_app, volume, tmp_path):
    """Write the scene as an MRB bundle and read it into a new scene: tables, markups, the
    lesion map and the plot come back."""
    import slicer

    node, affine = volume
    lesion = np.zeros(SHAPE, np.float32)
    lesion[2:5, 2:5, 2:5] = 0.8
    result = _result(affine, clusters=CLUSTERS, lesion_map=lesion,
                     modality_contributions={"flair": {"positive": 0.3, "negative": -0.2}})
    DetectionLogic().create_nodes(node, result)
    path = tmp_path / "scene.mrb"
    assert slicer_app.scene.WriteToMRB(str(path))
    loaded = slicer.vtkMRMLScene()
    markups_logic = slicer.vtkSlicerMarkupsLogic()  # registers the markups readers, as the app does
    markups_logic.SetMRMLScene(loaded)
    io_manager, cache = slicer.vtkDataIOManager(), slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(str(tmp_path / "cache"))
    io_manager.SetCacheManager(cache)
    loaded.SetDataIOManager(io_manager)
    assert loaded.ReadFromMRB(str(path))
    tables = loaded.GetNodesByClass("vtkMRMLTableNode")
    by_name = {tables.GetItemAsObject(i).GetName(): tables.GetItemAsObject(i)
               for i in range(tables.GetNumberOfItems())}
    clusters = by_name["FLAIR FCD gradcam clusters"]
    assert clusters.GetTable().GetNumberOfRows() == 2
    assert cluster_jump_point(clusters, 0) == pytest.approx([10.0, -20.0, 5.0])  # markups reference survives
    assert loaded.GetNodesByClass("vtkMRMLMarkupsFiducialNode").GetNumberOfItems() == 1
    assert loaded.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 1
    volumes = loaded.GetNodesByClass("vtkMRMLScalarVolumeNode")
    names = {volumes.GetItemAsObject(i).GetName() for i in range(volumes.GetNumberOfItems())}
    assert {"FLAIR", "FLAIR FCD gradcam heatmap", "FLAIR FCD gradcam lesion map"} <= names


def test_an_ensembles_uncertainty_becomes_a_third_volume_and_its_clusters_say_how_many_folds(slicer_app, volume):
    import dataclasses

    from FCDDetectLib.mrml.detection_nodes import UNCERTAINTY_COLOR_NODE_ID, UNCERTAINTY_WINDOW

    node, affine = volume
    lesion = np.zeros(SHAPE, np.float32)
    lesion[5:9, 4:8, 3:6] = 0.6
    spread = np.zeros(SHAPE, np.float32)
    spread[5:9, 4:8, 3:6] = 0.3
    clusters = dataclasses.replace(CLUSTERS, clusters=[
        dataclasses.replace(CLUSTERS.clusters[0], folds_found=4, mean_uncertainty=0.3),
        dataclasses.replace(CLUSTERS.clusters[1], folds_found=1, mean_uncertainty=0.45)])
    result = _result(affine, lesion_map=lesion, lesion_clusters=clusters, uncertainty=spread,
                     ensemble={"n_members": 5}, decision_source="lesion_evidence",
                     lesion_evidence={"score": 310.0, "threshold": 95.0})
    out = DetectionLogic().create_nodes(node, result)
    uncertainty = out.uncertainty_node
    assert uncertainty is not None and uncertainty is not out.lesion_map_node
    display = uncertainty.GetDisplayNode()
    assert display.GetColorNodeID() == UNCERTAINTY_COLOR_NODE_ID
    assert display.GetWindowLevelMax() == pytest.approx(UNCERTAINTY_WINDOW)
    from slicer.util import arrayFromVolume

    assert float(arrayFromVolume(uncertainty).max()) == pytest.approx(0.3)
    table = out.lesion_clusters_table_node
    assert _column(table, "folds_found") == [4.0, 1.0] and _column(table, "mean_uncertainty") == [0.3, 0.45]
    assert _column(out.table_node, "decision_source") == ["lesion_evidence"]
    assert _column(out.table_node, "lesion_evidence") == [310.0] and _column(out.table_node, "n_folds") == [5.0]
