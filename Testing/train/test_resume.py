"""Kill ``fcd train`` with SIGKILL mid-epoch, run it again: same results as never interrupted.

The uninterrupted reference is the shared 2-fold run (same data, options and seed, run
in a subprocess with the same thread count, on ``fcd synth`` data); here fold 0 of the same configuration is
trained with ``--fold 0``, killed after its first committed epoch, and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from FCDTrainLib.run_folder.event_log import read_events

from Testing.builders.train_fixtures import cli_command, cli_env, shared_run, shared_train_args

pytestmark = pytest.mark.slow  # trains a real network

HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "best_epoch", "best_val_loss")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory.getbasetemp() / "shared-train")


def _epoch_events(path, fold):
    return [e["epoch"] for e in read_events(path) if e["event"] == "epoch" and e["fold"] == fold]


def test_resume_after_sigkill_gives_identical_metrics_and_weights(run, tmp_path):
    cohort, reference = run
    out = tmp_path / "run"
    command = cli_command(shared_train_args(cohort, out, "--fold", "0"))
    process = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    while not _epoch_events(out / "events.jsonl", 0):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    time.sleep(0.2)  # the checkpoint of epoch 1 is committed; epoch 2 is under way
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    fold = out / "fold-0"
    assert (fold / "checkpoint.pt").exists() and not (fold / "metrics.json").exists()
    assert torch.load(fold / "checkpoint.pt", weights_only=True)["state"]["epoch"] == 1

    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    events = read_events(out / "events.jsonl")
    assert _epoch_events(out / "events.jsonl", 0) == [1, 2]  # each epoch once
    assert any(e["event"] == "resume" and e["epoch"] == 1 for e in events)
    assert [e["event"] for e in events].count("start") == 2

    ref = reference / "fold-0"
    got, want = (json.loads((d / "metrics.json").read_text(encoding="utf-8")) for d in (fold, ref))
    for key in ("accuracy", "roc_auc", "heat_score", "best_epoch", "best_val_loss", "epochs_run"):
        assert got[key] == want[key], key
    assert (fold / "predictions.csv").read_text(encoding="utf-8") == (ref / "predictions.csv").read_text(encoding="utf-8")
    got_history, want_history = (json.loads((d / "history.json").read_text(encoding="utf-8")) for d in (fold, ref))
    assert [{k: h[k] for k in HISTORY_KEYS} for h in got_history] == \
        [{k: h[k] for k in HISTORY_KEYS} for h in want_history]
    got_weights, want_weights = (torch.load(d / "model.fcdbundle" / "weights.pt", weights_only=True)
                                 for d in (fold, ref))
    assert got_weights.keys() == want_weights.keys()
    for name in want_weights:
        assert torch.equal(got_weights[name], want_weights[name]), name
    assert not (out / "fold-1").exists() and not (out / "summary.json").exists()  # --fold 0 only
    assert os.listdir(fold) and not list(fold.glob("*.tmp"))
