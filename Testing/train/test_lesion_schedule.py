"""The lesion trainer's schedule (nnU-Net's poly decay) and patch sampling; the paper's trainer unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from FCDDetectLib.choices import LESION_SCHEDULES
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig, check_same_run, write_config
from FCDTrainLib.training.fold_data import FoldData
from FCDTrainLib.training.lesion_trainer import LesionTrainer
from FCDTrainLib.training.patches import PatchSampler
from FCDTrainLib.training.schedules import SCHEDULES, PlateauSchedule, PolySchedule
from FCDTrainLib.training.trainer import Trainer

from Testing.builders.lesion_blobs import blob_fold_data, blob_lesion_config, planted_blobs


def _config(**kw) -> RunConfig:
    return blob_lesion_config(**{"early_stop_patience": 1, **kw})


def _data(seed: int) -> FoldData:
    return blob_fold_data(seed, n_train=8, n_val=4)


def test_every_schedule_choice_has_a_factory():
    assert set(SCHEDULES) == set(LESION_SCHEDULES)
    assert RunConfig(data="x").lesion_schedule == "poly"


def test_the_paper_protocol_keeps_its_plateau_scheduler_whatever_the_lesion_schedule(tmp_path):
    data = _data(0)
    for schedule in LESION_SCHEDULES:
        trainer = Trainer(_config(supervision="none", lesion_schedule=schedule), 0, data, tmp_path / schedule,
                          EventLog(tmp_path / "e.jsonl"), progress=False)
        trainer._setup()
        assert isinstance(trainer.scheduler, PlateauSchedule)
    lesion = LesionTrainer(_config(), 0, data, tmp_path / "l", EventLog(tmp_path / "l.jsonl"), progress=False)
    lesion._setup()
    assert isinstance(lesion.scheduler, PolySchedule)


@pytest.mark.slow
def test_poly_schedule_runs_every_epoch_and_keeps_the_last_weights(tmp_path):
    # early_stop_patience 1 would stop a plateau run at the first epoch without a lower
    # validation loss; the poly schedule runs all epochs, decays the rate as nnU-Net does and
    # returns the last epoch's weights.
    config = _config(max_epochs=4, early_stop_patience=1)
    trainer = LesionTrainer(config, 0, _data(3), tmp_path / "fold-0", EventLog(tmp_path / "e.jsonl"), progress=False)
    outcome = trainer.fit()
    assert outcome.epochs_run == 4 and not outcome.stopped_early and outcome.best_epoch == 4
    # validated: the first, every fifth and the last epoch (nothing reads it but the history)
    assert [h["epoch"] for h in outcome.history if h["val_lesion_loss"] is not None] == [1, 4]
    assert set(outcome.history[1]) == set(outcome.history[0])  # the same keys, None where not validated
    rates = [h["lr"] for h in outcome.history]
    assert rates == pytest.approx([3e-3 * (1 - e / 4) ** 0.9 for e in range(4)])
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(outcome.best_state[name].to(value.device), value), name


def test_patches_hold_lesion_in_the_asked_share():
    # 64 volumes, half of them patients with a blob; 16^3 patches of 20^3 volumes would hold
    # the blob anyway most of the time, so a small patch (6^3) shows the oversampling.
    x, y, roi = planted_blobs(64, 5, shape=(20, 20, 20), radius=2.0)
    known = torch.ones(64, dtype=torch.bool)
    sampler = PatchSampler([6, 6, 6], 0.33, roi, known)
    assert sampler.centre_probability == pytest.approx(0.66)
    generator = torch.Generator().manual_seed(0)
    shares = []
    for _ in range(20):
        batch = sampler.crop({"x": x, "y": y, "roi": roi, "roi_known": known}, generator)
        assert tuple(batch["x"].shape) == (64, 1, 6, 6, 6)
        assert torch.equal(batch["y"], (batch["roi"] >= 0.5).flatten(1).any(1).long())
        shares.append(float(batch["y"].float().mean()))
    share = sum(shares) / len(shares)
    assert 0.30 <= share <= 0.45, share  # 0.33 centred on a lesion, plus random patches that touch one
    assert not bool(batch["roi"][y == 0].any())  # controls never hold lesion


def test_a_patient_without_roi_keeps_its_label_and_a_patch_is_at_most_the_volume():
    x, y, roi = planted_blobs(4, 1, shape=(12, 12, 12))
    known = torch.tensor([True, False, True, True])
    sampler = PatchSampler([32, 32, 32], 1.0, roi, known)
    batch = sampler.crop({"x": x, "y": y, "roi": roi, "roi_known": known}, torch.Generator().manual_seed(0))
    assert tuple(batch["x"].shape) == (4, 1, 12, 12, 12)
    assert batch["y"].tolist() == y.tolist()


@pytest.mark.slow
def test_patch_training_resumes_bit_exact(tmp_path):
    class Interrupted(Exception):
        pass

    class StopAfterFirst(LesionTrainer):
        def save_checkpoint(self, payload):
            super().save_checkpoint(payload)
            raise Interrupted

    config = _config(max_epochs=2, patch=[12, 12, 12], rotation_degrees=10.0)
    straight = LesionTrainer(config, 0, _data(4), tmp_path / "a", EventLog(tmp_path / "a.jsonl"), progress=False).fit()
    with pytest.raises(Interrupted):
        StopAfterFirst(config, 0, _data(4), tmp_path / "b", EventLog(tmp_path / "b.jsonl"), progress=False).fit()
    resumed = LesionTrainer(config, 0, _data(4), tmp_path / "b", EventLog(tmp_path / "b.jsonl"), progress=False).fit()
    keys = ("epoch", "train_loss", "train_lesion_loss", "val_loss", "val_dice", "lr", "next_lr")
    assert [{k: h[k] for k in keys} for h in resumed.history] == [{k: h[k] for k in keys} for h in straight.history]
    for name, value in straight.best_state.items():
        assert torch.equal(resumed.best_state[name], value), name


def test_an_old_lesion_run_resumes_with_the_plateau_schedule_it_trained_with(tmp_path):
    old = _config(lesion_schedule="plateau").to_dict()
    for name in ("lesion_schedule", "patch", "foreground_fraction", "operating_fp_per_control"):
        old.pop(name)
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = RunConfig.from_dict(json.loads((tmp_path / "config.json").read_text(encoding="utf-8")))
    assert loaded.lesion_schedule == "plateau" and loaded.patch is None and loaded.operating_fp_per_control is None
    assert check_same_run(tmp_path, loaded)
    new = tmp_path / "new"
    write_config(new, _config(patch=[16, 16, 16]))
    assert RunConfig.from_dict(json.loads((new / "config.json").read_text(encoding="utf-8"))).patch == [16, 16, 16]


def test_patch_and_schedule_options_on_the_command_line():
    import argparse

    from FCDTrainLib.cli.config_options import add_config_options, config_from_args

    parser = argparse.ArgumentParser()
    add_config_options(parser)
    config = config_from_args(parser.parse_args(["--data", "d", "--patch", "32", "32", "24", "--lesion-schedule",
                                                 "plateau", "--foreground-fraction", "0.5"]))
    assert config.patch == [32, 32, 24] and config.lesion_schedule == "plateau" and config.foreground_fraction == 0.5
    assert config_from_args(parser.parse_args(["--data", "d"])).patch is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--lesion-schedule", "cosine"])
    from FCDDetectLib.errors import FCDInputError

    with pytest.raises(FCDInputError, match="--patch 4"):
        config_from_args(parser.parse_args(["--data", "d", "--patch", "4", "32", "32"])).validate()
