"""The one place converting MRML nodes to and from engine images (array (I, J, K), affine RAS).

``slicer.util.arrayFromVolume`` returns voxels as (K, J, I); the engine, nibabel and MONAI
use (I, J, K). Every transpose between the two lives here. A node's geometry is its
IJK-to-RAS matrix combined with its parent transform (when the transform is linear), so an
:class:`~FCDDetectLib.io.image_io.Image` made here is in world RAS coordinates, like one read
from the same file with nibabel.

Only ``slicer``'s VTK classes are used (no ``slicer.app``, no ``slicer.mrmlScene``), so the
same code runs in the Slicer application and on the ``slicer-core`` wheel.

Example:
    >>> from FCDDetectLib.mrml.conversion import image_from_volume_node, new_volume_node
    >>> image = image_from_volume_node(flairNode)  # doctest: +SKIP
    >>> image.array.shape == flairNode.GetImageData().GetDimensions()  # doctest: +SKIP
    True
    >>> node = new_volume_node(flairNode.GetScene(), image, "copy")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image, validate_array

# Tolerances deciding that a segment's grid is a sub-block of a reference grid.
_ROTATION_TOL = 1e-4
_OFFSET_TOL = 1e-3


def matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A ``vtkMatrix4x4`` as a 4x4 float64 numpy array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    """A 4x4 numpy array as a new ``vtkMatrix4x4``."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r][c]))
    return matrix


def node_label(node) -> str:
    """How error messages name a node: ``'FLAIR' (vtkMRMLScalarVolumeNode1)``."""
    return f"{node.GetName()!r} ({node.GetID()})" if node is not None else "no node"


def parent_to_world(node) -> np.ndarray:
    """The 4x4 matrix of the node's parent transforms (identity without one).

    A non-linear transform cannot be folded into an affine: that is an input error
    (harden the transform first).
    """
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise FCDInputError(
            f"{node_label(node)}: under a non-linear transform {transform.GetName()!r}; harden it first"
        )
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return matrix_to_array(matrix)


def volume_affine(node) -> np.ndarray:
    """The node's voxel-to-world RAS affine: parent transforms @ IJK-to-RAS."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return parent_to_world(node) @ matrix_to_array(matrix)


def _volume_array(node) -> np.ndarray:
    """Voxels of a scalar volume node as (I, J, K), checking that there are some."""
    if node is None:
        raise FCDInputError("no volume node given")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise FCDInputError(f"{node_label(node)}: not a scalar volume ({node.GetClassName()})")
    image_data = node.GetImageData()
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise FCDInputError(f"{node_label(node)}: volume node has no image data")
    dims = image_data.GetDimensions()
    if min(dims) < 1 or image_data.GetNumberOfPoints() == 0:
        raise FCDInputError(f"{node_label(node)}: volume node has no image data")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise FCDInputError(
            f"{node_label(node)}: {image_data.GetNumberOfScalarComponents()} components per voxel, "
            "expected a scalar volume"
        )
    # arrayFromVolume is (K, J, I): transpose to the engine's (I, J, K).
    return np.ascontiguousarray(slicer.util.arrayFromVolume(node).transpose(2, 1, 0))


def image_from_volume_node(node, name: str | None = None) -> Image:
    """A scalar volume node as an engine :class:`Image` (float32 (I, J, K), world RAS affine).

    Raises :class:`FCDInputError` for a missing node, a node with no image data, a vector
    volume, NaN/Inf or constant voxels (the engine's own checks, naming the node).
    """
    array = _volume_array(node).astype(np.float32)
    return validate_array(array, volume_affine(node), name or node_label(node))


def mask_from_volume_node(node, name: str | None = None) -> Image:
    """A label map or scalar volume node as a boolean mask Image (voxel > 0.5 is inside)."""
    array = _volume_array(node) > 0.5
    label = name or node_label(node)
    if not array.any():
        raise FCDInputError(f"{label}: mask has no voxels")
    return validate_array(array, volume_affine(node), label, constant_ok=True)


def _oriented_image_to_image(oriented) -> tuple[np.ndarray, np.ndarray]:
    """Array (I, J, K) and affine of a ``vtkOrientedImageData`` over its own extent."""
    extent = oriented.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    if min(dims) < 1 or oriented.GetPointData().GetScalars() is None:
        return np.zeros((0, 0, 0), dtype=bool), np.eye(4)
    flat = numpy_support.vtk_to_numpy(oriented.GetPointData().GetScalars())
    array = flat.reshape(dims[2], dims[1], dims[0]).transpose(2, 1, 0)
    matrix = vtk.vtkMatrix4x4()
    oriented.GetImageToWorldMatrix(matrix)
    image_to_world = matrix_to_array(matrix)
    # Voxel (0, 0, 0) of the array is IJK (extent[0], extent[2], extent[4]) of the image.
    shift = np.eye(4)
    shift[:3, 3] = [extent[0], extent[2], extent[4]]
    return array, image_to_world @ shift


def _embed_on_reference(mask: np.ndarray, affine: np.ndarray, reference: Image) -> np.ndarray | None:
    """``mask`` placed on the reference grid when it is a sub-block of it, else None.

    Segmentations are stored cropped to the segment's extent on the master volume's lattice:
    putting the block back exactly avoids a needless nearest-neighbour resampling.
    """
    relation = np.linalg.inv(reference.affine) @ affine
    if not np.allclose(relation[:3, :3], np.eye(3), atol=_ROTATION_TOL):
        return None
    offset = relation[:3, 3]
    if not np.allclose(offset, np.round(offset), atol=_OFFSET_TOL):
        return None
    start = np.round(offset).astype(int)
    out = np.zeros(reference.array.shape, dtype=bool)
    src = [slice(max(0, -s), min(n, r - s)) for s, n, r in zip(start, mask.shape, out.shape, strict=True)]
    dst = [slice(max(0, s), max(0, s) + (sl.stop - sl.start)) for s, sl in zip(start, src, strict=True)]
    if any(sl.stop <= sl.start for sl in src):
        return out
    out[tuple(dst)] = mask[tuple(src)]
    return out


def mask_from_segment(segmentation_node, segment_id: str, reference: Image | None = None) -> Image:
    """One segment of a segmentation node as a boolean mask Image in world RAS.

    The segment's binary labelmap keeps its own geometry; when ``reference`` is given and
    the segment lies on the same voxel lattice (the usual case: a segmentation drawn on the
    input volume) it is placed exactly onto the reference grid. Any other geometry is left
    as is, and the engine resamples it (nearest neighbour) and reports that it did.
    Raises :class:`FCDInputError` for a missing segment or a segment with no voxels.
    """
    if segmentation_node is None or not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise FCDInputError(f"{node_label(segmentation_node)}: not a segmentation node")
    segmentation = segmentation_node.GetSegmentation()
    label = f"segment {segment_id!r} of {node_label(segmentation_node)}"
    if not segment_id or segmentation.GetSegment(segment_id) is None:
        ids = list(segmentation.GetSegmentIDs())
        raise FCDInputError(f"{label}: no such segment (segments: {', '.join(ids) or 'none'})")
    parent_to_world(segmentation_node)  # refuses a non-linear parent transform
    if not segmentation.ContainsRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()):
        segmentation_node.CreateBinaryLabelmapRepresentation()
    oriented = slicer.vtkOrientedImageData()
    ok = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
        segmentation_node, segment_id, oriented, True
    )
    array, affine = _oriented_image_to_image(oriented) if ok else (np.zeros((0, 0, 0)), np.eye(4))
    # Segments may share one labelmap layer: keep only this segment's label value.
    mask = array == segmentation.GetSegment(segment_id).GetLabelValue()
    if mask.size == 0 or not mask.any():
        raise FCDInputError(f"{label}: segment has no voxels")
    if reference is not None:
        embedded = _embed_on_reference(mask, affine, reference)
        if embedded is not None:
            if not embedded.any():
                raise FCDInputError(f"{label}: segment lies outside the volume")
            return validate_array(embedded, reference.affine, label, constant_ok=True)
    # One empty voxel around the block keeps a one-slice segment 3D for the engine's checks.
    shift = np.eye(4)
    shift[:3, 3] = -1.0
    return validate_array(np.pad(mask, 1), affine @ shift, label, constant_ok=True)


def update_volume_node_from_image(node, image: Image) -> None:
    """Set a volume node's voxels and IJK-to-RAS matrix from an engine Image (deep copy).

    The node's parent transform is left alone: ``image.affine`` becomes its IJK-to-RAS.
    """
    array = np.asarray(image.array)
    if array.ndim != 3:
        raise FCDInputError(f"{node_label(node)}: expected a 3D array, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    # (I, J, K) -> (K, J, I) for updateVolumeFromArray.
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array.transpose(2, 1, 0)))
    node.SetIJKToRASMatrix(array_to_matrix(np.asarray(image.affine, dtype=np.float64)))


def new_volume_node(scene, image: Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """Add a volume node holding ``image`` to ``scene`` (no display node); returns the node."""
    node = scene.AddNewNodeByClass(class_name, name)
    try:
        update_volume_node_from_image(node, image)
    except Exception:
        scene.RemoveNode(node)
        raise
    return node
