"""FCDDetectLib.networks.medicalnet: loading checkpoints written in the released MedicalNet format."""

from __future__ import annotations

import pytest
import torch
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.medicalnet import detect_depth, load_medicalnet_weights, save_medicalnet_checkpoint
from FCDDetectLib.networks.resnets import build_resnet

from Testing.builders.medicalnet_checkpoints import WIDTH, medicalnet_source, released_format


@pytest.mark.parametrize(
    ("depth", "geometry"), [(18, "paper"), (18, "medicalnet"), (34, "medicalnet"), (50, "paper")]
)
def test_load_released_layout_values_equal(tmp_path, depth, geometry):
    source = medicalnet_source(depth)
    path = tmp_path / f"resnet_{depth}.pth"
    released_format(source, path)
    model = build_resnet(depth, geometry=geometry, widen_factor=WIDTH)
    fc_before = model.fc.weight.clone()
    report = load_medicalnet_weights(model, path, depth)
    target = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(target[key], value), key
    assert torch.equal(model.fc.weight, fc_before)  # classifier untouched
    assert sorted(report.loaded) == sorted(source.state_dict())
    assert report.missing == ["fc.weight", "fc.bias"]
    assert report.unexpected == []
    assert report.source == str(path)


def test_load_full_width_resnet18(tmp_path):
    source = medicalnet_source(18, widen_factor=1.0)
    path = save_medicalnet_checkpoint(source, tmp_path / "resnet_18_23dataset.pth")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict"} and all(k.startswith("module.") for k in raw["state_dict"])
    assert not any("fc." in k or "conv_seg" in k for k in raw["state_dict"])
    model = build_resnet(18, geometry="medicalnet")
    load_medicalnet_weights(model, path, 18)
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.equal(model.layer2[0].bn1.running_var, source.layer2[0].bn1.running_var)


def test_conv_seg_keys_ignored_and_reported(tmp_path):
    source = medicalnet_source(18)
    path = tmp_path / "with_seg.pth"
    released_format(source, path, extra={"module.conv_seg.0.weight": torch.zeros(128, 32, 2, 2, 2)})
    report = load_medicalnet_weights(build_resnet(18, widen_factor=WIDTH), path, 18)
    assert report.unexpected == ["conv_seg.0.weight"]


def test_missing_num_batches_tracked_is_harmless(tmp_path):
    source = medicalnet_source(18)
    path = tmp_path / "old_torch.pth"
    released_format(source, path, drop=("num_batches_tracked",))
    model = build_resnet(18, widen_factor=WIDTH)
    report = load_medicalnet_weights(model, path, 18)
    assert "bn1.num_batches_tracked" in report.missing and "fc.weight" in report.missing
    assert torch.equal(model.bn1.running_mean, source.bn1.running_mean)


def test_two_channel_conv1_from_one_channel_weights(tmp_path):
    source = medicalnet_source(18)
    path = tmp_path / "resnet_18.pth"
    released_format(source, path)
    model = build_resnet(18, in_channels=2, widen_factor=WIDTH)
    report = load_medicalnet_weights(model, path, 18)
    assert report.adapted == ["conv1.weight"]
    expected = torch.cat([source.conv1.weight, source.conv1.weight], dim=1) / 2
    assert torch.equal(model.conv1.weight, expected)
    # equal channels give exactly the 1-channel network's conv1 response
    one = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        a = torch.nn.functional.conv3d(one, source.conv1.weight, stride=2, padding=3)
        b = torch.nn.functional.conv3d(one.repeat(1, 2, 1, 1, 1), model.conv1.weight, stride=2, padding=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("file_depth", "model_depth"), [(34, 18), (50, 34), (18, 50)])
def test_other_depth_refused_with_both_depths(tmp_path, file_depth, model_depth):
    path = tmp_path / f"resnet_{file_depth}.pth"
    released_format(medicalnet_source(file_depth), path)
    model = build_resnet(model_depth, widen_factor=WIDTH)
    with pytest.raises(FCDInputError, match=f"file looks like ResNet-{file_depth}, model is ResNet-{model_depth}") as info:
        load_medicalnet_weights(model, path, model_depth)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_backbone_key_refused_and_model_unchanged(tmp_path):
    path = tmp_path / "missing.pth"
    released_format(medicalnet_source(18), path, drop=("layer2.1.conv1.weight",))
    model = build_resnet(18, widen_factor=WIDTH)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FCDInputError, match=r"missing backbone tensors .*layer2\.1\.conv1\.weight"):
        load_medicalnet_weights(model, path, 18)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_shape_refused(tmp_path):
    source = medicalnet_source(18)
    path = tmp_path / "shape.pth"
    state = released_format(source, path)
    state["module.layer3.0.conv2.weight"] = torch.zeros(64, 64, 3, 3, 1)
    torch.save({"state_dict": state}, path)
    with pytest.raises(FCDInputError, match=r"wrong shape.*layer3\.0\.conv2\.weight"):
        load_medicalnet_weights(build_resnet(18, widen_factor=WIDTH), path, 18)
    # a full-width file does not fit a narrow model either
    wide = tmp_path / "wide.pth"
    save_medicalnet_checkpoint(build_resnet(18, geometry="medicalnet"), wide)
    with pytest.raises(FCDInputError, match="wrong shape"):
        load_medicalnet_weights(build_resnet(18, widen_factor=WIDTH), wide, 18)


def test_truncated_corrupt_and_foreign_files(tmp_path):
    model = build_resnet(18, widen_factor=WIDTH)
    good = tmp_path / "good.pth"
    released_format(medicalnet_source(18), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FCDInputError, match="truncated or corrupt") as info:
        load_medicalnet_weights(model, truncated, 18)
    assert str(truncated) in str(info.value) and "\n" not in str(info.value)

    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(FCDInputError, match="truncated or corrupt"):
        load_medicalnet_weights(model, garbage, 18)

    bare = tmp_path / "bare.pth"
    torch.save(medicalnet_source(18).state_dict(), bare)  # a plain state_dict, no wrapper
    with pytest.raises(FCDInputError, match="no 'state_dict'"):
        load_medicalnet_weights(model, bare, 18)

    odd = tmp_path / "odd.pth"
    torch.save({"state_dict": [1, 2, 3]}, odd)
    with pytest.raises(FCDInputError, match="not a mapping"):
        load_medicalnet_weights(model, odd, 18)

    with pytest.raises(FCDInputError, match="not found"):
        load_medicalnet_weights(model, tmp_path / "absent.pth", 18)

    empty = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, empty)
    with pytest.raises(FCDInputError, match="missing backbone tensors"):
        load_medicalnet_weights(model, empty, 18)


def test_detect_depth():
    assert detect_depth(medicalnet_source(50).state_dict()) == 50
    assert detect_depth({"module." + k: 0 for k in medicalnet_source(34).state_dict()}) == 34
    assert detect_depth({"conv1.weight": 0}) is None
