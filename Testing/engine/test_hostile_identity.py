"""Issue 25, items 2 and 3: no result belongs to another model, scan or option; a broken model is an error.

- A bundle records a content checksum (weights + ``bundle.json``) when written and is
  checked when loaded: swapped weights or an edited ``bundle.json`` are refused; a bundle
  written before checksums loads as unverified (``model_verified: false``).
- A cohort resumes a subject only when the bundle's content, the input files and every
  option that changes the output are the same; a second model *of the same name*, another
  layer or an edited scan is recomputed (the issue's case returned the first model's
  probabilities as ``resumed``).
- NaN weights, or a network that outputs NaN with finite weights (a negative BatchNorm
  variance), are one error line and nothing written, never ``prediction: "control"``.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.cohort.runner import run_cohort
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.bundle import load_bundle, save_bundle
from FCDDetectLib.networks.bundle_metadata import BundleMetadata, read_bundle_metadata
from FCDDetectLib.networks.resnets import build_resnet

from Testing.builders.cohort_fixtures import AFFINE, cohort_scan, write_bids_cohort
from Testing.builders.geometry_fixtures import write_nifti
from Testing.builders.hostile_fixtures import GRID_SHAPE, GRID_SPACING, head, save_nifti


def _bundle(path, seed: int = 3, change=None, name: str = "tiny"):
    torch.manual_seed(seed)
    net = build_resnet(18, 1, widen_factor=0.125)
    if change is not None:
        change(net)
    meta = BundleMetadata(name=name, depth=18, geometry="paper", modalities=["flair"],
                          target_spacing=list(GRID_SPACING), target_shape=list(GRID_SHAPE))
    return save_bundle(path, net, meta)


def test_the_bundle_checksum_is_written_checked_and_optional_for_old_bundles(tmp_path):
    first = _bundle(tmp_path / "first.fcdbundle", seed=3)
    recorded = json.loads((first / "bundle.json").read_text(encoding="utf-8"))["content_sha256"]
    loaded = load_bundle(first)
    assert loaded.verified and loaded.content_sha256 == recorded
    # swapped weights: another network under this bundle.json (same name, same architecture)
    other = _bundle(tmp_path / "other.fcdbundle", seed=4)
    swapped = tmp_path / "swapped.fcdbundle"
    shutil.copytree(first, swapped)
    shutil.copy(other / "weights.pt", swapped / "weights.pt")
    with pytest.raises(FCDInputError, match="not the weights this bundle was written with") as info:
        load_bundle(swapped)
    assert str(info.value).startswith(str(swapped / "weights.pt"))
    # an edited bundle.json (a lower threshold makes more "fcd")
    edited = tmp_path / "edited.fcdbundle"
    shutil.copytree(first, edited)
    data = json.loads((edited / "bundle.json").read_text(encoding="utf-8"))
    (edited / "bundle.json").write_text(json.dumps({**data, "threshold": 0.1}, indent=4))
    with pytest.raises(FCDInputError, match="changed after the bundle was written") as info:
        load_bundle(edited)
    assert str(info.value).startswith(str(edited / "bundle.json"))
    # re-indenting the JSON is no change of content
    (edited / "bundle.json").write_text(json.dumps(data, indent=None))
    assert load_bundle(edited).verified
    # a bundle written before checksums: loads, unverified, with the same content digest
    old = tmp_path / "old.fcdbundle"
    shutil.copytree(first, old)
    data.pop("content_sha256")
    data.pop("weights_sha256")
    (old / "bundle.json").write_text(json.dumps(data))
    assert read_bundle_metadata(old).content_sha256 is None
    unverified = load_bundle(old)
    assert not unverified.verified and unverified.content_sha256 == recorded
    scan = save_nifti(tmp_path / "scan.nii.gz", head((30, 34, 30), seed=1))
    assert detect(old, [scan], device="cpu").to_json()["model_verified"] is False
    stored = detect(first, [scan], device="cpu").to_json()
    assert stored["model_verified"] is True and stored["model_sha256"] == recorded


def test_nan_weights_and_nan_outputs_are_errors_and_nothing_is_written(tmp_path, capsys):
    def nan_fc(net):
        with torch.no_grad():
            net.fc.weight[0, 0] = float("nan")

    broken = _bundle(tmp_path / "nan.fcdbundle", change=nan_fc)
    with pytest.raises(FCDInputError, match=r"fc.weight holds 1 NaN or infinite value"):
        load_bundle(broken)

    def negative_variance(net):  # finite weights, NaN out of every forward pass
        net.bn1.running_var.fill_(-1.0)

    nan_out = _bundle(tmp_path / "nan-out.fcdbundle", change=negative_variance)
    scan = save_nifti(tmp_path / "scan.nii.gz", head((30, 34, 30), seed=1))
    for bundle in (broken, nan_out):
        out = tmp_path / f"out-{bundle.name}"
        code = main(["detect", "--model", str(bundle), "--image", str(scan), "--device", "cpu", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        assert not out.exists()
    assert "non-finite probability" in err[0]


def test_resume_needs_the_same_bundle_content_inputs_and_options(tmp_path):
    bids = write_bids_cohort(tmp_path / "bids")
    subjects = discover_subjects(bids, ["flair"])[:2]
    out = tmp_path / "out"
    first = _bundle(tmp_path / "a" / "tiny.fcdbundle", seed=3)
    second = _bundle(tmp_path / "b" / "tiny.fcdbundle", seed=5)  # the same name, other weights
    assert read_bundle_metadata(first).name == read_bundle_metadata(second).name

    def statuses(model, **options):
        rows = run_cohort(model, subjects, out, device="cpu", **options)
        return [row["status"] for row in rows], {row["subject"]: row for row in rows}

    assert statuses(first)[0] == ["done", "done"]
    assert statuses(first)[0] == ["resumed", "resumed"]
    status, rows = statuses(second)
    assert status == ["done", "done"]  # was "resumed" with the first model's probabilities
    stored = json.loads((out / "sub-00001" / "result.json").read_text(encoding="utf-8"))
    assert stored["model_sha256"] == load_bundle(second).content_sha256
    assert rows["sub-00001"]["probability"] == pytest.approx(stored["probability"])
    assert statuses(second, layer="layer3")[0] == ["done", "done"]
    assert statuses(second, layer="layer3")[0] == ["resumed", "resumed"]
    assert statuses(second, layer="layer3", cluster_threshold=0.7)[0] == ["done", "done"]
    assert statuses(second, layer="layer3", cluster_threshold=0.7, target_class="control")[0] == ["done", "done"]
    # another scan under the same file name: that subject only
    write_nifti(subjects[1].images[0], cohort_scan(42), AFFINE)
    assert statuses(second, layer="layer3", cluster_threshold=0.7, target_class="control")[0] == ["resumed", "done"]
    stored = json.loads((out / "sub-00002" / "result.json").read_text(encoding="utf-8"))
    assert set(stored["options"]) == {"method", "layer", "target_class", "cluster_threshold", "min_cluster_mm3",
                                      "localized_smoothgrad", "nt_samples", "noise_sd", "series", "roi_segment"}
    assert len(stored["input_sha256"]["images"]) == 1 and stored["input_sha256"]["roi"] is None
