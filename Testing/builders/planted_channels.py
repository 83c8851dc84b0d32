"""A tiny two-channel classifier whose only evidence is a blob in channel 2.

Test helper (not a test file). Like :mod:`Testing.builders.planted_model`, but each volume
has two channels over independent smooth textures: channel 1 (say T1) never carries a
blob; channel 2 (say FLAIR) carries one in class 1, bright (``contrast > 0``) or dark
(``contrast < 0``). A network trained on these can only find the evidence in channel 2,
so a per-channel saliency must put it there, with the sign of the contrast. The trained
model is cached per process (per argument set).

Example:
    >>> from Testing.builders.planted_channels import train_two_channel_model
    >>> planted = train_two_channel_model(contrast=45.0)
    >>> x = planted.to_input(planted.make_volumes(center=(16, 16, 16), seed=3))  # (1, 2, X, Y, Z)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from FCDDetectLib.networks.resnets import build_resnet

from Testing.builders.planted_model import blob_mask, make_volume, normalise, random_center, soft_blob

_CACHE: dict[tuple, TwoChannelModel] = {}


def make_volumes(shape: tuple[int, int, int], center: tuple[int, int, int] | None, radius: float, seed: int,
                 contrast: float) -> np.ndarray:
    """Raw (2, X, Y, Z) float32: channel 1 texture only, channel 2 texture plus ``contrast`` x blob."""
    first = make_volume(shape, None, radius, seed=2 * seed)
    second = make_volume(shape, None, radius, seed=2 * seed + 1)
    if center is not None:
        second = second + contrast * soft_blob(shape, center, radius)
    return np.stack([first, second]).astype(np.float32)


@dataclass
class TwoChannelModel:
    """A trained two-channel planted classifier and the recipe of its data."""

    model: torch.nn.Module
    shape: tuple[int, int, int]
    radius: float
    contrast: float
    accuracy: float

    def make_volumes(self, center: tuple[int, int, int] | None = None, seed: int = 12345) -> np.ndarray:
        return make_volumes(self.shape, center, self.radius, seed, self.contrast)

    def blob_mask(self, center: tuple[int, int, int]) -> np.ndarray:
        return blob_mask(self.shape, center, self.radius)

    def to_input(self, volumes: np.ndarray) -> torch.Tensor:
        """(1, 2, X, Y, Z) float32, each channel z-scored inside its head."""
        return torch.from_numpy(np.stack([normalise(v) for v in volumes]))[None]


def train_two_channel_model(contrast: float = 45.0, shape: tuple[int, int, int] = (32, 32, 32),
                            radius: float = 5.0, steps: int = 80, batch_size: int = 8, seed: int = 0,
                            widen_factor: float = 0.125) -> TwoChannelModel:
    """Train (or fetch from the cache) a narrow 2-channel MONAI ResNet-18 on blob vs no blob.

    The dark blob (``contrast < 0``) lowers the head's intensity at most to 55 of 100, well
    above the head threshold, so normalisation sees the same head in both classes. The global
    torch RNG state is left untouched.
    """
    key = (contrast, tuple(shape), radius, steps, batch_size, seed, widen_factor)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_resnet(18, in_channels=2, geometry="medicalnet", widen_factor=widen_factor)
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
        model.train()
        for step in range(steps):
            labels = np.array([i % 2 for i in range(batch_size)])
            batch = []
            for i, label in enumerate(labels):
                center = random_center(shape, radius, rng) if label else None
                volumes = make_volumes(shape, center, radius, seed * 100003 + step * batch_size + i, contrast)
                batch.append(np.stack([normalise(v) for v in volumes]))
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(np.stack(batch))),
                                                     torch.from_numpy(labels))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        test_rng = np.random.default_rng(seed + 1)
        correct = 0
        with torch.no_grad():
            for i in range(16):
                label = i % 2
                center = random_center(shape, radius, test_rng) if label else None
                volumes = make_volumes(shape, center, radius, 10**7 + i, contrast)
                x = torch.from_numpy(np.stack([normalise(v) for v in volumes]))[None]
                correct += int(model(x).argmax(1)) == label
    planted = TwoChannelModel(model, tuple(shape), radius, contrast, correct / 16)
    _CACHE[key] = planted
    return planted
