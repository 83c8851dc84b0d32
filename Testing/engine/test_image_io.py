"""Reading real NIfTI files (good and bad) and atomic writing."""

from __future__ import annotations

import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic, write_text_atomic
from FCDDetectLib.io.image_io import Image, load_image, load_mask, save_image, validate_array

from Testing.builders.geometry_fixtures import oblique_affine, write_nifti

AFFINE = oblique_affine((0.9, 1.3, 3.5), (20, 20, 0), lps=True, origin=(12.0, -30.0, 5.0))


def _volume(shape=(7, 5, 3)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_load_keeps_axis_order_values_and_affine(tmp_path):
    data = _volume((7, 5, 3)).astype(np.int16)
    path = write_nifti(tmp_path / "t1.nii.gz", data, AFFINE)
    image = load_image(path)
    assert isinstance(image, Image)
    assert image.array.shape == (7, 5, 3) and image.array.dtype == np.float32
    assert image.affine.dtype == np.float64 and image.affine.shape == (4, 4)
    np.testing.assert_array_equal(image.array, data.astype(np.float32))
    assert image.array[6, 4, 2] == data[6, 4, 2]  # (I, J, K), not transposed
    np.testing.assert_allclose(image.affine, AFFINE, atol=1e-5)


def test_uncompressed_nii_and_scaling(tmp_path):
    img = nib.Nifti1Image(np.array(_volume(), dtype=np.int16), AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, str(tmp_path / "scaled.nii"))
    image = load_image(tmp_path / "scaled.nii")
    np.testing.assert_allclose(image.array, _volume() * 0.5 + 10.0)


def test_trailing_singleton_is_squeezed(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", _volume((7, 5, 3)).reshape(7, 5, 3, 1), AFFINE)
    assert load_image(path).array.shape == (7, 5, 3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_text("this is not an image\n"), "not a readable NIfTI image"),
        (lambda p: write_nifti(p, _volume((7, 5)), np.eye(4)), "image is 2D"),
        (lambda p: write_nifti(p, _volume((7, 5, 1)), np.eye(4)), "image is 2D"),
        (lambda p: write_nifti(p, _volume((7, 5, 3, 2)), np.eye(4)), "image is 4D"),
        (lambda p: write_nifti(p, np.where(_volume() == 4, np.nan, _volume()), np.eye(4)), "1 NaN and 0 Inf"),
        (lambda p: write_nifti(p, np.where(_volume() == 4, np.inf, _volume()), np.eye(4)), "0 NaN and 1 Inf"),
        (lambda p: write_nifti(p, np.full((7, 5, 3), 3.0, np.float32), np.eye(4)), "image is constant"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["missing", "text", "2d", "single-slice", "4d", "nan", "inf", "constant", "folder"],
)
def test_bad_images_are_named(tmp_path, make, match):
    path = tmp_path / "scan.nii.gz"
    make(path)
    with pytest.raises(FCDInputError, match=match) as info:
        load_image(path, name="FLAIR")
    message = str(info.value)
    assert message.startswith(f"FLAIR {path}: ") and "\n" not in message


def test_truncated_file(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", np.random.default_rng(0).random((20, 20, 20)), AFFINE)
    raw = gzip.decompress(good.read_bytes())
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(FCDInputError, match=r"bad\.nii\.gz: not a readable NIfTI image"):
        load_image(bad)


def test_mask_is_bool_and_may_be_empty(tmp_path):
    values = np.zeros((6, 5, 4), np.float32)
    values[1, 1, 1], values[2, 2, 2] = 0.4, 0.6
    mask = load_mask(write_nifti(tmp_path / "roi.nii.gz", values, AFFINE))
    assert mask.array.dtype == np.bool_ and mask.array.sum() == 1 and mask.array[2, 2, 2]
    empty = load_mask(write_nifti(tmp_path / "empty.nii.gz", np.zeros((6, 5, 4), np.uint8), AFFINE))
    assert not empty.array.any()
    with pytest.raises(FCDInputError, match="image is 4D"):
        load_mask(write_nifti(tmp_path / "m4.nii.gz", np.zeros((6, 5, 4, 2), np.uint8), AFFINE))


def test_validate_array_in_memory():
    image = validate_array(_volume().astype(np.float64), AFFINE, "T1 node")
    assert image.array.dtype == np.float32 and image.affine.dtype == np.float64
    assert validate_array(np.zeros((3, 3, 3)), np.eye(4), "x", constant_ok=True).array.shape == (3, 3, 3)
    with pytest.raises(FCDInputError, match=r"^T1 node: affine is singular"):
        validate_array(_volume(), np.diag([1.0, 0.0, 1.0, 1.0]), "T1 node")
    with pytest.raises(FCDInputError, match=r"^T1 node: missing or invalid 4x4 affine"):
        validate_array(_volume(), np.eye(3), "T1 node")
    with pytest.raises(FCDInputError, match=r"^T1 node: voxel type"):
        validate_array(np.full((3, 3, 3), "a"), np.eye(4), "T1 node")
    with pytest.raises(FCDInputError, match=r"^T1 node: image is constant"):
        validate_array(np.zeros((3, 3, 3)), np.eye(4), "T1 node")
    with pytest.raises(FCDInputError, match=r"^ROI node: image is constant"):
        validate_array(np.zeros((3, 3, 3), bool), np.eye(4), "ROI node")
    assert (
        validate_array(np.zeros((3, 3, 3), bool), np.eye(4), "ROI node", constant_ok=True).array.dtype == bool
    )


def test_save_image_round_trip_and_header(tmp_path):
    out = tmp_path / "sub" / "heatmap.nii.gz"
    heat = np.random.default_rng(1).random((7, 5, 3)).astype(np.float32)
    save_image(out, heat, AFFINE)
    reread = nib.load(str(out))
    assert reread.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(reread.dataobj), heat)
    np.testing.assert_allclose(reread.affine, AFFINE, atol=1e-5)
    assert int(reread.header["sform_code"]) == 1 and int(reread.header["qform_code"]) == 1
    np.testing.assert_allclose(reread.header.get_qform(), AFFINE, atol=1e-4)
    save_image(tmp_path / "mask.nii.gz", heat > 0.5, AFFINE)
    assert nib.load(str(tmp_path / "mask.nii.gz")).get_data_dtype() == np.uint8
    assert sorted(p.name for p in out.parent.iterdir()) == ["heatmap.nii.gz"]  # no temporary left


@pytest.mark.parametrize("name", ["heatmap.nii.gz", "heatmap.nii"])
def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, name):
    from FCDDetectLib.io import image_io

    out = tmp_path / name
    save_image(out, _volume(), AFFINE)
    before = out.read_bytes()

    def broken_write(filename, *_):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    # .nii.gz is written by _save_nifti_gz (nibabel into a gzip stream); .nii by nib.save
    monkeypatch.setattr(image_io, "_save_nifti_gz", lambda image, filename: broken_write(filename))
    monkeypatch.setattr(nib, "save", lambda image, filename: broken_write(filename))
    with pytest.raises(OSError, match="disk full"):
        save_image(out, _volume() * 2, AFFINE)
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [name]


def test_nii_gz_is_the_gzip_of_nibabels_bytes_and_reads_back_everywhere(tmp_path):
    # the fast gzip stream (isal) must hold the very NIfTI bytes nibabel writes, and nibabel and
    # SimpleITK (Slicer's reader) must open it
    import gzip

    import SimpleITK as sitk

    volume = _volume()
    save_image(tmp_path / "fast.nii.gz", volume, AFFINE)
    save_image(tmp_path / "plain.nii", volume, AFFINE)
    assert gzip.decompress((tmp_path / "fast.nii.gz").read_bytes()) == (tmp_path / "plain.nii").read_bytes()
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "fast.nii.gz").dataobj), volume)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "fast.nii.gz")))
    np.testing.assert_array_equal(itk.transpose(2, 1, 0), volume)
    save_image(tmp_path / "again.nii.gz", volume, AFFINE)  # mtime 0: the same bytes every time
    assert (tmp_path / "again.nii.gz").read_bytes() == (tmp_path / "fast.nii.gz").read_bytes()


def test_json_and_text_atomic(tmp_path):
    path = tmp_path / "out" / "result.json"
    write_json_atomic(path, {"p": np.float32(0.25), "n": np.int64(3), "v": np.arange(3), "f": tmp_path})
    assert json.loads(path.read_text(encoding="utf-8")) == {"p": 0.25, "n": 3, "v": [0, 1, 2], "f": str(tmp_path)}
    write_json_atomic(path, {"auc": float("nan"), "x": [np.float64("inf"), 1.5], "k": {1: np.bool_(True)}})
    assert json.loads(path.read_text(encoding="utf-8")) == {"auc": None, "x": [None, 1.5], "k": {"1": True}}
    assert "NaN" not in path.read_text(encoding="utf-8")
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text(encoding="utf-8"))["auc"] is None  # old file untouched
    text = tmp_path / "report.md"
    write_text_atomic(text, "# one\n")
    write_text_atomic(text, "# two\n")
    assert text.read_text(encoding="utf-8") == "# two\n"
    assert sorted(os.listdir(tmp_path)) == ["out", "report.md"]
    assert os.listdir(tmp_path / "out") == ["result.json"]
