"""Issue 9, item 1 and 10: nothing a user did not write ever runs; refusals are one line.

A bundle's ``weights.pt`` replaced by a pickle whose ``__reduce__`` touches a marker file
must be refused without running it (torch zip format and raw pickle), with one ``error:``
line naming the file and without torch's advice to retry with ``weights_only=False``.
The fold-checkpoint case is in ``Testing/train/test_hostile_checkpoint.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.safe_load import UnsafeFileError, load_tensors

from Testing.builders.hostile_fixtures import (
    head,
    one_error_line,
    plant_pickle,
    run_fcd,
    save_nifti,
    tiny_bundle,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "raw-pickle"])
def test_load_tensors_refuses_a_planted_pickle_without_running_it(tmp_path, zip_format):
    marker = tmp_path / "PWNED"
    path = plant_pickle(tmp_path / "weights.pt", marker, zip_format=zip_format)
    with pytest.raises(UnsafeFileError) as info:
        load_tensors(path, "model weights")
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "weights_only" not in message


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "raw-pickle"])
def test_fcd_detect_with_a_planted_bundle_weights_file(tmp_path, zip_format):
    bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")
    marker = tmp_path / "PWNED"
    plant_pickle(bundle / "weights.pt", marker, zip_format=zip_format)
    image = save_nifti(tmp_path / "flair.nii.gz", head())
    out = tmp_path / "out"
    done = run_fcd(["detect", "--model", str(bundle), "--image", str(image), "--device", "cpu", "--out", str(out)])
    assert done.returncode == 2
    line = one_error_line(done.stderr)  # no torch UserWarning about the pickle protocol either
    assert str(bundle / "weights.pt") in line and "weights_only" not in line
    assert not marker.exists()
    assert not out.exists()


def test_a_truncated_file_is_one_line_naming_it(tmp_path):
    bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")
    weights = bundle / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(FCDInputError, match="truncated or corrupt") as info:
        load_tensors(weights, "model weights")
    assert str(weights) in str(info.value) and "\n" not in str(info.value)


def test_every_torch_load_in_the_project_is_weights_only_true():
    calls = []
    for folder in ("FCDDetect", "FCDTrain", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
                calls.append((path.name, match.group(1)))
    assert calls, "no torch.load found: the pattern is wrong"
    unsafe = [(name, args) for name, args in calls if "weights_only=True" not in args]
    assert not unsafe, unsafe
