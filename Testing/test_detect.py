"""End to end: ``detect`` on a model whose evidence is known, through real geometry.

The planted model (Testing/planted_model.py) was trained so that only a bright blob
decides the class. Its training head is resampled here onto an oblique, anisotropic,
LPS-oriented grid, so detection has to reorient, resample, crop, z-score, explain and
map the heatmap back. The heatmap must come back on exactly that grid, peak on the
blob (world coordinates), and score a Heat-Score above 1 against the blob's outline,
for every explanation method.
"""

from __future__ import annotations

import numpy as np
import pytest
from geometry_fixtures import oblique_affine
from planted_model import save_planted_bundle, train_planted_model
from scipy.ndimage import map_coordinates

from FCDDetectLib.detect import detect, write_detection
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.image_io import Image

MODEL_SPACING = 4.0
CENTER = (20, 12, 17)  # blob centre on the planted model's 32^3 grid


def _model_affine(shape: tuple[int, int, int]) -> np.ndarray:
    affine = np.diag([MODEL_SPACING] * 3 + [1.0])
    affine[:3, 3] = -MODEL_SPACING * (np.asarray(shape) - 1) / 2
    return affine


def _resample_onto(volume: np.ndarray, source_affine: np.ndarray, affine: np.ndarray,
                   shape: tuple[int, int, int], order: int) -> np.ndarray:
    """Sample ``volume`` at the world positions of the voxels of (affine, shape)."""
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    source_ijk = np.linalg.solve(source_affine[:3, :3], world - source_affine[:3, 3:4])
    values = map_coordinates(volume, source_ijk, order=order, mode="constant", cval=0.0)
    return values.reshape(shape).astype(np.float32)


@pytest.fixture(scope="module")
def planted():
    return train_planted_model()


@pytest.fixture(scope="module")
def bundle(planted, tmp_path_factory):
    return save_planted_bundle(planted, tmp_path_factory.mktemp("planted") / "planted.fcdbundle",
                               target_spacing=(MODEL_SPACING,) * 3)


@pytest.fixture(scope="module")
def oblique_case(planted):
    """Patient scan and blob outline on an oblique (12, -8 deg), 3.1x3.6x2.7 mm, LPS grid."""
    source_affine = _model_affine(planted.shape)
    spacing = (3.1, 3.6, 2.7)
    affine = oblique_affine(spacing, (12.0, -8.0, 0.0), lps=True)
    shape = (46, 40, 52)
    # centre the new grid on the world origin (the head's centre)
    affine[:3, 3] = 0.0
    affine[:3, 3] = -(affine[:3, :3] @ ((np.asarray(shape) - 1) / 2))
    volume = _resample_onto(planted.make_volume(center=CENTER, seed=7), source_affine, affine, shape, order=1)
    blob = planted.blob_mask(CENTER).astype(np.float32)
    roi = _resample_onto(blob, source_affine, affine, shape, order=0) > 0.5
    control = _resample_onto(planted.make_volume(center=None, seed=8), source_affine, affine, shape, order=1)
    blob_world = source_affine[:3, :3] @ np.asarray(CENTER) + source_affine[:3, 3]
    return Image(volume, affine), Image(roi, affine), Image(control, affine), blob_world


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "smoothgrad"])
def test_planted_evidence_end_to_end(bundle, oblique_case, planted, method):
    image, roi, _, blob_world = oblique_case
    result = detect(bundle, [image], roi=roi, method=method, device="cpu")

    assert result.heatmap.shape == image.array.shape
    np.testing.assert_array_equal(result.affine, image.affine)
    assert result.heatmap.dtype == np.float32
    assert result.heatmap.min() == 0.0 and result.heatmap.max() == pytest.approx(1.0)

    assert result.probability > 0.5 and result.prediction == "fcd"
    peak = np.unravel_index(np.argmax(result.heatmap), result.heatmap.shape)
    peak_world = image.affine[:3, :3] @ np.asarray(peak) + image.affine[:3, 3]
    distance = np.linalg.norm(peak_world - blob_world)
    assert distance < planted.radius * MODEL_SPACING + 4.0, f"{method}: peak {distance:.1f} mm from blob"
    assert result.heat_score is not None and result.heat_score > 1.0, f"{method}: HS {result.heat_score}"
    assert result.heat_score_details.roi_voxels == int(roi.array.sum())
    assert result.heat_score_details.roi_resampled is False


def test_control_scan_is_called_control(bundle, oblique_case):
    _, _, control, _ = oblique_case
    result = detect(bundle, [control], device="cpu")
    assert result.probability < 0.5 and result.prediction == "control"
    assert result.heat_score is None


def test_roi_on_another_grid_is_resampled_and_scores_alike(bundle, oblique_case, planted):
    image, roi, _, _ = oblique_case
    source_affine = _model_affine(planted.shape)
    coarse = Image(planted.blob_mask(CENTER), source_affine)  # the blob on the model's own 4 mm grid
    same_grid = detect(bundle, [image], roi=roi, device="cpu")
    other_grid = detect(bundle, [image], roi=coarse, device="cpu")
    assert other_grid.heat_score_details.roi_resampled is True
    assert other_grid.heat_score == pytest.approx(same_grid.heat_score, rel=0.15)


def test_write_detection_round_trip(bundle, oblique_case, tmp_path):
    import json

    import nibabel as nib

    image, roi, _, _ = oblique_case
    result = detect(bundle, [image], roi=roi, device="cpu")
    write_detection(result, tmp_path / "out")
    saved = nib.load(tmp_path / "out" / "heatmap.nii.gz")
    np.testing.assert_allclose(saved.affine, image.affine, atol=1e-5)
    np.testing.assert_allclose(saved.get_fdata(), result.heatmap, atol=1e-6)
    stored = json.loads((tmp_path / "out" / "result.json").read_text())
    assert stored["heat_score"] == pytest.approx(result.heat_score)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["heatmap.nii.gz", "result.json"]


def test_bad_method_and_target_class(bundle, oblique_case):
    image = oblique_case[0]
    with pytest.raises(FCDInputError, match="method"):
        detect(bundle, [image], method="occlusion", device="cpu")
    with pytest.raises(FCDInputError, match="target class"):
        detect(bundle, [image], target_class="tumour", device="cpu")
