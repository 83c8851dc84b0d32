"""A tiny, really trained 3D ResNet whose only evidence is a planted bright blob.

Test helper (not a test file). :func:`train_planted_model` trains, in a few seconds on CPU,
a narrow MONAI ResNet-18 from :func:`FCDDetectLib.networks.resnets.build_resnet` on small synthetic
heads: class 1 = a bright blob at a random position inside the head, class 0 = no blob,
both over the same smooth noise texture. Whatever a heatmap method shows for class 1
must therefore sit on the blob. The trained model is cached per process (per argument
set), so every test in a pytest session shares one training run.

Example:
    >>> from planted_model import train_planted_model, save_planted_bundle
    >>> planted = train_planted_model()
    >>> volume = planted.make_volume(center=(8, 16, 24), seed=1)  # raw intensities (X, Y, Z)
    >>> x = planted.to_input(volume)                              # (1, 1, X, Y, Z), z-scored
    >>> roi = planted.blob_mask((8, 16, 24))                      # the blob as a bool mask
    >>> bundle = save_planted_bundle(planted, tmp_path / "planted", target_spacing=(4.0, 4.0, 4.0))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from FCDDetectLib.networks.bundle import save_bundle
from FCDDetectLib.networks.bundle_metadata import BundleMetadata
from FCDDetectLib.networks.resnets import build_resnet
from scipy.ndimage import gaussian_filter

HEAD_VALUE = 100.0  # mean intensity inside the head
TEXTURE_SD = 10.0  # spread of the smooth background texture
BLOB_CONTRAST = 45.0  # peak brightness added by the blob
HEAD_THRESHOLD = 50.0  # raw intensity separating head from background

_CACHE: dict[tuple, PlantedModel] = {}
SEED_VARIABLE = "FCD_TEST_SEED"
"""Environment variable giving the planted model's training seed (default 0); ``make test-repeat``
runs the numerics-sensitive tests under several seeds through it."""


def test_seed() -> int:
    """The training seed of planted models: ``$FCD_TEST_SEED`` or 0."""
    return int(os.environ.get(SEED_VARIABLE, "0"))


test_seed.__test__ = False  # a helper, not a test, although pytest would collect the name


def head_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Ellipsoidal 'head' filling the grid but its corners (bool, (X, Y, Z)).

    It reaches the faces of the grid: a small head on a dark background would leave strong
    edges (and zero-padding borders) that the tiny network turns into location-independent
    evidence, blurring every class activation map.
    """
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    radius = sum(((g - (n - 1) / 2) / (0.75 * n)) ** 2 for g, n in zip(grid, shape, strict=True))
    return radius <= 1.0


def blob_mask(shape: tuple[int, int, int], center: tuple[int, int, int], radius: float) -> np.ndarray:
    """Voxels within ``radius`` of ``center`` (bool, (X, Y, Z)): the blob's ROI."""
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    dist2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    return dist2 <= radius**2


def make_volume(
    shape: tuple[int, int, int],
    center: tuple[int, int, int] | None,
    radius: float,
    seed: int,
) -> np.ndarray:
    """Raw synthetic head (float32, (X, Y, Z)); a bright blob at ``center`` unless None.

    Background 0 (plus faint noise), head ``HEAD_VALUE`` with a smooth texture of sd
    ``TEXTURE_SD``; the blob adds ``BLOB_CONTRAST`` at its centre with a soft edge that
    falls to half at ``radius``.
    """
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.standard_normal(shape), sigma=1.5)
    texture *= TEXTURE_SD / texture.std()
    head = head_mask(shape)
    volume = np.where(head, HEAD_VALUE + texture, 0.0) + rng.normal(0.0, 1.0, shape)
    if center is not None:
        volume += BLOB_CONTRAST * soft_blob(shape, center, radius)
    return volume.astype(np.float32)


def soft_blob(shape: tuple[int, int, int], center: tuple[int, int, int], radius: float) -> np.ndarray:
    """Soft sphere profile (float64, (X, Y, Z)): 1 at ``center``, 0.5 at ``radius``, edge width 0.7 voxel."""
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)))
    return 1.0 / (1.0 + np.exp((dist - radius) / 0.7))


def normalise(volume: np.ndarray) -> np.ndarray:
    """Z-score inside the head (``> HEAD_THRESHOLD``), as the bundles' ``zscore-head``."""
    head = volume > HEAD_THRESHOLD
    values = volume[head]
    return ((volume - values.mean()) / values.std()).astype(np.float32)


def random_center(shape: tuple[int, int, int], radius: float, rng: np.random.Generator) -> tuple[int, int, int]:
    """A blob centre with the whole blob inside the head and ``radius + 2`` from the faces."""
    inner = head_mask(shape)
    margin = int(np.ceil(radius)) + 2
    while True:
        center = tuple(int(rng.integers(margin, n - margin)) for n in shape)
        ball = blob_mask(shape, center, radius + 1)
        if not (ball & ~inner).any():
            return center  # type: ignore[return-value]


@dataclass
class PlantedModel:
    """A trained planted-evidence classifier and the recipe of its data."""

    model: torch.nn.Module
    depth: int
    geometry: str
    shape: tuple[int, int, int]
    radius: float
    widen_factor: float
    accuracy: float  # on a held-out set of fresh volumes
    history: list[float] = field(default_factory=list)  # training loss per step

    def make_volume(self, center: tuple[int, int, int] | None = None, seed: int = 12345) -> np.ndarray:
        """Raw test volume (X, Y, Z) with the blob at ``center`` (None: a control)."""
        return make_volume(self.shape, center, self.radius, seed)

    def blob_mask(self, center: tuple[int, int, int]) -> np.ndarray:
        """The blob at ``center`` as a bool ROI (voxels within the blob radius)."""
        return blob_mask(self.shape, center, self.radius)

    def to_input(self, volume: np.ndarray) -> torch.Tensor:
        """(1, 1, X, Y, Z) float32 tensor, z-scored inside the head."""
        return torch.from_numpy(normalise(volume))[None, None]

    def probability(self, volume: np.ndarray) -> float:
        """Model's probability of class 1 (blob) for a raw volume."""
        self.model.eval()
        with torch.no_grad():
            return float(self.model(self.to_input(volume)).softmax(1)[0, 1])


def train_planted_model(
    shape: tuple[int, int, int] = (32, 32, 32),
    geometry: str = "medicalnet",
    depth: int = 18,
    widen_factor: float = 0.125,
    radius: float = 5.0,
    steps: int = 80,
    batch_size: int = 8,
    seed: int | None = None,
) -> PlantedModel:
    """Train (or fetch from the per-process cache) a planted-blob classifier.

    ``geometry="medicalnet"`` (default) keeps layer4 at 1/8 of the input (4^3 for 32^3),
    fine enough for Grad-CAM to localise the blob; ``"paper"`` leaves only 2x1x1 at
    32^3, so use larger shapes for it. The network is narrow (``widen_factor`` 0.125:
    8-64 channels instead of 64-512) to train in seconds; bundles record the width
    implicitly through the weights. Grad-CAM cells are centred on voxels k * 8, so test
    blobs placed at multiples of 8 (e.g. (8, 16, 24)) are judged fairly. The global torch
    RNG state is left untouched. ``seed`` defaults to :func:`test_seed` (``$FCD_TEST_SEED``).
    """
    seed = test_seed() if seed is None else int(seed)
    key = (tuple(shape), geometry, depth, widen_factor, radius, steps, batch_size, seed)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_resnet(depth, in_channels=1, geometry=geometry, widen_factor=widen_factor)
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
        history = []
        model.train()
        for step in range(steps):
            labels = np.array([i % 2 for i in range(batch_size)])
            batch = []
            for i, label in enumerate(labels):
                center = random_center(shape, radius, rng) if label else None
                volume = make_volume(shape, center, radius, seed=seed * 100003 + step * batch_size + i)
                batch.append(normalise(volume))
            x = torch.from_numpy(np.stack(batch))[:, None]
            loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            history.append(float(loss.detach()))
        model.eval()
        correct = 0
        test_rng = np.random.default_rng(seed + 1)
        tests = 16
        with torch.no_grad():
            for i in range(tests):
                label = i % 2
                center = random_center(shape, radius, test_rng) if label else None
                volume = make_volume(shape, center, radius, seed=10**7 + i)
                predicted = int(model(torch.from_numpy(normalise(volume))[None, None]).argmax(1))
                correct += predicted == label
    planted = PlantedModel(
        model=model,
        depth=depth,
        geometry=geometry,
        shape=tuple(shape),
        radius=radius,
        widen_factor=widen_factor,
        accuracy=correct / tests,
        history=history,
    )
    _CACHE[key] = planted
    return planted


def save_planted_bundle(
    planted: PlantedModel,
    path: str | os.PathLike,
    target_spacing: tuple[float, float, float] = (4.0, 4.0, 4.0),
    target_shape: tuple[int, int, int] | None = None,
    modalities: tuple[str, ...] = ("flair",),
    threshold: float = 0.5,
) -> Path:
    """Save the planted model as a ``.fcdbundle`` (target_shape defaults to its training shape)."""
    metadata = BundleMetadata(
        depth=planted.depth,
        geometry=planted.geometry,
        modalities=list(modalities),
        target_spacing=[float(s) for s in target_spacing],
        target_shape=[int(s) for s in (target_shape or planted.shape)],
        threshold=threshold,
        name="",
        training={"source": "Testing/planted_model.py", "widen_factor": planted.widen_factor},
        metrics={"planted_accuracy": planted.accuracy},
    )
    return save_bundle(path, planted.model, metadata)
