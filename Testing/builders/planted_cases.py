"""Scans of the planted model on other grids, and the blob centres the explanation tests use.

Shared by ``Testing/engine/test_detect.py``, ``Testing/engine/test_explain.py`` and
``benchmarks/numerics_spread.py`` (which measures the margins those tests use).
"""

from __future__ import annotations

import numpy as np
from FCDDetectLib.io.image_io import Image
from scipy.ndimage import map_coordinates

# Blob centres on layer4 cell centres (cell k of the medicalnet geometry sees voxel 8k).
CENTERS = [(8, 16, 24), (24, 8, 16), (16, 16, 16)]


def local_heat_score(heat: np.ndarray, roi: np.ndarray) -> float:
    """HS = (mean H in ROI - mean H outside) / std H outside (paper, section 2.5)."""
    outside = heat[~roi]
    return float((heat[roi].mean() - outside.mean()) / outside.std())


MODEL_SPACING = 4.0
# Blob centre on the planted model's 32^3 grid. Grad-CAM cells of layer4 are 8 voxels (32 mm)
# apart: a blob on a cell centre can be localised to within itself.
CENTER = (24, 16, 16)


def model_affine(shape: tuple[int, int, int]) -> np.ndarray:
    affine = np.diag([MODEL_SPACING] * 3 + [1.0])
    affine[:3, 3] = -MODEL_SPACING * (np.asarray(shape) - 1) / 2
    return affine


def resample_onto(volume: np.ndarray, source_affine: np.ndarray, affine: np.ndarray,
                   shape: tuple[int, int, int], order: int) -> np.ndarray:
    """Sample ``volume`` at the world positions of the voxels of (affine, shape)."""
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    source_ijk = np.linalg.solve(source_affine[:3, :3], world - source_affine[:3, 3:4])
    values = map_coordinates(volume, source_ijk, order=order, mode="constant", cval=0.0)
    return values.reshape(shape).astype(np.float32)


def grid_case(planted, affine: np.ndarray, shape: tuple[int, int, int]):
    """Patient scan, blob outline and control scan of the planted model, sampled onto (affine, shape)."""
    source_affine = model_affine(planted.shape)
    volume = resample_onto(planted.make_volume(center=CENTER, seed=7), source_affine, affine, shape, order=1)
    blob = planted.blob_mask(CENTER).astype(np.float32)
    roi = resample_onto(blob, source_affine, affine, shape, order=0) > 0.5
    control = resample_onto(planted.make_volume(center=None, seed=8), source_affine, affine, shape, order=1)
    blob_world = source_affine[:3, :3] @ np.asarray(CENTER) + source_affine[:3, 3]
    return Image(volume, affine), Image(roi, affine), Image(control, affine), blob_world
