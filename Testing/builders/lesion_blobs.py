"""Tiny tensors with planted blobs for lesion-supervised training tests.

Each volume is Gaussian noise (a z-scored "head"); a patient carries one bright ball
at a random position with its mask as the lesion target; controls have neither.

Example:
    >>> x, y, roi = planted_blobs(8, seed=0)
    >>> tuple(x.shape), int(y.sum()), bool(roi[y == 0].any())
    ((8, 1, 24, 24, 24), 4, False)
"""

from __future__ import annotations

from typing import Any

import torch

BLOB_SHAPE = (24, 24, 24)


def planted_blobs(n: int, seed: int, shape: tuple[int, int, int] = BLOB_SHAPE, radius: float = 2.5,
                  gain: float = 2.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (N, 1, *shape), labels (N,), lesion targets (N, 1, *shape)); every other volume is a patient."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 1, *shape), generator=generator)
    y = torch.tensor([i % 2 for i in range(n)], dtype=torch.long)
    roi = torch.zeros((n, 1, *shape))
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in shape], indexing="ij"))
    for i in range(n):
        if y[i] == 1:
            centre = torch.tensor([torch.randint(5, s - 5, (1,), generator=generator).item() for s in shape],
                                  dtype=torch.float32)
            ball = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= radius ** 2
            roi[i, 0][ball] = 1.0
            x[i, 0][ball] += gain
    return x, y, roi


def blob_lesion_config(seed: int = 0, epochs: int = 3, **overrides: Any) -> Any:
    """A lesion-supervised RunConfig for 20^3 blob volumes (quarter-width ResNet-18, 1 mm, no rotation)."""
    from FCDTrainLib.run_folder.run_config import RunConfig

    values: dict[str, Any] = dict(
        data="blobs", depth=18, geometry="medicalnet", widen_factor=0.25, max_epochs=epochs, batch_size=4, lr=3e-3,
        shape=[20, 20, 20], spacing=[1.0, 1.0, 1.0], rotation_degrees=0.0, supervision="lesion", decoder_width=8,
        seed=seed, early_stop_patience=epochs)
    values.update(overrides)
    return RunConfig(**values)


def blob_fold_data(seed: int, n_train: int = 16, n_val: int = 8) -> Any:
    """A FoldData of 20^3 planted blobs (gain 4): training volumes of ``seed``, validation of ``100 + seed``."""
    from FCDTrainLib.training.fold_data import FoldData

    x, y, roi = planted_blobs(n_train, seed, shape=(20, 20, 20), gain=4.0)
    vx, vy, vroi = planted_blobs(n_val, 100 + seed, shape=(20, 20, 20), gain=4.0)
    return FoldData(x, y, vx, vy, roi, vroi)
