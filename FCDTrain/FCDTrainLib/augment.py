"""Random rotations within +/- 15 degrees (paper 2.3), for a whole batch on its device.

Why not MONAI's ``RandRotate``: it draws one angle set per call on one sample and keeps
its own random state; here the whole batch is rotated in one ``affine_grid`` /
``grid_sample`` call on the training device (the GPU when training there), with the
angles drawn from a ``torch.Generator`` seeded per fold, epoch and batch, so an
interrupted and resumed run sees exactly the same augmentations.

Example:
    >>> import torch
    >>> batch = torch.randn(2, 1, 16, 20, 16)
    >>> rotated = random_rotate(batch, 15.0, torch.Generator().manual_seed(0))
    >>> rotated.shape
    torch.Size([2, 1, 16, 20, 16])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(N, 3) angles in radians about the three axes -> (N, 3, 3) rotation matrices."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])

    def stack(rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    rx = stack([[one, zero, zero], [zero, cos[:, 0], -sin[:, 0]], [zero, sin[:, 0], cos[:, 0]]])
    ry = stack([[cos[:, 1], zero, sin[:, 1]], [zero, one, zero], [-sin[:, 1], zero, cos[:, 1]]])
    rz = stack([[cos[:, 2], -sin[:, 2], zero], [sin[:, 2], cos[:, 2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def random_rotate(batch: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each volume of ``batch`` (N, C, X, Y, Z) by random angles in ``[-max, max]`` degrees.

    Rotation is about the volume centre in physical (isotropic voxel) space; voxels that
    come from outside the volume take the nearest border value (the background of a
    cropped, z-scored head). The angles are drawn on the CPU from ``generator`` (so the
    draw does not depend on the device), then the resampling runs on ``batch.device``.
    """
    if max_degrees <= 0:
        return batch
    n = batch.shape[0]
    limit = math.radians(max_degrees)
    angles = (torch.rand((n, 3), generator=generator, dtype=torch.float64) * 2 - 1) * limit
    rotation = rotation_matrices(angles)
    # affine_grid works in normalised coordinates in (z, y, x) = (K, J, I) order of the last
    # three dims; scale so the rotation is rigid in voxel space for non-cubic volumes.
    size = torch.tensor(batch.shape[2:][::-1], dtype=torch.float64)  # (K, J, I) extents
    scale = torch.diag(size)
    inverse_scale = torch.diag(1.0 / size)
    theta = torch.zeros((n, 3, 4), dtype=torch.float64)
    theta[:, :, :3] = inverse_scale @ rotation @ scale
    theta = theta.to(device=batch.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid.to(batch.dtype), mode="bilinear", padding_mode="border", align_corners=False)
