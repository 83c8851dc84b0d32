"""``fcd detect`` on the issue's bad inputs of other formats: one ``error:`` line naming the file, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from FCDDetectLib.cli import main

from Testing.builders.format_fixtures import write_dicom_series, write_nrrd, write_seg_nrrd
from Testing.builders.geometry_fixtures import centred_affine, head_phantom, write_nifti

SHAPE = (20, 22, 16)
AFFINE = np.array([[-3.0, 0, 0, 30.0], [0, -3.0, 0, 33.0], [0, 0, 3.0, -24.0], [0, 0, 0, 1]])


def _scan() -> np.ndarray:
    return np.round(head_phantom(centred_affine((3.0,) * 3, SHAPE), SHAPE, radii_mm=(24.0, 27.0, 20.0))).astype(np.int16)


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    meta = BundleMetadata(name="tiny", depth=18, geometry="medicalnet", modalities=["flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=[16, 16, 16])
    return save_bundle(tmp_path_factory.mktemp("b") / "tiny.fcdbundle", build_resnet(18, 1, widen_factor=0.125), meta)


def _no_series(tmp):
    (tmp / "empty").mkdir()
    (tmp / "empty" / "DICOMDIR.txt").write_text("x")
    return ["--image", str(tmp / "empty")], "empty: is a folder with no DICOM image series"


def _two_series(tmp):
    write_dicom_series(tmp / "two", _scan(), AFFINE, series_uid="1.2.3.1", description="FLAIR", prefix="A")
    write_dicom_series(tmp / "two", _scan(), AFFINE, series_uid="1.2.3.2", description="T2", prefix="B")
    return ["--image", str(tmp / "two")], "two: folder holds 2 series"


def _missing_slice(tmp):
    write_dicom_series(tmp / "gap", _scan(), AFFINE, skip_slices=(5,))
    return ["--image", str(tmp / "gap")], "gap: series .* incomplete, about 1 slice"


def _unequal(tmp):
    write_dicom_series(tmp / "uneq", _scan(), AFFINE, shift_slice=(5, 1.0))
    return ["--image", str(tmp / "uneq")], "uneq: series .* unequal slice spacing"


def _no_segment(tmp):
    image = write_nifti(tmp / "scan.nii.gz", _scan(), AFFINE)
    roi = np.zeros(SHAPE, np.uint8)
    roi[8:12, 8:12, 6:9] = 1
    seg = write_seg_nrrd(tmp / "Segmentation.seg.nrrd", roi, AFFINE, [{"name": "lesion", "value": 1}])
    return (["--image", str(image), "--roi", str(seg), "--roi-segment", "tumour"],
            r"Segmentation.seg.nrrd: no segment named or labelled 'tumour' \(segments: lesion")


def _time_axis(tmp):
    series = np.stack([_scan(), _scan()], axis=-1).astype(np.int16)
    path = write_nrrd(tmp / "bold.nrrd", np.moveaxis(series, -1, 0), AFFINE, kinds=["time", "domain", "domain", "domain"])
    return ["--image", str(path)], r"bold.nrrd: image has a non-spatial axis \(time"


def _dicom_out_for_nifti(tmp):
    image = write_nifti(tmp / "scan.nii.gz", _scan(), AFFINE)
    return (["--image", str(image), "--dicom-out", str(tmp / "pacs")],
            "--dicom-out: .*scan.nii.gz is not a DICOM series folder")


@pytest.mark.parametrize(
    "case", [_no_series, _two_series, _missing_slice, _unequal, _no_segment, _time_axis, _dicom_out_for_nifti],
    ids=["no-series", "two-series", "missing-slice", "unequal-spacing", "no-segment", "time-axis", "dicom-out-nifti"],
)
def test_bad_input_is_one_error_line_and_exit_2(case, bundle_path, tmp_path, capsys):
    import re

    arguments, pattern = case(tmp_path)
    out = tmp_path / "out"
    code = main(["detect", "--model", str(bundle_path), *arguments, "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists() and not (tmp_path / "pacs").exists()


def test_float64_overflow_gives_one_stderr_line_in_a_real_process(bundle_path, tmp_path):
    """Issue 9 item 10: no numpy RuntimeWarning beside the error line."""
    data = _scan().astype(np.float64)
    data[2, 2, 2] = 1e300
    image = write_nifti(tmp_path / "f64.nii.gz", data, AFFINE)
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "FCDDetectLib.cli", "detect", "--model", str(bundle_path),
         "--image", str(image), "--out", str(tmp_path / "out"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {image}: float64 values up to 1e+300 do not fit float32 (max 3.4e+38); rescale the image"
    ], done.stderr
