"""preprocess.fill_holes gives scipy's binary_fill_holes, in 3D and slice by slice (the head mask's fills)."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.grid.head_mask import fill_holes
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


def _head_mask_on_the_whole_grid(volume):
    """The head mask's rule computed on the whole grid with scipy's fills (head_mask crops to a box)."""
    from FCDDetectLib.grid.head_mask import HEAD_FRACTION

    lo, hi = np.percentile(volume, [2.0, 99.5])
    mask = ndimage.binary_fill_holes(volume > lo + HEAD_FRACTION * (hi - lo))
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    return np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2)


@pytest.mark.parametrize("cut", ["whole", "neck cut", "side cut"])
def test_head_mask_inside_its_box_equals_the_whole_grid(cut):
    # head_mask works inside the box of supra-threshold voxels (plus one voxel); the head
    # touching the volume's border (a cut field of view) must give the same mask.
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDTrainLib.data.synth.template import load_template

    tissue = load_template(2)  # the MNI152 brain in a synthetic skull and scalp, 2 mm
    volume = (0.9 * tissue.wm + 0.6 * tissue.gm + 0.3 * tissue.csf + 0.05 * tissue.skull + 0.7 * tissue.scalp)
    volume = volume.astype(np.float32)
    volume = {"whole": volume, "neck cut": volume[:, :, 20:], "side cut": volume[15:, :70, :]}[cut]
    mask = head_mask(volume)
    assert mask.any() and np.array_equal(mask, _head_mask_on_the_whole_grid(volume))


@pytest.mark.parametrize("seed", range(6))
def test_head_mask_equals_the_rule_on_noisy_heads_with_many_components(seed):
    # head_mask skips the rule's second 3D fill (after keeping the largest component): it must
    # not matter, also with bright specks in the air, blobs inside dark cavities, a shell
    # that the background leaks into and components touching the largest one diagonally
    from FCDDetectLib.grid.head_mask import head_mask

    rng = np.random.default_rng(seed)
    shape = (40, 36, 30)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).astype(np.float32)
    centre = np.array(shape, np.float32)[:, None, None, None] / 2 + rng.uniform(-2, 2, (3, 1, 1, 1))
    radius = np.sqrt(((grid - centre) ** 2).sum(0))
    volume = np.where(radius < 13, 60.0, 1.0).astype(np.float32)
    volume[(radius > 6) & (radius < 8)] = 2.0  # a dark shell: inside it, a cavity and a bright core
    volume[radius < 3] = 80.0
    leaks = rng.random(shape) < 0.02 * seed
    volume[leaks & (radius > 6) & (radius < 8)] = 60.0  # bridges through the dark shell
    volume += rng.random(shape).astype(np.float32) * 20.0 * (rng.random(shape) < 0.05)  # specks everywhere
    mask = head_mask(volume)
    assert mask.any() and np.array_equal(mask, _head_mask_on_the_whole_grid(volume))
