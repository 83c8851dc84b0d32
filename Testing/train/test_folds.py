"""Fold splits, the event log and the rotation augmentation (no training)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.run_folder.event_log import EventLog, progress_from_events, read_events
from FCDTrainLib.training.augment import random_augment, random_rotate
from FCDTrainLib.training.folds import make_folds


def _cohort(n_fcd=15, n_hc=15):
    ids = [f"sub-{i:03d}" for i in range(n_fcd + n_hc)]
    labels = [1] * n_fcd + [0] * n_hc
    return ids, labels


def test_folds_partition_subjects_and_keep_class_balance():
    ids, labels = _cohort()
    label_of = dict(zip(ids, labels, strict=True))
    folds = make_folds(ids, labels, n_folds=5, seed=1, val_fraction=0.2)
    assert len(folds) == 5
    tests = [set(f.test) for f in folds]
    assert sorted(i for t in tests for i in t) == sorted(ids)  # every subject tested exactly once
    for a in range(5):
        for b in range(a + 1, 5):
            assert not tests[a] & tests[b]
    for fold in folds:
        train, val, test = set(fold.train), set(fold.val), set(fold.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(ids)
        assert Counter(label_of[i] for i in test) == {0: 3, 1: 3}
        val_counts = Counter(label_of[i] for i in val)
        assert len(val) == 5 and abs(val_counts[0] - val_counts[1]) == 1  # round(20 % of 24), stratified
        assert len(train) == 19


def test_folds_are_reproducible_and_depend_on_the_seed():
    ids, labels = _cohort()
    first = [f.to_dict() for f in make_folds(ids, labels, 5, seed=7)]
    assert first == [f.to_dict() for f in make_folds(ids, labels, 5, seed=7)]
    assert first != [f.to_dict() for f in make_folds(ids, labels, 5, seed=8)]


def test_protocol_stratification_spreads_each_protocol_over_folds():
    ids, labels = _cohort(20, 20)
    protocols = ["old" if i % 2 == 0 and label == 1 else "new" for i, label in enumerate(labels)]
    folds = make_folds(ids, labels, 5, seed=0, protocols=protocols)
    protocol_of = dict(zip(ids, protocols, strict=True))
    for fold in folds:
        assert Counter(protocol_of[i] for i in fold.test)["old"] == 2  # 10 old patients / 5 folds


def test_fixed_test_split_is_shared_and_validation_parts_partition_the_rest():
    ids, labels = _cohort(12, 10)
    fixed = [label == 1 and i % 4 == 0 for i, label in enumerate(labels)]
    folds = make_folds(ids, labels, 3, seed=0, fixed_test=fixed)
    test = sorted(i for i, f in zip(ids, fixed, strict=True) if f)
    rest = sorted(set(ids) - set(test))
    assert all(f.test == test for f in folds)
    assert sorted(i for f in folds for i in f.val) == rest
    for fold in folds:
        assert sorted(fold.train + fold.val) == rest


def test_fewer_subjects_of_a_class_than_folds_is_refused():
    ids, labels = _cohort(4, 10)
    with pytest.raises(FCDInputError, match="4 fcd subject.*fewer than the 5 folds"):
        make_folds(ids, labels, 5)


def test_duplicate_ids_and_bad_fractions_are_refused():
    with pytest.raises(FCDInputError, match="listed twice"):
        make_folds(["a", "a", "b", "c"], [0, 0, 1, 1], 2)
    ids, labels = _cohort()
    with pytest.raises(FCDInputError, match="--val-fraction"):
        make_folds(ids, labels, 5, val_fraction=1.5)


def test_event_log_repairs_a_cut_line_and_drops_later_epochs(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.emit("start", folds=[0, 1], max_epochs=4)
    for epoch in (1, 2, 3):
        log.emit("epoch", fold=0, epoch=epoch, train_loss=1.0, val_loss=0.5, seconds=2.0)
    with path.open("a") as handle:
        handle.write('{"event": "epoch", "fold": 0, "ep')  # a write cut short by SIGKILL
    assert len(read_events(path)) == 4
    log = EventLog(path)  # reopening repairs the file
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert log.drop_epochs_after(0, 2) == 1
    epochs = [e["epoch"] for e in read_events(path) if e["event"] == "epoch"]
    assert epochs == [1, 2]
    assert log.has_epoch(0, 2) and not log.has_epoch(0, 3)


def test_progress_from_events_counts_epochs_folds_and_eta():
    events = [
        {"event": "start", "folds": [0, 1], "max_epochs": 4},
        {"event": "epoch", "fold": 0, "epoch": 1, "seconds": 2.0, "val_loss": 0.9},
        {"event": "epoch", "fold": 0, "epoch": 2, "seconds": 4.0, "val_loss": 0.8},
    ]
    progress = progress_from_events(events)
    assert progress["status"] == "running"
    assert progress["fraction"] == pytest.approx(2 / 8)
    assert progress["fold"] == 0 and progress["epoch"] == 2
    assert progress["eta_seconds"] == pytest.approx((2 + 4) * 3.0)  # 6 epochs left at 3 s
    assert progress["last"]["val_loss"] == 0.8
    events.append({"event": "fold_done", "fold": 0, "metrics": {"accuracy": 0.75}})
    progress = progress_from_events(events)
    assert progress["fraction"] == pytest.approx(0.5) and progress["folds_done"] == 1
    assert progress["fold_metrics"][0]["accuracy"] == 0.75
    events.append({"event": "error", "message": "boom"})
    assert progress_from_events(events)["status"] == "error"
    assert progress_from_events(events)["message"] == "boom"
    assert progress_from_events([])["status"] == "not started"
    assert json.dumps(progress_from_events(events))  # JSON-ready for the GUI


def test_rotation_is_rigid_in_voxel_space_on_a_non_cubic_volume():
    shape = (24, 32, 20)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    spot = centre + np.array([6.0, -7.0, 3.0])
    volume = np.exp(-((grid - spot) ** 2).sum(-1) / (2 * 1.5**2)).astype(np.float32)
    batch = torch.from_numpy(volume)[None, None]
    rotated = random_rotate(batch, 15.0, torch.Generator().manual_seed(5))[0, 0].numpy()
    assert rotated.shape == shape
    weights = rotated / rotated.sum()
    moved = (grid * weights[..., None]).reshape(-1, 3).sum(0)
    # distance of the spot from the centre is kept (rigid), and the spot did move
    assert np.linalg.norm(moved - centre) == pytest.approx(np.linalg.norm(spot - centre), abs=0.3)
    assert np.linalg.norm(moved - spot) > 0.5
    again = random_rotate(batch, 15.0, torch.Generator().manual_seed(5))
    assert torch.equal(again[0, 0], torch.from_numpy(rotated))
    assert torch.equal(random_rotate(batch, 0.0, torch.Generator()), batch)


def test_flip_mirrors_exactly_along_the_chosen_axis_and_shift_moves_by_the_drawn_voxels():
    shape = (8, 10, 6)
    batch = torch.zeros((16, 1, *shape))
    batch[:, 0, 1, 2, 3] = 1.0
    for axis in (0, 1, 2):
        out = random_augment(batch, torch.Generator().manual_seed(axis), 0.0, flip_axis=axis)
        mirrored = [1, 2, 3]
        mirrored[axis] = shape[axis] - 1 - mirrored[axis]
        kept = [bool(out[i, 0, 1, 2, 3] == 1.0) for i in range(16)]
        flipped = [bool(out[i, 0, mirrored[0], mirrored[1], mirrored[2]] == 1.0) for i in range(16)]
        # every volume is either untouched or exactly mirrored (no interpolation), and both happen
        assert all(k != f for k, f in zip(kept, flipped, strict=True))
        assert 0 < sum(flipped) < 16
        assert torch.allclose(out.sum((1, 2, 3, 4)), torch.ones(16))
    # a whole-voxel shift: the spot lands within +/-2 voxels along X only, mass kept
    smooth = torch.zeros((8, 1, 16, 16, 16))
    smooth[:, 0, 8, 8, 8] = 1.0
    moved = random_augment(smooth, torch.Generator().manual_seed(3), 0.0, (2.0, 0.0, 0.0))
    grid = torch.stack(torch.meshgrid(*[torch.arange(16.0)] * 3, indexing="ij"))
    centres = (moved[:, 0, None] * grid).sum((2, 3, 4)) / moved[:, 0].sum((1, 2, 3))[:, None]
    assert torch.all((centres[:, 0] - 8).abs() <= 2.0 + 1e-5)
    assert torch.allclose(centres[:, 1:], torch.full_like(centres[:, 1:], 8.0), atol=1e-4)
    assert float((centres[:, 0] - 8).abs().max()) > 0.5


def test_rotation_only_augment_draws_exactly_what_random_rotate_draws():
    batch = torch.randn(3, 1, 12, 14, 10)
    rotated = random_rotate(batch, 15.0, torch.Generator().manual_seed(9))
    assert torch.equal(random_augment(batch, torch.Generator().manual_seed(9), 15.0), rotated)
    assert torch.equal(random_augment(batch, torch.Generator(), 0.0), batch)
    with pytest.raises(ValueError, match="flip_axis"):
        random_augment(batch, torch.Generator(), 0.0, flip_axis=3)
