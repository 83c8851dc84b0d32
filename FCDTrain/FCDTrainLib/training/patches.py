"""Patch-based lesion training batches with foreground oversampling (nnU-Net's sampling).

``fcd train --supervision lesion --patch X Y Z`` trains on patches of the model grid instead
of whole volumes, as nnU-Net does (Isensee et al., *nnU-Net*, Nature Methods 18, 2021;
``nnunetv2``'s ``DataLoader3D``): each training volume gives one patch per epoch, and a share
of the patches (``--foreground-fraction``, nnU-Net's ``oversample_foreground_percent`` = 0.33)
is centred on a random lesion voxel, the rest lie anywhere in the volume. On the thin lesions
of ``fcd synth --subtlety 0.5`` a lesion is 0.01-0.1 % of a whole volume; in a 32^3 patch
centred on it, some 5 %. A patch also costs a fraction of a volume (32^3 of 64 x 72 x 64
voxels: 11 %), so an epoch is cheaper.

The lesion share is counted over all patches: the patients with a known lesion are the only
ones that can give a lesion patch, so each of their patches is centred on the lesion with
probability ``fraction * n / n_with_lesion`` (at most 1); with half the cohort patients, that
is 0.66 per patient for a third of all patches.

The class target of a patch is whether it holds lesion (a target voxel >= 0.5); a patient
without an ROI (target unknown) keeps its own label. A whole-volume label on a patch would
call a patch of healthy cortex from a patient "fcd". So a lesion model's classifier head
learns "a lesion in view", and its p(FCD) on a whole scan is not the paper's; the decision
of a lesion model is its lesion evidence (``docs/lesion-level.md``).

Patches are cut after the rotation, shift and flip of the whole volume (the transform's
corners are then real voxels, not the border values a rotated patch would drag in). Every
random draw comes from the epoch's generator: a resumed fold cuts the same patches.

Example:
    >>> import torch
    >>> roi = torch.zeros(2, 1, 16, 16, 16); roi[0, 0, 10:12, 10:12, 10:12] = 1.0
    >>> sampler = PatchSampler([8, 8, 8], 0.5, roi, torch.tensor([True, True]))
    >>> sampler.centre_probability
    1.0
    >>> batch = {"x": torch.randn(2, 1, 16, 16, 16), "y": torch.tensor([1, 0]), "roi": roi,
    ...          "roi_known": torch.tensor([True, True])}
    >>> patch = sampler.crop(batch, torch.Generator().manual_seed(0))
    >>> tuple(patch["x"].shape), patch["y"].tolist(), bool(patch["roi"][0].max() == 1.0)
    ((2, 1, 8, 8, 8), [1, 0], True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["LESION_LEVEL", "PatchSampler"]

LESION_LEVEL = 0.5
"""A target voxel at or above this share of lesion counts as lesion (the cached ROIs are linear)."""


class PatchSampler:
    """Cuts one patch per volume of a batch, a share of them centred on the lesion.

    Args:
        size: patch size in voxels (X, Y, Z), at most the volume's.
        foreground_fraction: share of all patches centred on a lesion voxel.
        train_roi: the fold's training targets (N, 1, X, Y, Z), to count who holds lesion.
        train_roi_known: (N,) bool, False for a patient without an ROI.
    """

    def __init__(self, size: Sequence[int], foreground_fraction: float, train_roi: torch.Tensor,
                 train_roi_known: torch.Tensor) -> None:
        self.size = [int(s) for s in size]
        n = int(train_roi.shape[0])
        holds = (train_roi >= LESION_LEVEL).flatten(1).any(1).cpu() & train_roi_known.cpu().bool()
        with_lesion = int(holds.sum())
        self.centre_probability = min(1.0, float(foreground_fraction) * n / with_lesion) if with_lesion else 0.0

    def corners(self, roi: torch.Tensor, known: torch.Tensor, generator: torch.Generator) -> list[list[int]]:
        """The patch corner of each volume of a batch (four draws per volume, whichever branch)."""
        shape = list(roi.shape[2:])
        size = [min(s, v) for s, v in zip(self.size, shape, strict=True)]
        draws = torch.rand((roi.shape[0], 4), generator=generator, dtype=torch.float64)
        corners = []
        for i in range(roi.shape[0]):
            lesion = (roi[i, 0] >= LESION_LEVEL).nonzero().cpu() if bool(known[i]) else torch.zeros((0, 3))
            if len(lesion) and float(draws[i, 0]) < self.centre_probability:
                centre = lesion[min(len(lesion) - 1, int(float(draws[i, 1]) * len(lesion)))].tolist()
                corner = [min(max(0, int(c) - s // 2), v - s) for c, s, v in zip(centre, size, shape, strict=True)]
            else:
                corner = [min(v - s, int(float(d) * (v - s + 1))) for d, s, v in
                          zip(draws[i, 1:].tolist(), size, shape, strict=True)]
            corners.append(corner)
        return corners

    def crop(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The batch cut to patches: ``x`` and ``roi`` cropped, ``y`` = the patch holds lesion (see module)."""
        x, roi, known = batch["x"], batch["roi"], batch["roi_known"]
        size = [min(s, v) for s, v in zip(self.size, x.shape[2:], strict=True)]
        corners = self.corners(roi, known, generator)

        def cut(volume: torch.Tensor) -> torch.Tensor:
            return torch.stack([volume[i, :, c[0]:c[0] + size[0], c[1]:c[1] + size[1], c[2]:c[2] + size[2]]
                                for i, c in enumerate(corners)])

        out = dict(batch)
        out["x"], out["roi"] = cut(x), cut(roi)
        holds = (out["roi"] >= LESION_LEVEL).flatten(1).any(1)
        out["y"] = torch.where(known.to(holds.device), holds.long(), batch["y"])
        return out
