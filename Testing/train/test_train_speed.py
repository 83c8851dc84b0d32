"""The training loop's speed changes keep its figures: device-side loss sums, CPU determinism flags.

No timings are asserted here (speed is measured by ``benchmarks/bench_train_pipeline.py``).
"""

from __future__ import annotations

import torch
from FCDTrainLib.experiment.train_run import deterministic_cpu
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.fold_data import FoldData
from FCDTrainLib.training.trainer import Trainer


def test_deterministic_cpu_keeps_deterministic_kernels_without_filling_new_memory():
    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    try:
        deterministic_cpu()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = before[1]


class _RecordingTrainer(Trainer):
    """Records each step's loss as the float the loop used to add up."""

    def step(self, batch):
        loss, parts = super().step(batch)
        assert isinstance(loss, torch.Tensor) and not loss.requires_grad and loss.dim() == 0
        self.step_losses.append((float(loss), int(batch["y"].numel())))
        return loss, parts


def test_epoch_loss_summed_on_the_device_equals_the_python_float_sum(tmp_path):
    # 6 volumes in batches of 4 (a partial last batch): the epoch's train_loss must be exactly
    # what summing float(loss) * batch size in Python gives (the loop before the sums moved to
    # the device); the same float64 operations in the same order, so equality is exact.
    shape = [16, 16, 16]
    generator = torch.Generator().manual_seed(0)
    data = FoldData(torch.randn(6, 1, *shape, generator=generator), torch.tensor([0, 1, 0, 1, 1, 0]),
                    torch.randn(2, 1, *shape, generator=generator), torch.tensor([0, 1]))
    config = RunConfig(data="unused", depth=18, widen_factor=0.125, spacing=[8.0] * 3, shape=shape,
                       batch_size=4, max_epochs=1)
    trainer = _RecordingTrainer(config, 0, data, tmp_path / "fold-0", EventLog(tmp_path / "events.jsonl"),
                                progress=False)
    trainer.step_losses = []
    outcome = trainer.fit()
    expected = 0.0
    for loss, size in trainer.step_losses:
        expected += loss * size
    assert [size for _, size in trainer.step_losses] == [4, 2]
    assert outcome.history[0]["train_loss"] == expected / 6
    assert isinstance(outcome.history[0]["train_loss"], float)
