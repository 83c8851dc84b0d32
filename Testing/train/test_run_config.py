"""RunConfig: the single source of training defaults (CLI options, presets, old config.json), width and checks."""

from __future__ import annotations

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.fold_model import build_model


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
    from FCDTrainLib.cli.config_options import config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--depth", "18", "--pretrained", "none",
                                      "--modality", "flair", "--shift", "8", "--flip"])
    config = config_from_args(args)
    assert (config.shift_mm, config.flip) == (8.0, True)
    assert config.identity() != RunConfig(data="d").identity()
    assert RunConfig.from_dict({"data": "d"}).flip is False  # runs written before the option keep the paper's protocol


def _train_parser():
    from FCDDetectLib.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices  # argparse keeps sub-commands here


def test_options_and_help_come_from_the_config_fields():
    import argparse
    from dataclasses import fields

    from FCDTrainLib.cli.config_options import SINGLE_RUN_FIELDS
    from FCDTrainLib.run_folder.run_config import flag_of

    sub = _train_parser()
    train = {a.dest: a for a in sub["train"]._actions}
    experiment = sub["experiment"].get_default("config_fields")
    defaults = RunConfig.defaults()
    for f in fields(RunConfig):
        if not f.metadata.get("cli", True):
            assert f.name not in train
            continue
        action = train[f.name]
        assert flag_of(f) in action.option_strings
        if f.name in defaults:  # left out, an option sets nothing: RunConfig (or the --preset) has the default
            assert action.default is argparse.SUPPRESS
            assert "(default: " in action.help
        assert (f.name in experiment) == (f.name not in SINGLE_RUN_FIELDS)
    assert "(default: 0.001)" in train["lr"].help  # the real default, not a copy
    assert train["rotation_degrees"].option_strings == ["--rotation"]


def test_an_old_config_json_still_loads_and_matches():
    """config.json of runs written before the unused fields were removed."""
    old = {"data": "cohort", "depth": 18, "pretrained": "none", "weights": None, "weights_sha256": None,
           "geometry": "paper", "modality": "flair", "folds": 5, "seed": 0, "max_epochs": 100, "lr": 0.001,
           "batch_size": 4, "patience": 5, "lr_factor": 0.1, "early_stop_patience": 10,
           "spacing": [2.0, 2.0, 2.0], "shape": [96, 112, 96], "val_fraction": 0.2, "stratify_protocol": False,
           "protocol": None, "use_split": False, "finetune_all": False, "rotation_degrees": 15.0,
           "explain_method": "gradcam", "optimizer": "adam", "loss": "cross-entropy",
           "scheduler": "ReduceLROnPlateau(val_loss)", "early_stopping": "val_loss",
           "normalisation": "zscore-head", "device": "auto", "workers": 0}
    config = RunConfig.from_dict(old)
    assert config == RunConfig(data="cohort")
    assert config.identity() == RunConfig(data="cohort").identity()


def test_check_same_run_accepts_an_old_folder(tmp_path):
    import json

    from FCDTrainLib.run_folder.run_config import RETIRED_FIELDS, check_same_run

    old = {**RunConfig(data="cohort").to_dict(), **{name: "x" for name in RETIRED_FIELDS}}
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert check_same_run(tmp_path, RunConfig(data="cohort")) is True


def test_bounds_and_choices_from_the_field_metadata():
    from FCDTrainLib.run_folder.run_config import check_overrides

    with pytest.raises(FCDInputError, match="--folds 1: must be at least 2"):
        RunConfig(data="x", folds=1).validate()
    with pytest.raises(FCDInputError, match="--lr 0.0: must be greater than 0"):
        RunConfig(data="x", lr=0.0).validate()
    with pytest.raises(FCDInputError, match="--method saliency: expected one of gradcam"):
        RunConfig(data="x", explain_method="saliency").validate()
    with pytest.raises(FCDInputError, match="not a training option"):
        check_overrides({"optimizer": "sgd"})


def test_demo_is_a_preset_and_overrides_round_trip():
    from FCDTrainLib.cli.config_options import config_arguments, config_from_args
    from FCDTrainLib.experiment.demo import DemoOptions
    from FCDTrainLib.run_folder.run_config import PRESETS

    demo = RunConfig.preset("demo", data="cohort")
    assert demo == DemoOptions().run_config("cohort")
    assert {k: getattr(demo, k) for k in PRESETS["demo"]} == PRESETS["demo"]
    overrides = {"folds": 3, "flip": True, "spacing": [3.0, 3.0, 3.0], "explain_method": "gradcam++"}
    args = _train_parser()["train"].parse_args(["--data", "d", "--out", "o", *config_arguments(overrides)])
    config = config_from_args(args)
    assert {k: getattr(config, k) for k in overrides} == overrides


def test_the_lesion_preset_is_the_benchmarks_recipe_and_the_command_line_overrides_it():
    """``fcd train --preset lesion``: the values of PRESETS["lesion"], each option given overrides one,
    ``--no-flip`` turns its flips off, and without a preset nothing changes."""
    from FCDTrainLib.cli.config_options import config_from_args
    from FCDTrainLib.run_folder.run_config import PRESETS

    parse = _train_parser()["train"].parse_args
    lesion = config_from_args(parse(["--data", "d", "--out", "o", "--preset", "lesion"]))
    lesion.validate()
    assert {k: getattr(lesion, k) for k in PRESETS["lesion"]} == PRESETS["lesion"]
    assert (lesion.supervision, lesion.patch, lesion.max_epochs, lesion.flip) == ("lesion", [48, 48, 48], 300, True)
    assert lesion.shape == RunConfig(data="d").shape  # the grid's shape stays the default
    changed = config_from_args(parse(["--data", "d", "--out", "o", "--preset", "lesion", "--max-epochs", "20",
                                      "--lr", "0.001", "--no-flip", "--patch", "32", "32", "32"]))
    assert (changed.max_epochs, changed.lr, changed.flip, changed.patch) == (20, 0.001, False, [32, 32, 32])
    assert changed.spacing == [2.0, 2.0, 2.0]  # what was not given stays the preset's
    plain = config_from_args(parse(["--data", "d", "--out", "o"]))
    assert plain == RunConfig(data="d")
    assert config_from_args(parse(["--data", "d", "--out", "o", "--lr", "0.001"])).lr == 0.001  # = the default
    with pytest.raises(SystemExit):
        parse(["--data", "d", "--out", "o", "--preset", "fast"])


def test_fcd_train_refuses_an_unknown_preset_in_one_line(capsys):
    from FCDDetectLib.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data", "d", "--out", "o", "--preset", "fast"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--preset" in err[-1] and "fast" in err[-1]


def test_an_experiment_with_the_lesion_preset_trains_lesion_models_unless_told_otherwise():
    from FCDTrainLib.cli.config_options import config_from_args
    from FCDTrainLib.cli.experiment_command import supervisions_of

    parse = _train_parser()["experiment"].parse_args
    args = parse(["--data", "d", "--out", "o", "--preset", "lesion"])
    assert supervisions_of(args, config_from_args(args)) == ["lesion"]
    args = parse(["--data", "d", "--out", "o", "--preset", "lesion", "--supervision", "none", "lesion", "none"])
    assert supervisions_of(args, config_from_args(args)) == ["none", "lesion"]
    args = parse(["--data", "d", "--out", "o"])
    assert supervisions_of(args, config_from_args(args)) == ["none"]  # the paper's protocol, as before
