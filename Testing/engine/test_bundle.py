"""FCDDetectLib.networks.bundle: metadata validation, atomic save, load, every bad bundle named."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from FCDDetectLib import __version__
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.bundle import load_bundle, save_bundle
from FCDDetectLib.networks.bundle_metadata import BUNDLE_FORMAT_VERSION, BundleMetadata, read_bundle_metadata
from FCDDetectLib.networks.resnets import build_resnet

WIDTH = 0.125


def meta(**changes) -> BundleMetadata:
    values = dict(
        depth=18,
        geometry="medicalnet",
        modalities=["flair"],
        target_spacing=[1.5, 1.5, 1.5],
        target_shape=[32, 32, 32],
        training={"folds": 5, "fold": 2, "weights": "medicalnet23"},
        metrics={"accuracy": 0.8},
    )
    values.update(changes)
    return BundleMetadata(**values)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return build_resnet(18, geometry="medicalnet", widen_factor=WIDTH)


@pytest.fixture
def bundle(tmp_path, model):
    return save_bundle(tmp_path / "flair-r18", model, meta())


def test_round_trip_weights_metadata_eval_mode(tmp_path, model, bundle):
    assert bundle == tmp_path / "flair-r18.fcdbundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "weights.pt"]
    loaded = load_bundle(bundle)
    assert loaded.path == bundle
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    expected = meta(name="flair-r18")
    assert loaded.verified and loaded.metadata.content_sha256 == loaded.content_sha256  # recorded when written
    assert dataclasses.replace(loaded.metadata, content_sha256=None, weights_sha256=None) == expected
    assert loaded.metadata.engine_version == __version__
    assert loaded.metadata.format_version == 1  # classifier-only bundles stay format 1 (older engines read them)
    # same outputs, same geometry (dilated layer4 rebuilt from the metadata)
    x = torch.randn(1, 1, 32, 32, 32)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.model.layer4[0].conv1.dilation == (4, 4, 4)
    # state_dict loads with weights_only=True (plain tensors, no pickled code)
    assert set(torch.load(bundle / "weights.pt", weights_only=True)) == set(model.state_dict())
    assert read_bundle_metadata(bundle / "bundle.json") == loaded.metadata
    # nothing left behind in the parent folder
    assert [p.name for p in tmp_path.iterdir()] == ["flair-r18.fcdbundle"]


def test_depth34_two_channel_round_trip(tmp_path):
    model = build_resnet(34, in_channels=2, geometry="paper", widen_factor=0.25)
    path = save_bundle(tmp_path / "t1flair.fcdbundle", model, meta(depth=34, geometry="paper", modalities=["t1", "flair"]))
    loaded = load_bundle(path, device="auto")
    assert loaded.model.conv1.weight.shape == (16, 2, 7, 7, 7)
    assert loaded.model.conv1.stride == (1, 2, 2)
    assert torch.equal(loaded.model.layer3[5].conv2.weight.cpu(), model.layer3[5].conv2.weight)
    assert loaded.metadata.in_channels == 2
    with pytest.raises(FCDInputError, match="device 'quantum' is not available"):
        load_bundle(path, device="quantum")


def test_read_metadata_does_not_import_torch(bundle):
    code = (
        "import sys\n"
        "from FCDDetectLib.networks.bundle import read_bundle_metadata\n"
        f"m = read_bundle_metadata({str(bundle)!r})\n"
        "assert m.depth == 18 and m.modalities == ['flair'], m\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_replacing_existing_bundle(tmp_path, bundle):
    other = build_resnet(18, geometry="medicalnet", widen_factor=WIDTH)
    with torch.no_grad():
        other.fc.weight.fill_(0.25)
    again = save_bundle(bundle, other, meta(threshold=0.3))
    assert again == bundle
    loaded = load_bundle(bundle)
    assert loaded.metadata.threshold == 0.3
    assert torch.all(loaded.model.fc.weight == 0.25)
    assert [p.name for p in tmp_path.iterdir()] == [bundle.name]


def test_failed_save_leaves_old_bundle_and_no_debris(tmp_path, bundle, model, monkeypatch):
    def broken_save(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(bundle, model, meta(threshold=0.9))
    with pytest.raises(OSError, match="disk full"):
        save_bundle(tmp_path / "new", model, meta())
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [bundle.name]
    assert read_bundle_metadata(bundle).threshold == 0.5


def test_save_refuses_non_bundle_targets_and_mismatched_model(tmp_path, model):
    folder = tmp_path / "precious.fcdbundle"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FCDInputError, match="not a model bundle; refusing to overwrite"):
        save_bundle(folder, model, meta())
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "keep me"
    with pytest.raises(FCDInputError, match=r"do not match ResNet-34"):
        save_bundle(tmp_path / "wrong", model, meta(depth=34))
    with pytest.raises(FCDInputError, match=r"2 channel"):
        save_bundle(tmp_path / "wrong", model, meta(modalities=["t1", "flair"]))
    assert not (tmp_path / "wrong.fcdbundle").exists()


def test_metadata_json_ready_and_numpy_values():
    m = meta(target_spacing=(1.0, 1.0, 2.0), target_shape=[np.int64(32)] * 3, metrics={"auc": np.float32(0.5)})
    data = m.to_dict()
    json.dumps(data)
    assert data["target_spacing"] == [1.0, 1.0, 2.0] and data["target_shape"] == [32, 32, 32]
    assert BundleMetadata.from_dict(data).target_shape == [32, 32, 32]


def write_json(bundle, data):
    (bundle / "bundle.json").write_text(json.dumps(data) if not isinstance(data, str) else data)


def test_missing_bundle_and_missing_files(tmp_path, bundle):
    with pytest.raises(FCDInputError, match="model bundle not found") as info:
        read_bundle_metadata(tmp_path / "absent.fcdbundle")
    assert "absent.fcdbundle" in str(info.value)
    a_file = tmp_path / "file.fcdbundle"
    a_file.write_text("x")
    with pytest.raises(FCDInputError, match="not a model bundle"):
        load_bundle(a_file)
    (bundle / "weights.pt").unlink()
    with pytest.raises(FCDInputError, match=r"weights\.pt: missing"):
        load_bundle(bundle)
    (bundle / "bundle.json").unlink()
    with pytest.raises(FCDInputError, match=r"bundle\.json: missing"):
        read_bundle_metadata(bundle)


def test_corrupt_json(bundle):
    write_json(bundle, '{"depth": 18,')
    with pytest.raises(FCDInputError, match="corrupt JSON") as info:
        load_bundle(bundle)
    assert str(bundle / "bundle.json") in str(info.value) and "\n" not in str(info.value)
    write_json(bundle, "[1, 2]")
    with pytest.raises(FCDInputError, match="must be a JSON object"):
        read_bundle_metadata(bundle)


@pytest.mark.parametrize("field", ["depth", "geometry", "modalities", "target_spacing", "target_shape", "format_version", "threshold", "class_names"])
def test_missing_field(bundle, field):
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    del data[field]
    write_json(bundle, data)
    with pytest.raises(FCDInputError, match=f"missing field '{field}'") as info:
        read_bundle_metadata(bundle)
    assert str(bundle / "bundle.json") in str(info.value)


def test_optional_fields_may_be_absent(bundle):
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    for key in ("name", "engine_version", "training", "metrics"):
        del data[key]
    data["future_key"] = "ignored"
    write_json(bundle, data)
    m = read_bundle_metadata(bundle)
    assert m.training == {} and m.name == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("depth", "18"),
        ("depth", 101),
        ("depth", True),
        ("geometry", "wide"),
        ("modalities", "flair"),
        ("modalities", []),
        ("modalities", ["flair", "flair"]),
        ("target_spacing", [1.0, 1.0]),
        ("target_spacing", [1.0, -1.0, 1.0]),
        ("target_shape", [32.5, 32, 32]),
        ("target_shape", [32, 32, 0]),
        ("threshold", 1.5),
        ("threshold", "0.5"),
        ("class_names", ["fcd"]),
        ("normalisation", "minmax"),
        ("architecture", "densenet"),
        ("training", []),
        ("name", 3),
        ("format_version", "1"),
        ("format_version", 0),
    ],
)
def test_wrong_field_type_or_value(bundle, field, value):
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    data[field] = value
    write_json(bundle, data)
    with pytest.raises(FCDInputError, match=f"field '{field}' must be"):
        read_bundle_metadata(bundle)


def test_newer_format_version_refused(bundle):
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    data["format_version"] = BUNDLE_FORMAT_VERSION + 1
    write_json(bundle, data)
    with pytest.raises(FCDInputError, match="newer than this engine supports"):
        load_bundle(bundle)


def test_truncated_and_foreign_weights(bundle):
    weights = bundle / "weights.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(FCDInputError, match="not the weights this bundle was written with") as info:
        load_bundle(bundle)  # the recorded checksum refuses it before torch reads a byte
    assert str(weights) in str(info.value) and "\n" not in str(info.value)
    # a bundle written before checksums: torch's own refusals, one line each
    unverified = {k: v for k, v in json.loads((bundle / "bundle.json").read_text(encoding="utf-8")).items()
                  if k not in ("content_sha256", "weights_sha256")}
    write_json(bundle, unverified)
    with pytest.raises(FCDInputError, match="cannot read model weights") as info:
        load_bundle(bundle)
    assert str(weights) in str(info.value) and "\n" not in str(info.value)
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, weights)
    with pytest.raises(FCDInputError, match="not a state_dict"):
        load_bundle(bundle)


def test_weights_not_matching_metadata_architecture(bundle):
    # an edited bundle.json is refused by its checksum first (test_hostile_identity); here, unverified bundles
    data = {k: v for k, v in json.loads((bundle / "bundle.json").read_text(encoding="utf-8")).items()
            if k not in ("content_sha256", "weights_sha256")}
    for change, pattern in (
        ({"depth": 34}, r"ResNet-34.*missing: layer1\.2"),
        ({"depth": 50}, r"ResNet-50"),
        ({"modalities": ["t1", "flair"]}, r"2 channel.*wrong shape: conv1\.weight"),
        ({"class_names": ["a", "b"], "depth": 18}, None),
    ):
        write_json(bundle, {**data, **change})
        if pattern is None:
            load_bundle(bundle)  # class names are free text
            continue
        with pytest.raises(FCDInputError, match=pattern) as info:
            load_bundle(bundle)
        assert "weights.pt" in str(info.value)
