"""RunConfig: the network width option and its checks."""

from __future__ import annotations

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.run_config import RunConfig
from FCDTrainLib.trainer import build_model


def test_widen_factor_builds_a_narrower_network():
    narrow, _ = build_model(RunConfig(data="x", widen_factor=0.5), fold=0)
    standard, _ = build_model(RunConfig(data="x"), fold=0)
    assert narrow.conv1.out_channels == 32 and standard.conv1.out_channels == 64
    assert narrow.fc.in_features == 256 and standard.fc.in_features == 512


@pytest.mark.parametrize("value", [0.0, -1.0, 5.0])
def test_widen_factor_out_of_range_is_refused(value):
    with pytest.raises(FCDInputError, match="--widen-factor"):
        RunConfig(data="x", widen_factor=value).validate()


def test_widen_factor_with_medicalnet_weights_is_refused(tmp_path):
    weights = tmp_path / "resnet_18.pth"
    weights.write_bytes(b"x")
    config = RunConfig(data="x", pretrained="medicalnet8", weights=str(weights), widen_factor=0.5)
    with pytest.raises(FCDInputError, match="standard width"):
        config.validate()


def test_widen_factor_is_part_of_the_run_identity():
    assert RunConfig(data="x", widen_factor=0.5).identity() != RunConfig(data="x").identity()


def test_negative_shift_is_refused_on_the_command_line(tmp_path, capsys):
    from FCDDetectLib.cli import main

    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--depth", "18",
                 "--pretrained", "none", "--modality", "flair", "--shift", "-4"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shift -4.0" in err[0]
    assert not (tmp_path / "run").exists()


def test_shift_and_flip_reach_the_config_and_its_identity():
    from FCDDetectLib.cli import build_parser
    from FCDTrainLib.cli.train_command import config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--depth", "18", "--pretrained", "none",
                                      "--modality", "flair", "--shift", "8", "--flip"])
    config = config_from_args(args)
    assert (config.shift_mm, config.flip) == (8.0, True)
    assert config.identity() != RunConfig(data="d").identity()
    assert RunConfig.from_dict({"data": "d"}).flip is False  # runs written before the option keep the paper's protocol
