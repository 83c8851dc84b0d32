"""``fcd train --scanner-augment``: new scanner effects on every training volume, every epoch.

``fcd synth --randomize`` draws each scan once; this draws new effects on the model grid each
time a volume is used, the augmentation half of SynthSeg's recipe. Per volume and channel:

- a contrast change: gamma in :data:`GAMMA` on the volume scaled to 0..1;
- a smooth multiplicative bias field: exp of a random 4 x 4 x 4 lattice (sd :data:`BIAS_SD`)
  upsampled with cubic-like (trilinear, align_corners) interpolation over the volume;
- on :data:`P_LOW_RES` of the volumes a lower resolution: down by a factor of 1-2 per axis
  (area average) and back up (trilinear);
- on :data:`P_NOISE` of them Rician noise of up to :data:`NOISE_SD` of the head's intensity.

The volume is shifted to be non-negative first (its air becomes 0, as in a magnitude image)
and z-scored inside its head again after (the head: the voxels above 10 % of its maximum
before the changes), as preprocessing does. The lesion target is not touched: nothing here
moves a voxel. Every draw comes from the trainer's per-epoch generator, so a resumed run sees
the same augmentations.

Why not MONAI's ``RandAdjustContrast`` / ``RandBiasField`` / ``RandSimulateLowResolution`` /
``RandRicianNoise``: they work one volume at a time in numpy with their own random state;
measured on this 2-core machine (loaded), 0.1-0.5 s per transform and volume on a 48 x 56 x 48
grid, about 1.5 s per channel, several times a training step. The same effects as batched
torch operations on the training device cost a few milliseconds per batch.

Example:
    >>> import torch
    >>> x = torch.randn(2, 1, 16, 20, 16)
    >>> scanner_augment(x, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 1, 16, 20, 16])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GAMMA = (0.7, 1.4)
BIAS_SD = 0.15
P_LOW_RES = 0.25
P_NOISE = 0.5
NOISE_SD = 0.08


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float32)


def scanner_augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """New random scanner effects on each channel of each volume of ``batch`` (N, C, X, Y, Z), re-z-scored."""
    n, c, *size = batch.shape
    device = batch.device
    # every draw first, on the CPU generator, in a fixed order (the device does not change them)
    gamma = torch.exp(_uniform((n, c), math.log(GAMMA[0]), math.log(GAMMA[1]), generator))
    lattice = torch.randn((n, c, 4, 4, 4), generator=generator) * BIAS_SD
    low_res = torch.rand((n,), generator=generator) < P_LOW_RES
    factors = _uniform((n, 3), 1.0, 2.0, generator)
    noisy = torch.rand((n,), generator=generator) < P_NOISE
    noise_sd = _uniform((n, c), 0.0, NOISE_SD, generator)
    noise = torch.randn((2, n, c, *size), generator=generator) if bool(noisy.any()) else None

    x = batch.detach().float()
    x = x - x.amin(dim=(2, 3, 4), keepdim=True)
    peak = x.amax(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
    head = x > 0.1 * peak
    x = (x / peak).clamp_min(0) ** gamma.to(device)[:, :, None, None, None]
    field = F.interpolate(lattice.to(device), size=tuple(size), mode="trilinear", align_corners=True)
    x = x * torch.exp(field)
    for index in torch.nonzero(low_res).flatten().tolist():
        coarse = [max(2, round(s / float(f))) for s, f in zip(size, factors[index], strict=True)]
        small = F.adaptive_avg_pool3d(x[index:index + 1], coarse)
        x[index:index + 1] = F.interpolate(small, size=tuple(size), mode="trilinear", align_corners=False)
    if noise is not None:
        level = (noise_sd * noisy[:, None].float()).to(device)[:, :, None, None, None]
        real, imaginary = (noise[k].to(device) * level for k in range(2))
        x = torch.sqrt((x + real) ** 2 + imaginary ** 2)
    count = head.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1)
    mean = (x * head).sum(dim=(2, 3, 4), keepdim=True) / count
    var = (((x - mean) * head) ** 2).sum(dim=(2, 3, 4), keepdim=True) / count
    return ((x - mean) / var.sqrt().clamp_min(1e-6)).to(batch.dtype)
