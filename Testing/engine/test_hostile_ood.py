"""Issue 9, items 5 and 7: warnings reach the user; inputs unlike the training data are flagged.

The bundle's ``input_ranges`` come from "training" heads like those of the training
fixtures (ellipsoids, 4 mm voxels, 120-136 mm fields of view) run through the same
preprocessing and statistics as training does (FCDDetectLib.grid.ood). Each hostile input
must come out ``out_of_distribution: true`` with a reason, a head of the same kind
``false``, and a bundle without ranges ``"unknown"``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.grid.ood import check_ranges, input_statistics, summarise_ranges
from FCDDetectLib.grid.preprocess import preprocess
from FCDDetectLib.io.image_io import Image

from Testing.builders.hostile_fixtures import GRID_SHAPE, GRID_SPACING, head, save_nifti, tiny_bundle


def _image(array: np.ndarray, voxel: float = 4.0) -> Image:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -np.asarray(array.shape) * voxel / 2
    return Image(array.astype(np.float32), affine)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ood")
    training = [_image(head((30 + k % 3, 34, 30), seed=k)) for k in range(6)]
    ranges = summarise_ranges(input_statistics(im, preprocess([im], GRID_SPACING, GRID_SHAPE)) for im in training)
    return tiny_bundle(folder / "ranges.fcdbundle", input_ranges=ranges), tiny_bundle(folder / "old.fcdbundle")


def _cropped() -> np.ndarray:
    return head((30, 34, 30), seed=11)[:, :, :13]  # the field of view cuts through the head


def _ct_like() -> np.ndarray:
    air, tissue = -1000.0, 40.0
    volume = head((30, 34, 30), seed=12, level=tissue - air, background=air)
    return volume


HOSTILE = {
    "noise 5x5x5": (lambda: np.random.default_rng(0).random((5, 5, 5)).astype(np.float32) * 100, 4.0, "fov_mm"),
    "cropped head": (_cropped, 4.0, "fov_mm_min"),
    "CT-like range": (_ct_like, 4.0, "background_ratio"),
    "10 mm voxels": (lambda: head((30, 34, 30), seed=13), 10.0, "voxel_mm"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_inputs_are_out_of_distribution(bundles, case):
    make, voxel, reason = HOSTILE[case]
    result = detect(bundles[0], [_image(make(), voxel)], device="cpu")
    assert result.out_of_distribution is True, result.input_statistics
    assert any(r.startswith(reason) for r in result.ood_reasons), result.ood_reasons
    assert any("out of the training distribution" in w for w in result.warnings)


def test_a_head_like_the_training_ones_is_in_distribution(bundles):
    result = detect(bundles[0], [_image(head((31, 34, 30), seed=21))], device="cpu")
    assert result.out_of_distribution is False, result.ood_reasons
    assert result.to_json()["out_of_distribution"] is False


def test_a_bundle_without_ranges_says_unknown(bundles):
    result = detect(bundles[1], [_image(head((31, 34, 30), seed=21))], device="cpu")
    assert result.out_of_distribution is None and result.to_json()["out_of_distribution"] == "unknown"


def test_cli_prints_warning_lines_and_records_them(bundles, tmp_path, capsys):
    big = save_nifti(tmp_path / "big.nii.gz", head((40, 44, 36)))  # 160 mm head, 96 mm model field of view
    out = tmp_path / "out"
    assert main(["detect", "--model", str(bundles[0]), "--image", str(big), "--device", "cpu",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    stored = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert err and all(line.startswith("warning: ") for line in err), err
    assert any("more than the model field of view" in w for w in stored["warnings"])
    assert [f"warning: {w}" for w in stored["warnings"]] == err


def test_finer_voxels_of_the_same_head_are_not_flagged(bundles):
    """Issue 26: the grid resamples any voxel finer than its own, so a 1 mm scan of a head like the
    training ones (4 mm) is in distribution; a 10 mm one (coarser than grid and training) is not."""
    fine = _image(head((120, 136, 120), seed=22), voxel=1.0)
    result = detect(bundles[0], [fine], device="cpu")
    assert result.input_statistics["voxel_mm_max"] == pytest.approx(1.0)
    assert result.out_of_distribution is False, result.ood_reasons


def test_voxel_rule_uses_the_model_spacing_and_the_coarsest_image():
    ranges = {"voxel_mm_min": [1.0, 1.0], "voxel_mm_max": [1.0, 1.0]}
    assert check_ranges({"voxel_mm_max": 0.4, "voxel_mm_min": 0.4}, ranges, (4.0, 4.0, 4.0)) == []
    assert check_ranges({"voxel_mm_max": 5.9}, ranges, (4.0, 4.0, 4.0)) == []  # up to 1.5 x the model spacing
    assert check_ranges({"voxel_mm_max": 6.1}, ranges, (4.0, 4.0, 4.0))[0].startswith("voxel_mm_max 6.1")
    t1 = _image(head((30, 34, 30), seed=1))
    thick = Image(t1.array[:, :, ::3], t1.affine @ np.diag([1.0, 1.0, 3.0, 1.0]))  # a 12 mm slice FLAIR
    stats = input_statistics([t1, thick], preprocess([t1, thick], GRID_SPACING, GRID_SHAPE))
    assert stats["voxel_mm_max"] == pytest.approx(12.0) and stats["voxel_mm_min"] == pytest.approx(4.0)


def test_a_brain_without_its_head_is_flagged_unless_training_had_such_scans(tmp_path):
    """Head volume is checked both ways: a brain-extracted scan (a third of the head's volume here)
    is flagged for a model trained on heads with skull, not for one whose training included brains."""
    heads = [_image(head((30 + k % 3, 34, 30), seed=k)) for k in range(4)]
    brains = [_image(head((21 + k % 3, 24, 21), seed=k)) for k in range(4)]  # same field of view, smaller object
    brains = [Image(np.pad(b.array, ((4, 5), (5, 5), (4, 5))), heads[0].affine) for b in brains]
    stats = [input_statistics(im, preprocess([im], GRID_SPACING, GRID_SHAPE)) for im in heads + brains]
    with_skull = tiny_bundle(tmp_path / "skull.fcdbundle", input_ranges=summarise_ranges(stats[:4]))
    mixed = tiny_bundle(tmp_path / "mixed.fcdbundle", input_ranges=summarise_ranges(stats))
    probe = Image(np.pad(head((22, 24, 21), seed=9), ((4, 4), (5, 5), (4, 5))), heads[0].affine)
    flagged = detect(with_skull, [probe], device="cpu")
    assert flagged.out_of_distribution is True and any(r.startswith("head_volume_ml") for r in flagged.ood_reasons)
    assert detect(mixed, [probe], device="cpu").out_of_distribution is False
