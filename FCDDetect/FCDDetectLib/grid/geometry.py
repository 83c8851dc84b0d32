"""Grid facts shared by the engine and the trainer: voxel sizes and "same grid".

A *grid* is a shape (first three axes) and a 4x4 voxel-to-RAS affine (mm). Two grids are
the same when the shapes are equal and every affine entry agrees within
:data:`GRID_ATOL_MM`, the one tolerance of the project: NIfTI stores the affine in
float32, whose rounding on a 100-200 mm offset is about 1e-5 mm, so 1e-3 mm tolerates
header round trips while staying a thousandth of the finest voxel anyone scans.

Example:
    >>> import numpy as np
    >>> voxel_sizes(np.diag([0.8, 0.8, 3.0, 1.0]))
    (0.8, 0.8, 3.0)
    >>> same_grid(((4, 4, 4), np.eye(4)), ((4, 4, 4), np.eye(4) + 1e-5))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

GRID_ATOL_MM = 1e-3
"""Affines whose entries differ by less than this (mm) describe the same grid."""

Grid = tuple[tuple[int, ...], np.ndarray]
"""``(shape, affine)``."""


def voxel_sizes(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel edge lengths (mm) along each array axis: the column norms of the affine's 3x3 part.

    Example:
        >>> voxel_sizes(np.diag([2.0, 2.0, 2.0, 1.0]))
        (2.0, 2.0, 2.0)
    """
    return tuple(float(v) for v in np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0)))


def mask_bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Voxel box ``[start, stop)`` per axis holding every True (non-zero) voxel of ``mask``; None when empty.

    Computed from one projection per axis, not from the coordinates of every voxel (a 1 mm
    head has millions of them).

    Example:
        >>> m = np.zeros((4, 5, 6), bool); m[1, 2:4, 5] = True
        >>> [v.tolist() for v in mask_bounds(m)]
        [[1, 2, 5], [2, 4, 6]]
    """
    data = np.asarray(mask, dtype=bool)
    start, stop = [], []
    for axis in range(data.ndim):
        hit = np.flatnonzero(data.any(axis=tuple(a for a in range(data.ndim) if a != axis)))
        if hit.size == 0:
            return None
        start.append(int(hit[0]))
        stop.append(int(hit[-1]) + 1)
    return np.array(start), np.array(stop)


def grid_of(item: Any) -> Grid:
    """``(shape, affine)`` of an :class:`~FCDDetectLib.io.image_io.Image` (or of a grid tuple)."""
    if hasattr(item, "array") and hasattr(item, "affine"):
        return tuple(int(n) for n in np.shape(item.array)[:3]), np.asarray(item.affine, dtype=np.float64)
    shape, affine = item
    return tuple(int(n) for n in tuple(shape)[:3]), np.asarray(affine, dtype=np.float64)


def same_grid(a: Any, b: Any) -> bool:
    """True when two grids (``Image`` objects or ``(shape, affine)`` tuples) match within :data:`GRID_ATOL_MM`.

    Example:
        >>> same_grid(((2, 2, 2), np.eye(4)), ((2, 2, 3), np.eye(4)))
        False
    """
    (shape_a, affine_a), (shape_b, affine_b) = grid_of(a), grid_of(b)
    return shape_a == shape_b and bool(np.allclose(affine_a, affine_b, rtol=0.0, atol=GRID_ATOL_MM))


def mask_onto_grid(mask: Any, grid: Any) -> np.ndarray:
    """Nearest-neighbour resampling of a mask ``Image`` onto ``grid`` through the affines (False outside).

    ``grid`` is an ``Image`` or a ``(shape, affine)`` tuple. Returns a bool array of the grid's shape.

    Example:
        >>> roi_on_heatmap = mask_onto_grid(roi, heatmap)  # doctest: +SKIP
    """
    import nibabel as nib
    from nibabel.processing import resample_from_to

    shape, affine = grid_of(grid)
    source = nib.Nifti1Image((np.asarray(mask.array) > 0.5).astype(np.uint8), np.asarray(mask.affine, float))
    moved = resample_from_to(source, (shape, affine), order=0, mode="constant", cval=0)
    return np.asarray(moved.dataobj) > 0.5
