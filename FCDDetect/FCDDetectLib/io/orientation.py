"""LPS (DICOM, ITK, NRRD, MetaImage) <-> RAS (nibabel, the engine, Slicer world): the one place.

The engine's affines map a voxel index (i, j, k) to RAS millimetres (nibabel's convention).
ITK/SimpleITK and DICOM describe the same grid with an origin, a spacing and a direction
matrix in LPS: ``x_lps = origin + direction @ (spacing * ijk)``. RAS and LPS differ by the
sign of the first two world axes, so ``affine_ras = diag(-1, -1, 1, 1) @ affine_lps``.
SimpleITK arrays are (K, J, I); the engine's are (I, J, K). Every reader and writer that
crosses between the two conventions calls these functions and nothing else does the flip.

Example:
    >>> import numpy as np
    >>> affine = itk_to_ras_affine(origin=(10.0, 20.0, 30.0), spacing=(1.0, 2.0, 3.0), direction=np.eye(3))
    >>> affine[:3, 3].tolist(), np.diag(affine)[:3].tolist()
    ([-10.0, -20.0, 30.0], [-1.0, -2.0, 3.0])
    >>> origin, spacing, direction = ras_affine_to_itk(affine)
    >>> origin.tolist(), spacing.tolist()
    ([10.0, 20.0, 30.0], [1.0, 2.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flips world x and y: LPS <-> RAS (its own inverse)."""


def itk_to_ras_affine(origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """4x4 voxel (i, j, k) -> RAS affine from an ITK/DICOM LPS geometry (direction: 9 values or 3x3, row-major)."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(np.asarray(spacing, dtype=np.float64))
    lps[:3, 3] = np.asarray(origin, dtype=np.float64)
    return LPS_TO_RAS @ lps


def ras_affine_to_itk(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(origin, spacing, direction 3x3)`` in LPS for a voxel -> RAS affine (inverse of :func:`itk_to_ras_affine`)."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return lps[:3, 3].copy(), spacing, lps[:3, :3] / spacing


def ras_to_lps_point(point: Sequence[float]) -> np.ndarray:
    """A world point in RAS mm -> LPS mm (the same flip, for points)."""
    return LPS_TO_RAS[:3, :3] @ np.asarray(point, dtype=np.float64)


def itk_array_to_ijk(array: np.ndarray) -> np.ndarray:
    """SimpleITK's (K, J, I[, C]) array -> the engine's (I, J, K[, C]) order (a view)."""
    axes = (2, 1, 0) if array.ndim == 3 else (2, 1, 0, *range(3, array.ndim))
    return array.transpose(axes)


def sitk_image_to_ras_affine(image) -> np.ndarray:
    """The RAS affine of a 3D SimpleITK image (or of a reader after ``ReadImageInformation``)."""
    return itk_to_ras_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
