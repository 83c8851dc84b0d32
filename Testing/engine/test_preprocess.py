"""Geometry of preprocess / to_input_grid on oblique, anisotropic, LPS, non-cubic volumes.

Expected positions and values come from world-space definitions (geometry_fixtures) and
from an independent scipy resampling through the affines, never from the code under test.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.antialias import antialias, antialias_sigmas
from FCDDetectLib.grid.head_mask import head_mask
from FCDDetectLib.grid.input_grid import separable_linear, to_input_grid
from FCDDetectLib.grid.preprocess import preprocess
from FCDDetectLib.io.image_io import Image, load_image, save_image
from scipy import ndimage

from Testing.builders.geometry_fixtures import (
    centred_affine,
    ellipsoid_mask,
    gaussian_blob,
    head_phantom,
    to_voxel,
    world_coords,
    write_nifti,
)

SPACING = (2.0, 2.0, 2.0)
SHAPE = (22, 26, 20)  # non-cubic model grid, 44 x 52 x 40 mm
HEAD_CENTRE = (6.0, -12.0, 18.0)
HEAD_RADII = (16.0, 19.0, 14.0)
IN_SHAPE = (56, 44, 16)  # non-cubic input grid, larger than the model window
IN_SPACING = (0.9, 1.3, 3.5)  # anisotropic
IN_ANGLES = (20.0, 20.0, 0.0)  # oblique about two axes


@pytest.fixture(scope="module")
def oblique_affine_in() -> np.ndarray:
    return centred_affine(IN_SPACING, IN_SHAPE, HEAD_CENTRE, IN_ANGLES, lps=True)


def _centroid_world(volume: np.ndarray, affine: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Intensity-weighted centroid (world mm) of the voxels above ``fraction`` of the peak."""
    weights = np.where(volume > fraction * volume.max(), volume - fraction * volume.max(), 0.0)
    ijk = np.array(ndimage.center_of_mass(weights))
    return affine[:3, :3] @ ijk + affine[:3, 3]


def _model_voxels_of_input(prep, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous model-grid index of each input voxel, and whether it lies inside the model FOV."""
    world = world_coords(prep.reference.affine, prep.reference.array.shape)
    inv = np.linalg.inv(prep.model_affine)
    idx = world @ inv[:3, :3].T + inv[:3, 3]
    inside = np.all((idx >= margin) & (idx <= np.array(prep.shape) - 1 - margin), axis=-1)
    return idx, inside


def test_round_trip_lands_on_exactly_the_input_grid(tmp_path, oblique_affine_in):
    # LPS: the first two voxel axes point to -x, -y (before the 20/20 degree rotation).
    assert oblique_affine_in[0, 0] < 0 and oblique_affine_in[1, 1] < 0
    path = write_nifti(
        tmp_path / "flair.nii.gz",
        head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII),
        oblique_affine_in,
    )
    image = load_image(path)
    prep = preprocess([image], SPACING, SHAPE)
    assert tuple(prep.tensor.shape) == (1, *SHAPE)
    assert prep.tensor.dtype.is_floating_point and str(prep.tensor.dtype) == "torch.float32"

    heat = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    back = to_input_grid(heat, prep)
    assert back.shape == IN_SHAPE
    out = tmp_path / "heatmap.nii.gz"
    save_image(out, back, prep.reference.affine)
    reread = nib.load(str(out))
    assert reread.shape == IN_SHAPE
    np.testing.assert_array_equal(reread.affine, nib.load(str(path)).affine)
    np.testing.assert_allclose(reread.affine, oblique_affine_in, atol=1e-5)


@pytest.mark.parametrize("grid", ["oblique LPS", "axial LPS", "axial RAS"])
def test_to_input_grid_matches_an_independent_resampling_through_the_affines(grid):
    angles = IN_ANGLES if grid.startswith("oblique") else (0.0, 0.0, 0.0)
    affine = centred_affine(IN_SPACING, IN_SHAPE, HEAD_CENTRE, angles, lps=grid.endswith("LPS"))
    prep = preprocess([Image(head_phantom(affine, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), affine)], SPACING, SHAPE)
    to_model = (np.linalg.inv(prep.model_affine) @ affine)[:3, :3]
    # axial grids have their axes along the model's: to_input_grid takes its separable path
    assert np.any(to_model - np.diag(np.diagonal(to_model))) == grid.startswith("oblique")
    heat = np.random.default_rng(2).random(SHAPE).astype(np.float32)
    back = to_input_grid(heat, prep)
    idx, inside = _model_voxels_of_input(prep, margin=0.0)
    expected = ndimage.map_coordinates(heat, idx.reshape(-1, 3).T, order=1, mode="nearest").reshape(IN_SHAPE)
    assert inside.sum() > 1000
    np.testing.assert_allclose(back[inside], expected[inside], atol=2e-5)
    _, not_outside = _model_voxels_of_input(prep, margin=-0.01)
    assert (~not_outside).sum() > 1000  # the model FOV does not cover the whole input here
    assert np.all(back[~not_outside] == 0.0)  # outside the model FOV: 0


@pytest.mark.parametrize("seed", range(4))
def test_separable_linear_is_scipys_linear_affine_transform(seed):
    # scales below and above 1, offsets that put samples before the first voxel, between two
    # voxels, on the last one and past it: every sample must be scipy's (constant mode, 0 outside)
    rng = np.random.default_rng(seed)
    volume = rng.random((7, 9, 5)).astype(np.float32)
    scales = rng.uniform(0.2, 1.7, 3)
    offsets = rng.uniform(-3.0, 1.0, 3)
    shape = (17, 13, 11)
    expected = ndimage.affine_transform(volume, scales, offset=offsets, output_shape=shape, output=np.float32,
                                        order=1, mode="constant", cval=0.0)
    got = separable_linear(volume, scales, offsets, shape)
    assert (expected == 0).any() and (expected != 0).any()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # exactly on the last voxel: its value; a hair past it: 0, as in scipy
    edge = separable_linear(volume, (1.0, 1.0, 1.0), (6.0, 0.0, 0.0), (1, 1, 1))
    assert edge[0, 0, 0] == volume[6, 0, 0]
    assert separable_linear(volume, (1.0, 1.0, 1.0), (6.0 + 1e-9, 0.0, 0.0), (1, 1, 1))[0, 0, 0] == 0.0


def test_world_pattern_survives_the_inverse(oblique_affine_in):
    prep = preprocess(
        [Image(head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), oblique_affine_in)],
        SPACING,
        SHAPE,
    )

    def pattern(world: np.ndarray) -> np.ndarray:
        rel = world - np.array(HEAD_CENTRE)
        return np.sin(rel[..., 0] / 9.0) + np.cos(rel[..., 1] / 11.0) + 0.05 * rel[..., 2]

    on_model = pattern(world_coords(prep.model_affine, SHAPE)).astype(np.float32)
    back = to_input_grid(on_model, prep)
    _, inside = _model_voxels_of_input(prep)
    truth = pattern(world_coords(oblique_affine_in, IN_SHAPE))
    assert inside.sum() > 1000
    assert np.abs(back - truth)[inside].max() < 0.03  # linear interpolation of a 2 mm grid


def test_pattern_survives_preprocess_then_inverse(oblique_affine_in):
    texture = head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII, noise=0.0)
    prep = preprocess([Image(texture, oblique_affine_in)], SPACING, SHAPE)
    mean, std = prep.intensity_stats[0]
    back = to_input_grid(prep.tensor[0].numpy(), prep) * std + mean
    _, inside = _model_voxels_of_input(prep, margin=1.0)
    core = ellipsoid_mask(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, np.array(HEAD_RADII) - 6.0)
    keep = inside & core
    assert keep.sum() > 500
    # Two linear resamplings of a texture varying on ~8 mm scales: a few % of its 80-unit range.
    assert np.median(np.abs(back - texture)[keep]) < 2.0
    assert np.abs(back - texture)[keep].max() < 8.0


def test_blob_lands_at_its_world_position_on_the_model_grid(oblique_affine_in):
    point = np.array(HEAD_CENTRE) + np.array([5.0, -4.0, 3.0])
    image = head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII)
    image += 2000.0 * gaussian_blob(oblique_affine_in, IN_SHAPE, point, sigma_mm=3.0)
    prep = preprocess([Image(image, oblique_affine_in)], SPACING, SHAPE)
    found = _centroid_world(prep.tensor[0].numpy(), prep.model_affine)
    assert np.linalg.norm(found - point) < 0.8, (found, point)
    # and a blob drawn on the model grid returns to its world position on the input grid
    target = point + np.array([-8.0, 6.0, -2.0])
    back = to_input_grid(gaussian_blob(prep.model_affine, SHAPE, target, sigma_mm=3.0), prep)
    found_back = _centroid_world(back, oblique_affine_in)
    assert np.linalg.norm(found_back - target) < 1.0, (found_back, target)


def test_model_grid_is_ras_and_has_the_target_spacing(oblique_affine_in):
    prep = preprocess(
        [Image(head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), oblique_affine_in)],
        SPACING,
        SHAPE,
    )
    assert nib.aff2axcodes(prep.model_affine) == ("R", "A", "S")
    np.testing.assert_allclose(np.linalg.norm(prep.model_affine[:3, :3], axis=0), SPACING, atol=1e-6)
    # the head is centred: the model grid's centre is near the head's centre
    centre = prep.model_affine[:3, :3] @ ((np.array(SHAPE) - 1) / 2) + prep.model_affine[:3, 3]
    assert np.linalg.norm(centre - np.array(HEAD_CENTRE)) < 3.0


def test_zscore_inside_the_head(oblique_affine_in):
    image = head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII)
    prep = preprocess([Image(image, oblique_affine_in)], SPACING, SHAPE)
    data = prep.tensor[0].numpy().astype(np.float64)
    mask = prep.head_masks[0]
    assert abs(data[mask].mean()) < 1e-4 and abs(data[mask].std() - 1.0) < 1e-4
    # the head mask follows the true head to within a voxel or so
    assert np.all(mask[ellipsoid_mask(prep.model_affine, SHAPE, HEAD_CENTRE, np.array(HEAD_RADII) - 2.0)])
    assert not np.any(
        mask[~ellipsoid_mask(prep.model_affine, SHAPE, HEAD_CENTRE, np.array(HEAD_RADII) + 3.0)]
    )
    # independent forward: anti-alias, sample the input at the model voxels' world positions, z-score by hand
    to_input = np.linalg.inv(oblique_affine_in) @ prep.model_affine
    coords = world_coords(to_input, SHAPE).reshape(-1, 3).T
    smooth = antialias(image, oblique_affine_in, SPACING)
    raw = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest").reshape(SHAPE).astype(np.float64)
    expected = (raw - raw[mask].mean()) / raw[mask].std()
    core = ellipsoid_mask(prep.model_affine, SHAPE, HEAD_CENTRE, np.array(HEAD_RADII) - 3.0)
    assert core.sum() > 500
    np.testing.assert_allclose(data[core], expected[core], atol=1e-3)
    air = ~ellipsoid_mask(prep.model_affine, SHAPE, HEAD_CENTRE, np.array(HEAD_RADII) + 4.0)
    assert data[air].mean() < -1.5  # air is far below the head


def test_two_modalities_on_different_grids_align(oblique_affine_in):
    flair = head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII)
    t1_shape = (40, 46, 36)
    t1_affine = centred_affine(
        (1.1, 1.0, 1.2), t1_shape, np.array(HEAD_CENTRE) + [3.0, -2.0, 1.0], (-10.0, 0.0, 15.0)
    )
    t1 = head_phantom(t1_affine, t1_shape, HEAD_CENTRE, HEAD_RADII, seed=5)
    # the model grid depends only on where the head is; put the blob on one of its voxel centres
    grid = preprocess([Image(flair, oblique_affine_in)], SPACING, SHAPE).model_affine
    voxel = np.array([9, 15, 8])
    point = grid[:3, :3] @ voxel + grid[:3, 3]
    flair = flair + 2000.0 * gaussian_blob(oblique_affine_in, IN_SHAPE, point, 3.0)
    t1 = t1 + 2000.0 * gaussian_blob(t1_affine, t1_shape, point, 3.0)
    prep = preprocess([Image(flair, oblique_affine_in), Image(t1, t1_affine)], SPACING, SHAPE)
    np.testing.assert_allclose(prep.model_affine, grid)
    assert tuple(prep.tensor.shape) == (2, *SHAPE)
    for channel in range(2):
        peak = np.unravel_index(np.argmax(prep.tensor[channel].numpy()), SHAPE)
        np.testing.assert_array_equal(peak, voxel)
        centroid = _centroid_world(prep.tensor[channel].numpy(), prep.model_affine)
        assert np.linalg.norm(centroid - point) < 0.5, (channel, centroid, point)
    # the second channel is z-scored inside its own head too
    t1_model = prep.tensor[1].numpy().astype(np.float64)
    assert abs(t1_model[prep.head_masks[1]].mean()) < 1e-4
    assert abs(t1_model[prep.head_masks[1]].std() - 1.0) < 1e-4


def test_head_larger_than_the_model_field_of_view_is_reported(oblique_affine_in):
    prep = preprocess(
        [Image(head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), oblique_affine_in)],
        SPACING,
        (10, 28, 22),
    )
    assert tuple(prep.tensor.shape) == (1, 10, 28, 22)
    assert len(prep.warnings) == 1 and "R axis" in prep.warnings[0]
    assert to_input_grid(np.ones((10, 28, 22), np.float32), prep).shape == IN_SHAPE


def test_head_mask_fills_dark_inside():
    volume = np.full((20, 22, 18), 1.0, np.float32)
    volume[4:16, 4:18, 3:15] = 100.0
    volume[8:12, 8:12, 7:11] = 0.0  # a dark "ventricle"
    volume[0, 0, 0] = 150.0  # an isolated bright speck outside the head
    mask = head_mask(volume)
    assert mask.sum() == 12 * 14 * 12 and not mask[0, 0, 0]


def test_second_image_that_does_not_overlap_is_refused(oblique_affine_in):
    far = centred_affine((1.0, 1.0, 1.0), (20, 20, 20), (500.0, 0.0, 0.0))
    with pytest.raises(FCDInputError, match="image 2: does not overlap"):
        preprocess(
            [
                Image(head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), oblique_affine_in),
                Image(head_phantom(far, (20, 20, 20), (500.0, 0.0, 0.0), (8, 8, 8)), far),
            ],
            SPACING,
            SHAPE,
        )


@pytest.mark.parametrize(
    ("images", "spacing", "shape", "match"),
    [
        ([], SPACING, SHAPE, "no input image"),
        (None, (2.0, 0.0, 2.0), SHAPE, "model grid"),
        (None, SPACING, (24, 24), "model grid"),
    ],
)
def test_bad_arguments(images, spacing, shape, match):
    if images is None:
        images = [Image(np.random.default_rng(0).random((8, 8, 8)).astype(np.float32), np.eye(4))]
    with pytest.raises(FCDInputError, match=match):
        preprocess(images, spacing, shape)


def test_to_input_grid_refuses_a_volume_of_another_shape(oblique_affine_in):
    prep = preprocess(
        [Image(head_phantom(oblique_affine_in, IN_SHAPE, HEAD_CENTRE, HEAD_RADII), oblique_affine_in)],
        SPACING,
        SHAPE,
    )
    with pytest.raises(ValueError, match="model grid"):
        to_input_grid(np.zeros((5, 5, 5), np.float32), prep)


def test_voxel_helper_is_consistent(oblique_affine_in):
    # guards the fixtures themselves: voxel -> world -> voxel
    np.testing.assert_allclose(
        to_voxel(oblique_affine_in, world_coords(oblique_affine_in, IN_SHAPE)[3, 4, 5]), [3, 4, 5], atol=1e-9
    )


def test_antialiasing_follows_the_voxel_axes_and_removes_fine_noise():
    """A 1 mm head with noise sd 10 on a 4 mm grid keeps the noise of a 4 mm voxel average or less
    (box average: 10 / 8 = 1.25), not that of one 1 mm voxel (sd 9.6-9.9 without the filter, 0.80-0.83
    with it, measured over seeds 0-2)."""
    oblique = np.array([[0.0, 0.0, 4.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0, 0, 0, 1.0]])
    assert antialias_sigmas(oblique, (4.0, 4.0, 4.0)) == (1.5, 1.5, 0.0)  # the 4 mm axis is left alone
    assert antialias_sigmas(np.eye(4), (1.0, 1.0, 1.0)) == (0.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    grid = np.indices((96, 96, 96)).astype(np.float32) - 47.5
    inside = (grid[0] / 40) ** 2 + (grid[1] / 36) ** 2 + (grid[2] / 30) ** 2 <= 1
    volume = np.abs(np.where(inside, 100.0, 0.0) + rng.normal(0.0, 10.0, inside.shape)).astype(np.float32)
    prep = preprocess([Image(volume, np.eye(4))], (4.0, 4.0, 4.0), (24, 24, 24))
    mean, std = prep.intensity_stats[0]
    core = ndimage.binary_erosion(prep.head_masks[0], iterations=3)
    assert core.sum() > 1000
    assert float((prep.tensor[0].numpy()[core] * std + mean).std()) < 2.0
