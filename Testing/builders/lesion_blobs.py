"""Tiny tensors with planted blobs for lesion-supervised training tests.

Each volume is Gaussian noise (a z-scored "head"); a patient carries one bright ball
at a random position with its mask as the lesion target; controls have neither.

Example:
    >>> x, y, roi = planted_blobs(8, seed=0)
    >>> tuple(x.shape), int(y.sum()), bool(roi[y == 0].any())
    ((8, 1, 24, 24, 24), 4, False)
"""

from __future__ import annotations

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
