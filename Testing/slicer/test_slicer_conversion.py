"""MRML node <-> engine Image conversion on a real MRML scene (slicer-core wheel).

Round trips on oblique, anisotropic, LPS-oriented volumes checked against nibabel's own
reading of the files; segments to masks; bad nodes named in clear errors.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import slicer
import vtk
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.mrml.conversion import (
    image_from_volume_node,
    mask_from_segment,
    mask_from_volume_node,
    new_volume_node,
    volume_affine,
)

from Testing.builders.geometry_fixtures import centred_affine, ellipsoid_mask, head_phantom, write_nifti
from Testing.builders.slicer_fixtures import node_matrix

SHAPE = (20, 26, 12)  # non-cubic so that any axis mix-up changes the shape
SPACING = (1.1, 0.9, 3.0)  # anisotropic, thick slices
ANGLES = (12.0, -18.0, 25.0)  # oblique


@pytest.fixture
def oblique_files(tmp_path):
    affine = centred_affine(SPACING, SHAPE, centre_world=(4.0, -7.0, 11.0), angles_deg=ANGLES, lps=True)
    image = head_phantom(affine, SHAPE, centre_world=(4.0, -7.0, 11.0), radii_mm=(9, 10, 14))
    roi = ellipsoid_mask(affine, SHAPE, (6.0, -5.0, 13.0), (3.5, 3.5, 5.0)).astype(np.uint8)
    roi[2:4, 2:4, 1:3] = 2  # a second label: a second segment
    volume_path = write_nifti(tmp_path / "flair.nii.gz", image, affine)
    roi_path = write_nifti(tmp_path / "roi.nii.gz", roi, affine)
    return volume_path, roi_path


def _nib(path):
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def test_file_to_node_to_image_equals_nibabel(slicer_app, oblique_files):
    path, _ = oblique_files
    node = slicer_app.load_volume(path, "FLAIR")
    expected, affine = _nib(path)
    image = image_from_volume_node(node)
    assert image.array.shape == SHAPE
    np.testing.assert_array_equal(image.array, expected.astype(np.float32))
    np.testing.assert_allclose(image.affine, affine, atol=1e-4)
    # Slicer's own view of the same voxels is (K, J, I).
    assert slicer.util.arrayFromVolume(node).shape == SHAPE[::-1]
    # LPS input: the first voxel axes point left/posterior in world space.
    assert image.affine[0, 0] < 0 or abs(image.affine[0, 0]) < abs(image.affine[1, 0]) + abs(image.affine[2, 0])


def test_image_to_node_to_file_equals(slicer_app, oblique_files, tmp_path):
    path, _ = oblique_files
    source = nib.load(str(path))
    image = Image(np.asarray(source.dataobj, dtype=np.float32), source.affine)
    node = new_volume_node(slicer_app.scene, image, "copy")
    np.testing.assert_allclose(node_matrix(node), image.affine, atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), image.array.transpose(2, 1, 0))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    slicer_app.scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "written.nii.gz"))
    assert storage.WriteData(node)
    written, written_affine = _nib(tmp_path / "written.nii.gz")
    np.testing.assert_array_equal(written.astype(np.float32), image.array)
    np.testing.assert_allclose(written_affine, image.affine, atol=1e-4)


def test_parent_linear_transform_is_applied(slicer_app, oblique_files):
    path, _ = oblique_files
    node = slicer_app.load_volume(path, "FLAIR")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -3.0, 2.0]
    shift[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    transform = slicer_app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T")
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, shift[r, c])
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(volume_affine(node), shift @ node_matrix(node), atol=1e-9)
    np.testing.assert_allclose(image_from_volume_node(node).affine, shift @ _nib(path)[1], atol=1e-4)


def test_segment_to_mask_on_volume_grid(slicer_app, oblique_files):
    volume_path, roi_path = oblique_files
    volume = image_from_volume_node(slicer_app.load_volume(volume_path, "FLAIR"))
    labelmap = slicer_app.load_volume(roi_path, "ROI", labelmap=True)
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    segmentation = slicer_app.segmentation_from_labelmap(labelmap)
    ids = list(segmentation.GetSegmentation().GetSegmentIDs())
    assert len(ids) == 2
    roi, _ = _nib(roi_path)
    first = mask_from_segment(segmentation, ids[0], reference=volume)
    second = mask_from_segment(segmentation, ids[1], reference=volume)
    assert first.array.dtype == bool and first.array.shape == SHAPE
    np.testing.assert_array_equal(first.array, roi == 1)  # exactly label 1, not label 2
    np.testing.assert_array_equal(second.array, roi == 2)
    np.testing.assert_allclose(first.affine, volume.affine, atol=1e-9)


def _world_points(image: Image) -> np.ndarray:
    ijk = np.argwhere(image.array)
    return ijk @ image.affine[:3, :3].T + image.affine[:3, 3]


def test_segment_without_reference_keeps_world_positions(slicer_app, oblique_files):
    volume_path, roi_path = oblique_files
    labelmap = slicer_app.load_volume(roi_path, "ROI", labelmap=True)
    segmentation = slicer_app.segmentation_from_labelmap(labelmap)
    segment_id = segmentation.GetSegmentation().GetSegmentIDs()[0]
    mask = mask_from_segment(segmentation, segment_id)
    roi, affine = _nib(roi_path)
    expected = _world_points(Image(roi == 1, affine))
    got = _world_points(mask)
    assert len(got) == len(expected)
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(expected, axis=0), atol=1e-3)


def test_mask_from_labelmap_node(slicer_app, oblique_files):
    _, roi_path = oblique_files
    labelmap = slicer_app.load_volume(roi_path, "ROI", labelmap=True)
    roi, _ = _nib(roi_path)
    np.testing.assert_array_equal(mask_from_volume_node(labelmap).array, roi > 0)


def test_volume_node_without_image_data_is_an_error(slicer_app):
    empty = slicer_app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty")
    with pytest.raises(FCDInputError, match="'Empty'.*no image data"):
        image_from_volume_node(empty)
    with pytest.raises(FCDInputError, match="no volume node"):
        image_from_volume_node(None)


def test_empty_and_missing_segments_are_errors(slicer_app, oblique_files):
    _, roi_path = oblique_files
    labelmap = slicer_app.load_volume(roi_path, "ROI", labelmap=True)
    segmentation = slicer_app.segmentation_from_labelmap(labelmap, "Lesion")
    empty_id = segmentation.GetSegmentation().AddEmptySegment("nothing")
    with pytest.raises(FCDInputError, match="nothing.*'Lesion'.*no voxels"):
        mask_from_segment(segmentation, empty_id)
    with pytest.raises(FCDInputError, match="no such segment"):
        mask_from_segment(segmentation, "does-not-exist")
    with pytest.raises(FCDInputError, match="not a segmentation node"):
        mask_from_segment(labelmap, "x")


def test_constant_volume_is_an_error(slicer_app):
    node = new_volume_node(slicer_app.scene, Image(np.ones((6, 7, 8), np.float32), np.eye(4)), "Flat")
    with pytest.raises(FCDInputError, match="'Flat'.*constant"):
        image_from_volume_node(node)


def test_non_linear_transform_is_an_error(slicer_app, oblique_files):
    path, _ = oblique_files
    node = slicer_app.load_volume(path, "FLAIR")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point, shift in (((0, 0, 0), (1, 0, 0)), ((30, 0, 0), (30, 2, 0)), ((0, 30, 0), (0, 30, 3)),
                         ((0, 0, 30), (2, 0, 30))):
        source.InsertNextPoint(*point)
        target.InsertNextPoint(*shift)
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    transform = slicer_app.scene.AddNewNodeByClass("vtkMRMLTransformNode", "Warp")
    transform.SetAndObserveTransformToParent(spline)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(FCDInputError, match="'FLAIR'.*non-linear transform 'Warp'.*harden"):
        image_from_volume_node(node)
