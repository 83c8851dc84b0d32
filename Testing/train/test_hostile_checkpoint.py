"""Issue 9, items 1 and 8: a run folder is untrusted; a damaged checkpoint does not block a run.

- A killed run's ``fold-K/checkpoint.pt`` replaced by a pickle whose ``__reduce__`` touches a
  marker file: resuming refuses it with one ``error:`` line naming it; the marker never appears.
- A truncated checkpoint is discarded with a ``warning:`` and the fold restarts from epoch 1
  (our choice: epochs are seeded by (seed, fold, epoch), so the result is the same).
- Checkpoints keep the RNG states as tensors and plain values, so ``weights_only=True`` reads them.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.training.checkpoint import load_checkpoint, restore_rng, rng_states, save_checkpoint

from Testing.builders.hostile_fixtures import one_error_line, plant_pickle, run_fcd
from Testing.builders.train_fixtures import train_args, write_cohort


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    np.random.seed(5)
    random.seed(5)
    torch.manual_seed(5)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "checkpoint.pt", {"model": {}, "optimizer": {}, "scheduler": {}, "state": {},
                                                 "rng": rng_states()})
    want = (np.random.random(), random.random(), float(torch.rand(1)))
    checkpoint = load_checkpoint(tmp_path, 0, warn=pytest.fail)
    restore_rng(checkpoint["rng"])
    assert (np.random.random(), random.random(), float(torch.rand(1))) == want


def test_planted_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = plant_pickle(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(FCDInputError) as info:
        load_checkpoint(tmp_path, 0, warn=pytest.fail)
    assert str(path) in str(info.value) and "weights_only" not in str(info.value)
    assert path.exists() and not marker.exists()  # left for the user to inspect


def test_truncated_checkpoint_is_discarded_with_a_warning(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "optimizer": {}, "scheduler": {}, "state": {},
                           "rng": rng_states()})
    path.write_bytes(path.read_bytes()[:500])
    warnings = []
    assert load_checkpoint(tmp_path, 3, warn=warnings.append) is None
    assert len(warnings) == 1 and str(path) in warnings[0] and "fold 3 restarts from epoch 1" in warnings[0]
    assert not path.exists()


@pytest.mark.slow  # trains a real (tiny) network for one epoch
def test_fcd_train_resume_refuses_a_planted_checkpoint(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n_fcd=4, n_hc=4)
    out = tmp_path / "run"
    first = run_fcd(train_args(cohort, out, "--fold", "0", "--widen-factor", "0.25", epochs=1), timeout=600)
    assert first.returncode == 0, first.stderr
    marker = tmp_path / "PWNED"
    (out / "fold-1").mkdir()
    planted = plant_pickle(out / "fold-1" / "checkpoint.pt", marker)  # as if fold 1 had been killed
    done = run_fcd(train_args(cohort, out, "--fold", "1", "--widen-factor", "0.25", epochs=1), timeout=600)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert str(planted) in line and "weights_only" not in line
    assert not marker.exists()
