"""FCDDetect's MRML logic on a real MRML scene: nodes in, heatmap volume + table out.

A NIfTI loaded through Slicer's volumes logic, an ROI imported into a segmentation node,
a tiny real MONAI ResNet-18 bundle. The outputs are checked against the engine run
directly on the files (``detect``, ``heat_score_images``), independently of MRML.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import slicer
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.mrml import detection_logic as detection_module
from FCDDetectLib.mrml.detection_logic import DetectionLogic

from Testing.builders.geometry_fixtures import centred_affine, ellipsoid_mask, head_phantom, write_nifti
from Testing.builders.slicer_fixtures import node_matrix

SHAPE = (22, 18, 10)
SPACING = (1.2, 1.4, 3.2)
CENTRE = (3.0, -5.0, 8.0)
LESION = (6.0, -3.0, 10.0)


def _save_tiny_bundle(folder, name, lesion_prior=None):
    """A tiny real ResNet-18 bundle; with ``lesion_prior`` a lesion head too, whose map is
    that constant probability everywhere (output weights zeroed, bias = logit of the prior)."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.lesion_resnet import build_lesion_resnet
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    # medicalnet geometry (dilated layer3/4): a 24^3 grid still gives a 3x3x3 last stage.
    if lesion_prior is None:
        model = build_resnet(18, in_channels=1, widen_factor=0.25, geometry="medicalnet")
    else:
        model = build_lesion_resnet(18, in_channels=1, widen_factor=0.25, geometry="medicalnet", decoder_width=8)
    with torch.no_grad():  # FCD logit = +mean of the last-stage features: Grad-CAM is not flat
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[1] = 1.0 / model.fc.weight.shape[1]
        model.fc.weight[0] = -1.0 / model.fc.weight.shape[1]
        if lesion_prior is not None:
            model.decoder.out.weight.zero_()
            model.decoder.set_foreground_prior(lesion_prior)
    meta = BundleMetadata(depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[24, 24, 24], name=name, head="none" if lesion_prior is None else "lesion")
    return save_bundle(folder / f"{name}.fcdbundle", model, meta)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    return _save_tiny_bundle(tmp_path_factory.mktemp("models"), "tiny-flair")


@pytest.fixture(scope="module")
def lesion_bundle(tmp_path_factory):
    """Lesion map 0.9 over the head: above the cluster threshold, so it has clusters."""
    return _save_tiny_bundle(tmp_path_factory.mktemp("models"), "tiny-flair-lesion", lesion_prior=0.9)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    affine = centred_affine(SPACING, SHAPE, centre_world=CENTRE, angles_deg=(15.0, -10.0, 30.0), lps=True)
    image = head_phantom(affine, SHAPE, centre_world=CENTRE, radii_mm=(11, 10, 13))
    roi = ellipsoid_mask(affine, SHAPE, LESION, (4.0, 4.0, 6.0)).astype(np.uint8)
    # The same lesion on another, overlapping grid (isotropic 2 mm, not oblique): resampled.
    other = centred_affine((2.0, 2.0, 2.0), (14, 14, 14), centre_world=CENTRE)
    roi_other = ellipsoid_mask(other, (14, 14, 14), LESION, (4.0, 4.0, 6.0)).astype(np.uint8)
    far = centred_affine((2.0, 2.0, 2.0), (8, 8, 8), centre_world=(400.0, 400.0, 400.0))
    return {
        "volume": write_nifti(folder / "flair.nii.gz", image, affine),
        "roi": write_nifti(folder / "roi.nii.gz", roi, affine),
        "roi_other": write_nifti(folder / "roi_other.nii.gz", roi_other, other),
        "roi_far": write_nifti(folder / "roi_far.nii.gz", np.ones((8, 8, 8), np.uint8), far),
    }


def _segmentation(app, path, name):
    labelmap = app.load_volume(path, f"{name} labelmap", labelmap=True)
    segmentation = app.segmentation_from_labelmap(labelmap, name)
    app.scene.RemoveNode(labelmap)
    return segmentation, segmentation.GetSegmentation().GetNthSegmentID(0)


def _table_values(table_node):
    table = table_node.GetTable()
    return {table.GetColumn(i).GetName(): table.GetColumn(i).GetValue(0) for i in range(table.GetNumberOfColumns())}


def test_process_matches_engine_on_files(slicer_app, files, tiny_bundle):
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.io.image_io import Image, load_mask
    from FCDDetectLib.maps.heat_score import heat_score_images

    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    segmentation, segment_id = _segmentation(slicer_app, files["roi"], "Lesion")
    composite = slicer_app.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    # The input sits in a subject folder (the application's SH plugins do that on loading).
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer_app.scene)
    folder = shn.CreateFolderItem(shn.GetSceneItemID(), "Patient 1")
    shn.SetItemParent(shn.GetItemByDataNode(volume) or shn.CreateItem(folder, volume), folder)

    logic = DetectionLogic(lower_threshold=0.25)
    out = logic.process([volume], tiny_bundle, method="gradcam", device="cpu",
                        segmentation_node=segmentation, segment_id=segment_id)
    reference = detect(tiny_bundle, [files["volume"]], roi=files["roi"], method="gradcam", device="cpu")

    heat_node = out.heatmap_node
    array = slicer.util.arrayFromVolume(heat_node)
    assert array.shape == SHAPE[::-1]  # Slicer's (K, J, I)
    assert reference.heatmap.max() > reference.heatmap.min()  # a real, non-flat heatmap
    np.testing.assert_allclose(array, reference.heatmap.transpose(2, 1, 0), atol=1e-4)
    np.testing.assert_array_equal(node_matrix(heat_node), node_matrix(volume))
    np.testing.assert_allclose(node_matrix(heat_node), nib.load(str(files["volume"])).affine, atol=1e-4)

    display = heat_node.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeIron"
    assert display.GetColorNode().GetName() == "Iron"
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.25)

    expected_heat = heat_score_images(Image(reference.heatmap, reference.affine), load_mask(files["roi"])).heat_score
    assert out.heat_score == pytest.approx(expected_heat, abs=1e-3)
    assert out.result.heat_score_details.roi_resampled is False  # segment drawn on the volume grid
    values = _table_values(out.table_node)
    assert values["probability"] == pytest.approx(reference.probability, abs=1e-5)
    assert values["prediction"] == reference.prediction
    assert values["threshold"] == pytest.approx(0.5)
    assert values["heat_score"] == pytest.approx(expected_heat, abs=1e-3)
    assert values["method"] == "gradcam" and values["model"] == "tiny-flair" and values["input"] == "FLAIR"
    assert values["out_of_distribution"] == "unknown"  # this bundle records no training input ranges
    assert values["ood_reasons"] == ""
    assert "Heat-Score" in out.summary()

    for node in (heat_node, out.table_node):
        assert shn.GetItemParent(shn.GetItemByDataNode(node)) == folder

    logic.show_in_slice_views(volume, heat_node, opacity=0.6)
    assert composite.GetBackgroundVolumeID() == volume.GetID()
    assert composite.GetForegroundVolumeID() == heat_node.GetID()
    assert composite.GetForegroundOpacity() == pytest.approx(0.6)


def test_segmentation_on_other_overlapping_grid_is_resampled(slicer_app, files, tiny_bundle):
    from FCDDetectLib.detection.detect import detect

    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    segmentation, segment_id = _segmentation(slicer_app, files["roi_other"], "Lesion 2mm")
    out = DetectionLogic().process(volume, tiny_bundle, device="cpu", segmentation_node=segmentation,
                                   segment_id=segment_id)
    reference = detect(tiny_bundle, [files["volume"]], roi=files["roi_other"], device="cpu")
    assert out.result.heat_score_details.roi_resampled is True
    assert _table_values(out.table_node)["roi_resampled"] == "True"
    assert out.heat_score == pytest.approx(reference.heat_score, abs=1e-3)


def test_brain_mask_restricts_the_background(slicer_app, files, tiny_bundle, tmp_path):
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.io.image_io import Image, load_mask
    from FCDDetectLib.maps.heat_score import heat_score_images

    affine = nib.load(str(files["volume"])).affine
    brain = ellipsoid_mask(affine, SHAPE, CENTRE, (9.0, 8.0, 11.0)).astype(np.uint8)
    brain_path = write_nifti(tmp_path / "brain.nii.gz", brain, affine)
    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    mask_node = slicer_app.load_volume(brain_path, "Brain", labelmap=True)
    segmentation, segment_id = _segmentation(slicer_app, files["roi"], "Lesion")
    out = DetectionLogic().process([volume], tiny_bundle, device="cpu", segmentation_node=segmentation,
                                   segment_id=segment_id, brain_mask_node=mask_node)
    reference = detect(tiny_bundle, [files["volume"]], device="cpu")
    heat = Image(reference.heatmap, reference.affine)
    with_mask = heat_score_images(heat, load_mask(files["roi"]), load_mask(brain_path)).heat_score
    without = heat_score_images(heat, load_mask(files["roi"])).heat_score
    assert out.heat_score == pytest.approx(with_mask, abs=1e-3)
    assert abs(with_mask - without) > 1e-3  # the mask really changed the background


def test_without_segmentation_no_heat_score(slicer_app, files, tiny_bundle):
    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    out = DetectionLogic().process([volume], tiny_bundle, method="gradcam++", device="cpu")
    assert out.heat_score is None
    assert math.isnan(_table_values(out.table_node)["heat_score"])
    assert _table_values(out.table_node)["method"] == "gradcam++"


def _column(table_node, name):
    array = table_node.GetTable().GetColumnByName(name)
    return [array.GetValue(i) for i in range(array.GetNumberOfTuples())]


def _points(markups_node):
    points = []
    for i in range(markups_node.GetNumberOfControlPoints()):
        position = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPosition(i, position)
        points.append(position)
    return points


def test_lesion_clusters_become_a_table_and_peak_markups(slicer_app, files, lesion_bundle):
    from FCDDetectLib.mrml.detection_nodes import LESION_CLUSTER_COLOR, cluster_jump_point

    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    out = DetectionLogic().process([volume], lesion_bundle, device="cpu")
    rows = out.result.lesion_clusters.to_json()["clusters"]
    assert rows  # the constant 0.9 lesion map is one cluster over the head at least

    table, markups = out.lesion_clusters_table_node, out.lesion_clusters_markups_node
    assert table.GetName() == "FLAIR FCD gradcam lesion clusters"
    assert markups.GetName() == "FLAIR FCD gradcam lesion cluster peaks"
    assert _column(table, "id") == [row["id"] for row in rows]
    assert _column(table, "peak") == [row["peak"] for row in rows]
    assert _column(table, "volume_mm3") == [row["volume_mm3"] for row in rows]
    assert markups.GetNumberOfControlPoints() == len(rows)
    assert _points(markups) == [row["peak_ras"] for row in rows]
    assert markups.GetNthControlPointLabel(0) == f"cluster {rows[0]['id']}"
    assert cluster_jump_point(table, 0) == rows[0]["peak_ras"]  # the table is linked to its markups
    assert markups.GetDisplayNode().GetSelectedColor() == LESION_CLUSTER_COLOR
    # the heatmap's clusters stay their own nodes, default colour
    assert out.clusters_table_node is not table and out.clusters_markups_node is not markups
    assert out.clusters_markups_node.GetDisplayNode().GetSelectedColor() != LESION_CLUSTER_COLOR
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer_app.scene)
    parent = shn.GetItemParent(shn.GetItemByDataNode(out.heatmap_node))
    for node in (table, markups):
        assert shn.GetItemParent(shn.GetItemByDataNode(node)) == parent


def test_without_lesion_head_no_lesion_cluster_nodes(slicer_app, files, tiny_bundle):
    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    out = DetectionLogic().process([volume], tiny_bundle, device="cpu")
    assert out.result.lesion_clusters is None
    assert out.lesion_clusters_table_node is None and out.lesion_clusters_markups_node is None


def _assert_error_leaves_scene(app, match, **kwargs):
    before = app.node_ids()
    with pytest.raises(FCDInputError, match=match):
        DetectionLogic().process(device="cpu", **kwargs)
    assert app.node_ids() == before


def test_bad_inputs_are_clear_errors_and_leave_scene_unchanged(slicer_app, files, tiny_bundle):
    app = slicer_app
    volume = app.load_volume(files["volume"], "FLAIR")
    lesion, lesion_id = _segmentation(app, files["roi"], "Lesion")
    empty_id = lesion.GetSegmentation().AddEmptySegment("empty")
    far, far_id = _segmentation(app, files["roi_far"], "Far")
    no_data = app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "NoData")

    _assert_error_leaves_scene(app, "'empty'.*no voxels", input_nodes=[volume], model=tiny_bundle,
                               segmentation_node=lesion, segment_id=empty_id)
    _assert_error_leaves_scene(app, "(?i)outside|overlap", input_nodes=[volume], model=tiny_bundle,
                               segmentation_node=far, segment_id=far_id)
    _assert_error_leaves_scene(app, "'NoData'.*no image data", input_nodes=[no_data], model=tiny_bundle)
    _assert_error_leaves_scene(app, r"expects 1 volume\(s\) \(flair\), got 2", input_nodes=[volume, volume],
                               model=tiny_bundle)
    _assert_error_leaves_scene(app, "no input volume", input_nodes=[], model=tiny_bundle)
    _assert_error_leaves_scene(app, "no such bundle", input_nodes=[volume], model=tiny_bundle.parent / "x.fcdbundle")
    _assert_error_leaves_scene(app, "no such segment", input_nodes=[volume], model=tiny_bundle,
                               segmentation_node=lesion, segment_id="nope")
    assert lesion_id


@pytest.mark.parametrize("bundle", ["tiny_bundle", "lesion_bundle"])
def test_failure_while_creating_nodes_removes_them(slicer_app, files, bundle, monkeypatch, request):
    bundle = request.getfixturevalue(bundle)
    volume = slicer_app.load_volume(files["volume"], "FLAIR")
    before = slicer_app.node_ids()

    def broken(*_args, **_kwargs):
        raise RuntimeError("subject hierarchy unavailable")

    monkeypatch.setattr(detection_module, "place_beside", broken)
    with pytest.raises(RuntimeError, match="subject hierarchy"):
        DetectionLogic().process([volume], bundle, device="cpu")
    assert slicer_app.node_ids() == before


def test_models_folder_lists_bundles_with_tooltips(tmp_path, tiny_bundle):
    import shutil

    from FCDDetectLib.slicer_support.models_folder import list_bundles

    for where in ("site-a", "site-b"):  # the same name twice: told apart by folder
        shutil.copytree(tiny_bundle, tmp_path / where / "fold-0" / "model.fcdbundle")
    broken = tmp_path / "broken.fcdbundle"
    broken.mkdir()
    (broken / "bundle.json").write_text('{"format_version": 1}')
    listing = list_bundles(tmp_path)
    assert len(listing.bundles) == 2
    assert listing.bundles[0].name != listing.bundles[1].name
    assert all(entry.name.startswith("tiny-flair") for entry in listing.bundles)
    tooltip = listing.bundles[0].tooltip
    assert "ResNet-18 (medicalnet geometry)" in tooltip and "inputs: flair" in tooltip and "24x24x24" in tooltip
    assert len(listing.skipped) == 1 and "broken.fcdbundle" in listing.skipped[0]
    assert [e.path for e in list_bundles(tiny_bundle).bundles] == [tiny_bundle]  # a bundle itself
    with pytest.raises(FCDInputError, match="no such folder"):
        list_bundles(tmp_path / "absent")
