"""Random rotations within +/- 15 degrees (paper 2.3), optional shifts and left-right flips.

The paper augments with rotations only (the default). ``fcd train --shift MM --flip`` adds
random translations and left-right mirroring (a lesion may sit in either hemisphere, so a
mirrored brain keeps its label); without them a ResNet trained from scratch on a few
hundred brains memorises the brains instead of learning the lesions (README, "The demo").
Everything happens in one ``affine_grid`` / ``grid_sample`` call per batch.

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
    >>> moved = random_augment(batch, torch.Generator().manual_seed(0), 15.0, (2.0, 2.0, 2.0), flip_axis=0)
    >>> moved.shape
    torch.Size([2, 1, 16, 20, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    return random_augment(batch, generator, max_degrees)


def random_augment(
    batch: torch.Tensor,
    generator: torch.Generator,
    max_degrees: float = 15.0,
    max_shift_voxels: Sequence[float] = (0.0, 0.0, 0.0),
    flip_axis: int | None = None,
) -> torch.Tensor:
    """Rotate, shift and mirror each volume of ``batch`` (N, C, X, Y, Z) at random.

    Args:
        batch: the volumes; returned unchanged when nothing is asked.
        generator: CPU generator for every random draw (angles first, then flips, then
            shifts), so a rotation-only call draws exactly what :func:`random_rotate` does.
        max_degrees: rotation angles uniform in ``[-max, max]`` about each axis.
        max_shift_voxels: translation uniform in ``[-max, max]`` voxels along X, Y, Z.
        flip_axis: 0, 1 or 2 to mirror half of the volumes along that axis (0 is
            left-right on the RAS model grid), or None.
    """
    shifts = torch.as_tensor(max_shift_voxels, dtype=torch.float64)
    if max_degrees <= 0 and flip_axis is None and not bool((shifts > 0).any()):
        return batch
    n = batch.shape[0]
    limit = math.radians(max(max_degrees, 0.0))
    angles = (torch.rand((n, 3), generator=generator, dtype=torch.float64) * 2 - 1) * limit
    rotation = rotation_matrices(angles)
    # affine_grid works in normalised coordinates in (z, y, x) = (K, J, I) order of the last
    # three dims; scale so the rotation is rigid in voxel space for non-cubic volumes.
    size = torch.tensor(batch.shape[2:][::-1], dtype=torch.float64)  # (K, J, I) extents
    scale = torch.diag(size)
    inverse_scale = torch.diag(1.0 / size)
    theta = torch.zeros((n, 3, 4), dtype=torch.float64)
    theta[:, :, :3] = inverse_scale @ rotation @ scale
    if flip_axis is not None:
        if flip_axis not in (0, 1, 2):
            raise ValueError(f"flip_axis {flip_axis!r}: expected 0, 1, 2 or None")
        mirrored = torch.rand(n, generator=generator) < 0.5
        sign = torch.ones((n, 3), dtype=torch.float64)
        sign[mirrored, 2 - flip_axis] = -1.0  # with align_corners=False, x -> -x is an exact voxel flip
        theta[:, :, :3] = theta[:, :, :3] * sign[:, None, :]
    if bool((shifts > 0).any()):
        # uniform in [-max, max] voxels, as a fraction of the normalised extent 2 (K, J, I order)
        draw = (torch.rand((n, 3), generator=generator, dtype=torch.float64) * 2 - 1) * shifts.flip(0)
        theta[:, :, 3] = 2.0 * draw / size
    theta = theta.to(device=batch.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid.to(batch.dtype), mode="bilinear", padding_mode="border", align_corners=False)
