"""Issue 26: fcd train --scanner-augment (new scanner effects on every training volume, every epoch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.fold_data import FoldData
from FCDTrainLib.training.lesion_trainer import LesionTrainer
from FCDTrainLib.training.scanner_augment import scanner_augment

from Testing.builders.lesion_blobs import planted_blobs


def _heads(n: int = 3) -> torch.Tensor:
    """z-scored 'heads' like the cache holds: an ellipsoid with texture, air a constant below it."""
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s) for s in (20, 24, 20)], indexing="ij"))
    inside = (grid ** 2).sum(0) < 0.7
    rng = np.random.default_rng(0)
    volumes = []
    for _ in range(n):
        texture = torch.from_numpy(rng.normal(1.0, 0.3, inside.shape).astype(np.float32))
        volume = torch.where(inside, texture, torch.zeros(()))
        values = volume[inside]
        volumes.append((volume - values.mean()) / values.std())
    return torch.stack(volumes)[:, None], inside


def test_same_generator_same_volumes_new_intensities_z_scored_in_the_head():
    batch, inside = _heads()
    first = scanner_augment(batch, torch.Generator().manual_seed(4))
    again = scanner_augment(batch, torch.Generator().manual_seed(4))
    other = scanner_augment(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == batch.shape and torch.isfinite(first).all()
    for n in range(batch.shape[0]):
        values = first[n, 0][inside]
        # z-scored in its own head mask (voxels above 10 % of the maximum: nearly all of `inside`)
        assert abs(float(values.mean())) < 0.05 and abs(float(values.std()) - 1.0) < 0.05
        assert float((first[n, 0] - batch[n, 0])[inside].abs().mean()) > 0.02  # intensities did change
        assert float(first[n, 0][~inside].mean()) < float(values.mean()) - 1.0  # air stays far below the head


def _config(tmp_path, augment: bool) -> RunConfig:
    return RunConfig(data=str(tmp_path), supervision="lesion", widen_factor=0.0625, max_epochs=2, batch_size=4,
                     spacing=[4.0, 4.0, 4.0], shape=[20, 20, 20], rotation_degrees=0.0, seed=2,
                     early_stop_patience=2, decoder_width=4, scanner_augment=augment)


def _data() -> FoldData:
    x, y, roi = planted_blobs(8, 1, shape=(20, 20, 20), gain=4.0)
    vx, vy, vroi = planted_blobs(4, 101, shape=(20, 20, 20), gain=4.0)
    return FoldData(x, y, vx, vy, roi, vroi)


class _Stop(Exception):
    pass


class _StopAfterEpochOne(LesionTrainer):
    def save_checkpoint(self, payload):
        super().save_checkpoint(payload)
        raise _Stop


@pytest.mark.slow
def test_augmented_training_differs_and_resumes_bit_exact(tmp_path):
    def fit(folder: str, augment: bool, trainer=LesionTrainer):
        return trainer(_config(tmp_path, augment), 0, _data(), tmp_path / folder, EventLog(tmp_path / f"{folder}.jsonl"),
                       progress=False).fit()

    plain, straight = fit("plain", False), fit("a", True)
    assert plain.history[0]["train_loss"] != straight.history[0]["train_loss"]
    assert plain.history[0]["val_loss"] == pytest.approx(plain.history[0]["val_loss"])  # validation is never augmented
    with pytest.raises(_Stop):
        fit("b", True, _StopAfterEpochOne)
    resumed = fit("b", True)
    keys = ("epoch", "train_loss", "train_lesion_loss", "val_loss", "val_dice")
    assert [{k: h[k] for k in keys} for h in resumed.history] == [{k: h[k] for k in keys} for h in straight.history]
