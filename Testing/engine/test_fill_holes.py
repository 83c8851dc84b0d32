"""preprocess.fill_holes gives scipy's binary_fill_holes, in 3D and slice by slice (the head mask's fills)."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.preprocess import fill_holes
from scipy import ndimage


def _masks():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (30, 26, 22)], indexing="ij"))
    shell = np.abs(np.sqrt(((grid - np.array([15, 13, 11])[:, None, None, None]) ** 2).sum(0)) - 8) < 1.5
    yield shell  # a closed shell: its inside is a hole
    yield shell & (rng.random(shell.shape) > 0.1)  # a leaky shell: most of its inside is not
    for density in (0.3, 0.5, 0.7):
        yield rng.random((24, 20, 16)) < density  # many small holes and open channels
    yield np.zeros((6, 5, 4), bool)
    yield np.ones((6, 5, 4), bool)


@pytest.mark.parametrize("index", range(7))
def test_fill_holes_equals_scipy_in_3d_and_per_slice(index):
    mask = list(_masks())[index]
    assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    per_slice = np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2)
    assert np.array_equal(fill_holes(mask, in_plane_axis=2), per_slice)
