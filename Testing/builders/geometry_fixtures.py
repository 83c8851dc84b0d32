"""Geometry helpers for tests: oblique/anisotropic/LPS affines, world-space phantoms, NIfTI writing.

Everything is defined in world (RAS, mm) coordinates so that a test can check where a
structure lands after resampling without trusting the code under test.

Example:
    >>> from geometry_fixtures import oblique_affine, world_coords
    >>> affine = oblique_affine((0.9, 1.3, 3.5), (20, 20, 0), lps=True)
    >>> world_coords(affine, (4, 5, 6)).shape
    (4, 5, 6, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np


def rotation(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix: about x by angles[0], then y by angles[1], then z by angles[2] (degrees)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_affine(
    spacing: Sequence[float],
    angles_deg: Sequence[float] = (0.0, 0.0, 0.0),
    lps: bool = False,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """4x4 voxel->RAS affine with voxel sizes ``spacing``, rotated by ``angles_deg``.

    ``lps=True`` makes the voxel axes run Left, Posterior, Superior (DICOM/ITK order)
    before the rotation: the first two columns point to -x and -y.
    """
    flip = np.diag([-1.0, -1.0, 1.0]) if lps else np.eye(3)
    affine = np.eye(4)
    affine[:3, :3] = rotation(angles_deg) @ flip @ np.diag(np.asarray(spacing, dtype=float))
    affine[:3, 3] = origin
    return affine


def centred_affine(
    spacing: Sequence[float],
    shape: Sequence[int],
    centre_world: Sequence[float] = (0.0, 0.0, 0.0),
    angles_deg: Sequence[float] = (0.0, 0.0, 0.0),
    lps: bool = False,
) -> np.ndarray:
    """Like :func:`oblique_affine`, with the origin chosen so the grid's centre is at ``centre_world``."""
    affine = oblique_affine(spacing, angles_deg, lps)
    centre_voxel = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(centre_world, dtype=float) - affine[:3, :3] @ centre_voxel
    return affine


def world_coords(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World (RAS mm) coordinates of every voxel centre, shape (*shape, 3)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), axis=-1)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def to_voxel(affine: np.ndarray, point_world: Sequence[float]) -> np.ndarray:
    """Continuous voxel index of a world point."""
    return (np.linalg.inv(affine) @ np.append(np.asarray(point_world, dtype=float), 1.0))[:3]


def gaussian_blob(
    affine: np.ndarray, shape: Sequence[int], centre_world: Sequence[float], sigma_mm: float
) -> np.ndarray:
    """Isotropic Gaussian (peak 1) centred at a world point, sampled on the grid."""
    d2 = ((world_coords(affine, shape) - np.asarray(centre_world, dtype=float)) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * sigma_mm**2)).astype(np.float32)


def head_phantom(
    affine: np.ndarray,
    shape: Sequence[int],
    centre_world: Sequence[float] = (0.0, 0.0, 0.0),
    radii_mm: Sequence[float] = (22.0, 26.0, 20.0),
    noise: float = 5.0,
    seed: int = 0,
) -> np.ndarray:
    """Ellipsoidal "head" (intensity ~100-200 with smooth texture) in noisy air (|N(0, noise)|)."""
    rng = np.random.default_rng(seed)
    world = world_coords(affine, shape)
    rel = (world - np.asarray(centre_world, dtype=float)) / np.asarray(radii_mm, dtype=float)
    inside = (rel**2).sum(-1) <= 1.0
    texture = (
        150.0 + 40.0 * np.sin(world[..., 0] / 7.0) * np.cos(world[..., 1] / 9.0) + 10.0 * world[..., 2] / 20.0
    )
    image = np.abs(rng.normal(0.0, noise, size=tuple(shape)))
    image[inside] = texture[inside] + rng.normal(0.0, noise, size=int(inside.sum()))
    return image.astype(np.float32)


def ellipsoid_mask(
    affine: np.ndarray, shape: Sequence[int], centre_world: Sequence[float], radii_mm: Sequence[float]
) -> np.ndarray:
    """Bool mask of the voxels whose centres lie in a world-space ellipsoid."""
    rel = (world_coords(affine, shape) - np.asarray(centre_world, dtype=float)) / np.asarray(
        radii_mm, dtype=float
    )
    return (rel**2).sum(-1) <= 1.0


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write a NIfTI with plain nibabel (independent of the engine's writer); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    image.set_sform(np.asarray(affine, dtype=np.float64), code=1)
    image.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    nib.save(image, str(path))
    return path
