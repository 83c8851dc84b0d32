"""Heat-Score against an independent numpy computation, ROIs on other grids, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image, load_image, load_mask
from FCDDetectLib.maps.heat_score import HeatScoreResult, heat_score, heat_score_images

from Testing.builders.geometry_fixtures import oblique_affine, world_coords, write_nifti

SHAPE = (6, 5, 4)  # 120 voxels: small enough that ddof=0 vs ddof=1 is a visible difference


def reference_heat_score(heatmap, roi, brain=None, ddof=0):
    """Section 2.5 written out independently: min-max over the grid, CNR-like score."""
    h = (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())
    background = ~roi if brain is None else (~roi & brain)
    v_s = h[roi].sum() / roi.sum()
    v_b = h[background].sum() / background.sum()
    sigma = np.sqrt(((h[background] - v_b) ** 2).sum() / (background.sum() - ddof))
    return (v_s - v_b) / sigma


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    heat = rng.uniform(3.0, 50.0, SHAPE)  # not normalised: min-max has work to do
    roi = np.zeros(SHAPE, bool)
    roi[1:3, 1:4, 1:3] = True
    heat[roi] += 20.0
    brain = np.zeros(SHAPE, bool)
    brain[0:5, 0:5, 0:4] = True
    return heat, roi, brain


def test_matches_independent_computation(case):
    heat, roi, _ = case
    expected = reference_heat_score(heat, roi)
    assert heat_score(heat, roi) == pytest.approx(expected, rel=1e-12)
    # population std, not the sample one: the two differ by ~0.4 % on 108 background voxels
    assert heat_score(heat, roi) != pytest.approx(reference_heat_score(heat, roi, ddof=1), rel=1e-3)


def test_brain_mask_restricts_the_background(case):
    heat, roi, brain = case
    expected = reference_heat_score(heat, roi, brain)
    got = heat_score(heat, roi, brain)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got != pytest.approx(heat_score(heat, roi), rel=1e-3)
    # the min-max uses the whole grid, not only the brain: a huge value outside the brain
    # changes the normalised heatmap but, HS being scale-free, not the score
    spiked = heat.copy()
    spiked[5, 4, 3] = 1000.0
    assert not brain[5, 4, 3]
    assert heat_score(spiked, roi, brain) == pytest.approx(
        reference_heat_score(spiked, roi, brain), rel=1e-12
    )


def test_normalisation_does_not_change_the_score(case):
    heat, roi, brain = case
    normalised = (heat - heat.min()) / (heat.max() - heat.min())
    assert heat_score(heat, roi, brain) == pytest.approx(heat_score(normalised, roi, brain), rel=1e-12)


def test_hand_computed_value():
    heat = np.zeros((4, 4, 4))
    heat[0, 0, 0] = 2.0  # ROI
    heat[3, 3, 3] = 1.0  # one background voxel at 0.5 after min-max, 62 at 0
    roi = np.zeros((4, 4, 4), bool)
    roi[0, 0, 0] = True
    mean = 0.5 / 63
    std = np.sqrt((0.5 - mean) ** 2 / 63 + 62 * mean**2 / 63)
    assert heat_score(heat, roi) == pytest.approx((1.0 - mean) / std, rel=1e-12)


def test_image_roi_on_the_same_grid_is_not_resampled(case):
    heat, roi, brain = case
    affine = oblique_affine((1.0, 1.2, 2.0), (10, 0, 5), lps=True)
    result = heat_score_images(
        Image(heat.astype(np.float32), affine), Image(roi, affine), Image(brain, affine)
    )
    assert isinstance(result, HeatScoreResult)
    assert result.roi_resampled is False
    assert result.roi_voxels == int(roi.sum()) and result.background_voxels == int((brain & ~roi).sum())
    assert result.heat_score == pytest.approx(
        reference_heat_score(heat.astype(np.float32), roi, brain), rel=1e-6
    )


def _nearest_on(fine_affine, fine_shape, coarse_affine, coarse_mask):
    """Independent nearest neighbour: each fine voxel takes the coarse voxel its centre falls in."""
    inv = np.linalg.inv(coarse_affine)
    idx = world_coords(fine_affine, fine_shape) @ inv[:3, :3].T + inv[:3, 3]
    frac = np.abs(idx - np.floor(idx) - 0.5)
    assert frac.min() > 0.05  # no ties: the test must not depend on how .5 rounds
    near = np.rint(idx).astype(int)
    ok = np.all((near >= 0) & (near < np.array(coarse_mask.shape)), axis=-1)
    out = np.zeros(fine_shape, bool)
    out[ok] = coarse_mask[tuple(near[ok].T)]
    return out


def test_roi_on_a_coarser_shifted_grid_equals_the_roi_drawn_on_the_heatmap_grid():
    fine_shape = (24, 22, 20)
    fine = oblique_affine((1.0, 1.0, 1.0), lps=True, origin=(30.0, 25.0, -10.0))  # LPS, 1 mm
    coarse = oblique_affine((2.0, 2.0, 2.0), origin=(5.25, 3.3, -9.6))  # RAS, 2 mm, shifted
    coarse_roi = np.zeros((16, 14, 12), bool)
    coarse_roi[5:9, 4:7, 3:6] = True
    drawn = _nearest_on(fine, fine_shape, coarse, coarse_roi)
    assert 50 < drawn.sum() < coarse_roi.sum() * 8 + 1

    rng = np.random.default_rng(3)
    heat = rng.random(fine_shape).astype(np.float32)
    heat[drawn] += 0.7
    direct = heat_score_images(Image(heat, fine), Image(drawn, fine))
    moved = heat_score_images(Image(heat, fine), Image(coarse_roi, coarse))
    assert direct.roi_resampled is False and moved.roi_resampled is True
    assert moved.roi_voxels == int(drawn.sum())
    assert moved.heat_score == pytest.approx(direct.heat_score, rel=1e-9)
    assert moved.heat_score == pytest.approx(reference_heat_score(heat, drawn), rel=1e-6)

    # a brain mask on the coarse grid is resampled the same way
    coarse_brain = np.zeros((16, 14, 12), bool)
    coarse_brain[2:13, 2:12, 1:10] = True
    brain_fine = _nearest_on(fine, fine_shape, coarse, coarse_brain)
    with_brain = heat_score_images(Image(heat, fine), Image(coarse_roi, coarse), Image(coarse_brain, coarse))
    assert with_brain.background_voxels == int((brain_fine & ~drawn).sum())
    assert with_brain.heat_score == pytest.approx(reference_heat_score(heat, drawn, brain_fine), rel=1e-6)


def test_files_round_trip(tmp_path, case):
    heat, roi, _ = case
    affine = oblique_affine((0.9, 1.3, 3.5), (20, 20, 0), lps=True)
    heat_path = write_nifti(tmp_path / "heatmap.nii.gz", heat.astype(np.float32), affine)
    roi_path = write_nifti(tmp_path / "roi.nii.gz", roi.astype(np.uint8), affine)
    result = heat_score_images(load_image(heat_path), load_mask(roi_path), roi_name=str(roi_path))
    assert result.roi_resampled is False
    assert result.heat_score == pytest.approx(reference_heat_score(heat.astype(np.float32), roi), rel=1e-6)


# --- bad input: every case raises FCDInputError naming the ROI -----------------------------


def test_empty_roi(case):
    heat, _, _ = case
    with pytest.raises(FCDInputError, match=r"^ROI: ROI is empty"):
        heat_score(heat, np.zeros(SHAPE, bool))
    with pytest.raises(FCDInputError, match=r"^lesion\.nii\.gz: ROI is empty"):
        heat_score_images(
            Image(heat, np.eye(4)), Image(np.zeros(SHAPE, bool), np.eye(4)), roi_name="lesion.nii.gz"
        )


def test_roi_outside_the_heatmap_grid(case):
    heat, roi, _ = case
    far = np.eye(4)
    far[:3, 3] = (500.0, 0.0, 0.0)
    with pytest.raises(FCDInputError, match=r"^lesion\.nii\.gz: ROI does not overlap"):
        heat_score_images(Image(heat, np.eye(4)), Image(roi, far), roi_name="lesion.nii.gz")


def test_constant_heatmap(case):
    _, roi, _ = case
    with pytest.raises(FCDInputError, match=r"^ROI: heatmap is constant.*zero spread"):
        heat_score(np.full(SHAPE, 0.3), roi)


def test_constant_background(case):
    _, roi, _ = case
    heat = np.zeros(SHAPE)
    heat[roi] = 1.0
    with pytest.raises(FCDInputError, match=r"zero spread"):
        heat_score(heat, roi)


def test_brain_mask_that_leaves_no_background(case):
    heat, roi, _ = case
    with pytest.raises(FCDInputError, match=r"^lesion: no background voxel left inside the brain mask"):
        heat_score_images(
            Image(heat, np.eye(4)), Image(roi, np.eye(4)), Image(roi.copy(), np.eye(4)), roi_name="lesion"
        )


def test_roi_everywhere_leaves_no_background(case):
    heat, _, _ = case
    with pytest.raises(FCDInputError, match=r"no background voxel left on the grid"):
        heat_score(heat, np.ones(SHAPE, bool))


def test_arrays_on_different_grids_are_refused(case):
    heat, roi, _ = case
    with pytest.raises(FCDInputError, match=r"^ROI: shape"):
        heat_score(heat, roi[:-1])
    with pytest.raises(FCDInputError, match=r"^brain mask: shape"):
        heat_score(heat, roi, np.ones((2, 2, 2), bool))


def test_non_finite_heatmap(case):
    heat, roi, _ = case
    heat = heat.copy()
    heat[0, 0, 0] = np.nan
    with pytest.raises(FCDInputError, match=r"NaN"):
        heat_score(heat, roi)
