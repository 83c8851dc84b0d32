"""``fcd train`` end to end on a tiny NIfTI cohort, transfer mode, and every bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.bundle import load_bundle
from FCDTrainLib.run_folder.event_log import progress_from_events, read_events
from FCDTrainLib.run_folder.run_config import RunConfig
from sklearn.metrics import roc_auc_score

from Testing.builders.train_fixtures import (
    TEST_SHAPE,
    TEST_SPACING,
    shared_run,
    shared_train_args,
    train_args,
    write_cohort,
    write_manifest,
)

pytestmark = pytest.mark.slow  # trains a real network


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory.getbasetemp() / "shared-train")


def _predictions(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_two_fold_run_writes_bundles_predictions_and_metrics(run):
    cohort, out = run
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["lr"] == 1e-3 and config["patience"] == 5 and config["lr_factor"] == 0.1
    assert config["rotation_degrees"] == 15.0 and config["depth"] == 18 and config["seed"] == 3
    folds = json.loads((out / "folds.json").read_text(encoding="utf-8"))
    assert sorted(s for f in folds for s in f["test"]) == [f"sub-{i:05d}" for i in range(1, 13)]
    for fold in (0, 1):
        folder = out / f"fold-{fold}"
        assert not (folder / "checkpoint.pt").exists() and not list(folder.glob("best-*.pt"))
        rows = _predictions(folder / "predictions.csv")
        assert [r["subject"] for r in rows] == folds[fold]["test"]
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        labels = np.array([int(r["label"]) for r in rows])
        probs = np.array([float(r["probability"]) for r in rows])
        assert [int(r["prediction"]) for r in rows] == (probs >= 0.5).astype(int).tolist()
        assert metrics["accuracy"] == pytest.approx(np.mean((probs >= 0.5) == labels))
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, probs))
        heats = [float(r["heat_score"]) for r in rows if r["heat_score"]]
        assert all(int(r["label"]) == 1 for r in rows if r["heat_score"])
        if heats:
            assert metrics["heat_score"] == pytest.approx(np.mean(heats))
        assert metrics["heat_score_n"] == len(heats)
        assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] == 2
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["folds"]) == 2


def test_fold_bundles_load_and_detect_reproduces_the_fold_numbers(run):
    from FCDDetectLib.detection.detect import detect

    cohort, out = run
    compared = 0
    for fold in (0, 1):
        bundle = load_bundle(out / f"fold-{fold}" / "model.fcdbundle")
        meta = bundle.metadata
        assert meta.modalities == ["flair"] and meta.target_shape == [int(s) for s in TEST_SHAPE]
        assert meta.training["fold"] == fold and meta.training["pretrained"] == "none"
        assert meta.metrics["accuracy"] == json.loads((out / f"fold-{fold}" / "metrics.json").read_text(encoding="utf-8"))["accuracy"]
        rows = _predictions(out / f"fold-{fold}" / "predictions.csv")
        # two scored patients and one control (probability only) per fold, to keep the test short
        for row in [r for r in rows if r["heat_score"]][:2] + [next(r for r in rows if r["label"] == "0")]:
            anat = cohort / row["subject"] / "anat"
            flair = next(anat.glob("*_FLAIR.nii.gz"))
            roi = next(iter(anat.glob("*_FLAIR_roi.nii.gz")), None)
            roi = roi if row["heat_score"] else None  # no ROI, or a constant heatmap (no score)
            result = detect(out / f"fold-{fold}" / "model.fcdbundle", [flair], roi=roi, device="cpu")
            assert result.probability == pytest.approx(float(row["probability"]), abs=1e-5)
            if row["heat_score"]:
                assert result.heat_score == pytest.approx(float(row["heat_score"]), rel=1e-5)
                compared += 1
    assert compared >= 1  # at least one patient's Heat-Score is defined and matches fcd detect


def test_events_have_each_epoch_once_and_progress_is_complete(run):
    _, out = run
    events = read_events(out / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    epochs = [(e["fold"], e["epoch"]) for e in events if e["event"] == "epoch"]
    assert epochs == [(0, 1), (0, 2), (1, 1), (1, 2)]
    first = next(e for e in events if e["event"] == "epoch")
    for key in ("train_loss", "val_loss", "lr", "eta_seconds", "val_accuracy", "best_epoch"):
        assert key in first
    progress = progress_from_events(events)
    assert progress["status"] == "done" and progress["fraction"] == 1.0 and progress["folds_done"] == 2


def test_rerun_of_a_finished_run_trains_nothing_and_other_options_are_refused(run, capsys):
    cohort, out = run
    before = len(read_events(out / "events.jsonl"))
    assert main(shared_train_args(cohort, out)) == 0
    new = read_events(out / "events.jsonl")[before:]
    assert [e["event"] for e in new] == ["start", "done"]
    config_text = (out / "config.json").read_text(encoding="utf-8")
    assert main(shared_train_args(cohort, out, "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "lr" in err and len(err.strip().splitlines()) == 1
    assert (out / "config.json").read_text(encoding="utf-8") == config_text


def test_transfer_mode_trains_only_layer4_and_fc(tmp_path):
    from FCDDetectLib.networks.medicalnet import save_medicalnet_checkpoint
    from FCDDetectLib.networks.resnets import build_resnet
    from FCDTrainLib.run_folder.event_log import EventLog
    from FCDTrainLib.training.fold_data import FoldData
    from FCDTrainLib.training.fold_model import build_model
    from FCDTrainLib.training.trainer_registry import train_fold

    torch.manual_seed(11)
    weights = tmp_path / "resnet_18.pth"
    save_medicalnet_checkpoint(build_resnet(18, geometry="medicalnet"), weights)
    config = RunConfig(data="none", depth=18, pretrained="medicalnet8", weights=str(weights), max_epochs=1,
                       batch_size=2, shape=[16, 16, 16])
    start, _ = build_model(config, 0)
    start_state = {k: v.clone() for k, v in start.state_dict().items()}
    x = torch.randn(4, 1, 16, 16, 16)
    data = FoldData(x, torch.tensor([0, 1, 0, 1]), x[:2].clone(), torch.tensor([0, 1]))
    outcome = train_fold(config, 0, data, tmp_path / "fold-0", EventLog(tmp_path / "events.jsonl"), progress=False)
    model = torch.load(tmp_path / "fold-0" / "checkpoint.pt", weights_only=True)["model"]
    assert outcome.epochs_run == 1
    for name, value in model.items():
        same = torch.equal(value, start_state[name])
        if name.startswith(("layer4.", "fc.")) and value.dtype.is_floating_point and "running" not in name:
            assert not same, f"{name} should have trained"
        elif not name.startswith(("layer4.", "fc.")):
            assert same, f"{name} is frozen in transfer mode (running statistics included)"


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("bad") / "cohort", n_fcd=5, n_hc=5, seed=1)


def _refused(capsys, args, out, *needles):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists(), "nothing may be written for bad input"


def test_fewer_subjects_of_a_class_than_folds(small_cohort, tmp_path, capsys):
    out = tmp_path / "run"
    _refused(capsys, train_args(small_cohort, out, folds=6), out, str(small_cohort), "5 control subject(s)",
             "fewer than the 6 folds")


def test_weights_with_pretrained_none(small_cohort, tmp_path, capsys):
    weights = tmp_path / "resnet_18.pth"
    weights.write_bytes(b"x")
    out = tmp_path / "run"
    _refused(capsys, train_args(small_cohort, out, "--weights", str(weights)), out,
             str(weights), "--pretrained none")


def test_pretrained_without_weights(small_cohort, tmp_path, capsys):
    out = tmp_path / "run"
    _refused(capsys, train_args(small_cohort, out, "--pretrained", "medicalnet23"), out, "needs --weights")


def test_weights_file_of_another_depth(small_cohort, tmp_path, capsys):
    from FCDDetectLib.networks.medicalnet import save_medicalnet_checkpoint
    from FCDDetectLib.networks.resnets import build_resnet

    weights = tmp_path / "resnet_18.pth"
    save_medicalnet_checkpoint(build_resnet(18), weights)
    out = tmp_path / "run"
    args = train_args(small_cohort, out, "--pretrained", "medicalnet8", "--weights", str(weights))
    args[args.index("--depth") + 1] = "34"
    _refused(capsys, args, out, "resnet_18.pth")


def test_t1_flair_skips_subjects_without_flair_with_a_listed_warning(small_cohort, tmp_path, capsys):
    from FCDTrainLib.experiment.train_run import prepare

    manifest = write_manifest(small_cohort, tmp_path / "cohort.csv", drop_flair=("sub-00002",))
    config = RunConfig(data=str(manifest), modality="t1+flair", folds=2, spacing=[5, 5, 5], shape=[24, 28, 24])
    subjects, warnings, folds = prepare(config, tmp_path / "run")
    assert "sub-00002" not in {s.subject_id for s in subjects} and len(subjects) == 9
    assert any(w.startswith("sub-00002: skipped, no flair image") for w in warnings)
    assert all("sub-00002" not in f.test + f.train + f.val for f in folds)
    # Skipping may leave a class short of folds: then the usual one-line error.
    manifest = write_manifest(small_cohort, tmp_path / "few.csv", drop_flair=("sub-00001", "sub-00002", "sub-00003", "sub-00004"))
    out = tmp_path / "run2"
    args = train_args(manifest, out)
    args[args.index("--modality") + 1] = "t1+flair"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 fcd subject(s), fewer than the 2 folds" in err
    assert not out.exists()


def test_option_errors_are_one_line(small_cohort, tmp_path):
    with pytest.raises(FCDInputError, match="--shape"):
        RunConfig(data=str(small_cohort), shape=[4, 4, 4]).validate()
    with pytest.raises(FCDInputError, match="--max-epochs 0"):
        RunConfig(data=str(small_cohort), max_epochs=0).validate()
    assert TEST_SPACING == ["5", "5", "5"]


def test_use_split_keeps_the_datasets_test_subjects_as_one_fixed_test_set(run, tmp_path):
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.experiment.train_run import prepare

    cohort, _ = run
    marked = sorted(s.subject_id for s in load_dataset(cohort).subjects if s.split == "test")
    assert marked
    config = RunConfig(data=str(cohort), folds=2, use_split=True, spacing=[8, 8, 8], shape=[24, 28, 24])
    subjects, _, folds = prepare(config, tmp_path / "run")
    assert all(f.test == marked for f in folds)
    assert sorted(i for f in folds for i in f.val) == sorted(set(s.subject_id for s in subjects) - set(marked))
    assert not (tmp_path / "run").exists()


def test_cache_preprocesses_once_and_its_key_follows_the_settings(small_cohort, tmp_path):
    import os

    from FCDDetectLib.grid.preprocess import preprocess
    from FCDDetectLib.io.image_io import load_image
    from FCDTrainLib.data.records import Subject
    from FCDTrainLib.training.input_cache import VolumeCache, cache_key

    base = cache_key([5, 5, 5], [24, 28, 24], ["flair"])
    assert base == cache_key([5.0, 5.0, 5.0], (24, 28, 24), ("flair",))
    assert len({base, cache_key([4, 5, 5], [24, 28, 24], ["flair"]), cache_key([5, 5, 5], [24, 28, 32], ["flair"]),
                cache_key([5, 5, 5], [24, 28, 24], ["t1"]), cache_key([5, 5, 5], [24, 28, 24], ["t1", "flair"])}) == 5
    anat = small_cohort / "sub-00001" / "anat"
    subject = Subject("sub-00001", 1, {"flair": next(anat.glob("*_FLAIR.nii.gz")), "t1": next(anat.glob("*_T1w.nii.gz"))})
    cache = VolumeCache(tmp_path / "cache", [5, 5, 5], [24, 28, 24], ["t1", "flair"])
    first = cache.get(subject)
    expected = preprocess([load_image(subject.images["t1"]), load_image(subject.images["flair"])],
                          [5, 5, 5], [24, 28, 24]).tensor.numpy()
    np.testing.assert_array_equal(first, expected)
    assert first.shape == (2, 24, 28, 24) and cache.built == 1
    cache.get(subject)
    assert cache.built == 1  # read back, not recomputed
    path = cache.path_for(subject)
    stat = os.stat(subject.images["flair"])
    os.utime(subject.images["flair"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # source changed
    assert cache.path_for(subject) != path
    cache.get(subject)
    assert cache.built == 2
