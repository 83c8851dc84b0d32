"""Issue 9, items 4, 11 and 12: bounded grids, messages that blame the right thing, stable grid sizes.

Bounds (FCDDetectLib.networks.bundle): spacing in [0.2, 10] mm, 8..512 voxels per axis, at most
256^3 voxels, a field of view of at most 600 mm. A 400^3 bundle is refused (not warned).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.preprocess import preprocess
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.heat_score import heat_score_images
from FCDDetectLib.networks.bundle import load_bundle
from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

from Testing.builders.hostile_fixtures import head, tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("b") / "tiny.fcdbundle")


@pytest.mark.parametrize("field, value, words", [
    ("target_shape", [4000, 4000, 4000], "must be 3 integers in [8, 512]"),
    ("target_shape", [400, 400, 400], "more than the 16777216 (256^3)"),
    ("target_shape", [1, 1, 1], "must be 3 integers in [8, 512]"),
    ("target_spacing", [0.001, 0.001, 0.001], "must be 3 numbers in [0.2, 10] mm"),
    ("target_spacing", [10.0, 10.0, 10.0], "field of view"),
])
def test_bundle_grid_out_of_bounds_blames_the_bundle(bundle, tmp_path, field, value, words):
    copy = tmp_path / "copy.fcdbundle"
    copy.mkdir()
    (copy / "weights.pt").write_bytes((bundle / "weights.pt").read_bytes())
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    data[field] = value
    if field == "target_spacing" and value[0] == 10.0:
        data["target_shape"] = [80, 80, 80]
    (copy / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(FCDInputError) as info:
        read_bundle_metadata(copy)
    message = str(info.value)
    assert message.startswith(str(copy / "bundle.json")) and field in message and words in message, message
    with pytest.raises(FCDInputError):
        load_bundle(copy)


def test_roi_of_small_values_names_the_half_rule():
    heat = Image(np.random.default_rng(0).random((10, 10, 10), dtype=np.float32), np.eye(4))
    roi = Image(np.full((10, 10, 10), 0.3, np.float32) > 0.5, np.eye(4))  # load_mask's rule
    with pytest.raises(FCDInputError, match=r"no voxel above 0\.5.*> 0\.5"):
        heat_score_images(heat, roi, roi_name="roi.nii.gz")


def test_empty_brain_mask_is_blamed_on_the_mask():
    heat = Image(np.random.default_rng(0).random((10, 10, 10), dtype=np.float32), np.eye(4))
    roi = np.zeros((10, 10, 10), bool)
    roi[4:6, 4:6, 4:6] = True
    with pytest.raises(FCDInputError, match=r"^mask\.nii\.gz: brain mask is empty"):
        heat_score_images(heat, Image(roi, np.eye(4)), Image(np.zeros((10, 10, 10), bool), np.eye(4)),
                          roi_name="roi.nii.gz", mask_name="mask.nii.gz")


def test_grid_size_does_not_flip_on_affine_rounding_noise():
    # 126 voxels of 1 mm on a 2 mm grid: extent 62.5 + 1 voxels, exactly on a rounding half.
    # 5e-8 of relative noise (qform vs sform of one matrix) flipped MONAI's size 64 -> 63.
    volume = head((126, 60, 50))
    volume[:, 22:38, 18:32] = 100.0  # the head reaches both ends of the x axis: its box follows the grid size
    exact = np.diag([1.0, 1.0, 1.0, 1.0])
    noisy = exact.copy()
    noisy[:3, :3] *= 1 - 5e-8
    a = preprocess([Image(volume, exact)], (2.0, 2.0, 2.0), (47, 32, 32))
    b = preprocess([Image(volume, noisy)], (2.0, 2.0, 2.0), (47, 32, 32))
    np.testing.assert_allclose(a.model_affine, b.model_affine, atol=1e-5)
    assert float((a.tensor - b.tensor).abs().max()) < 1e-3
