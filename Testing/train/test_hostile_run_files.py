"""Issue 25, trainer: a damaged run file is one ``error:`` line naming it, exit 2, nothing changed.

A run folder is untrusted (a shared disk, a colleague's copy). Each of its files is damaged
the ways the issue found tracebacks: ``config.json`` (not JSON, wrong types, nested, huge),
the lock, ``folds.json``, a cache ``.npy`` (truncated, wrong shape, NaN/Inf: refused *before*
an epoch starts), cache statistics, ``metrics.json``, a ``bundle.json`` read by ``fcd
evaluate`` (nested, huge: bounded by the engine's reader), and seeds out of range.
Bounds: ``config.json`` 1 MiB, other run JSON 64 MiB, a lock 64 kB, an event line 1 MiB
(ours are about 1 kB, 150 bytes per subject, 100 bytes and 4 kB).

The run folders are made without training (:mod:`Testing.builders.run_folders`), so every
case runs in well under a second after the imports.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.run_folder.event_log import EventLog, progress_from_events, read_events
from FCDTrainLib.run_folder.layout import RunLayout
from FCDTrainLib.run_folder.run_files import MAX_CONFIG_BYTES
from FCDTrainLib.run_folder.run_lock import MAX_LOCK_BYTES

from Testing.builders.run_folders import prepared_run, with_tiny_bundles
from Testing.builders.train_fixtures import write_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort") / "cohort", n_fcd=4, n_hc=4)


@pytest.fixture()
def run(cohort, tmp_path) -> tuple[Path, list[str]]:
    """A prepared run (config, folds, dataset record) with tiny fold bundles, and its train argv."""
    out = tmp_path / "run"
    argv = prepared_run(cohort, out)
    with_tiny_bundles(out)
    return out, argv


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"dir" for p in sorted(folder.rglob("*"))}


def _refused(capsys, argv: list[str], named: Path) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert str(named) in lines[0], lines[0]
    return lines[0]


def _evaluate(out: Path) -> list[str]:
    return ["evaluate", "--run", str(out), "--device", "cpu"]


DAMAGED_CONFIGS = {
    "not JSON": lambda text: text[: len(text) // 2],
    "a list": lambda text: "[1, 2, 3]",
    "folds a string": lambda text: json.dumps({**json.loads(text), "folds": "five"}),
    "spacing of strings": lambda text: json.dumps({**json.loads(text), "spacing": ["a", "b", "c"]}),
    "seed 1.5": lambda text: json.dumps({**json.loads(text), "seed": 1.5}),
    "seed 2**32": lambda text: json.dumps({**json.loads(text), "seed": 2**32}),
    "depth 19": lambda text: json.dumps({**json.loads(text), "depth": 19}),
    "no data": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "data"}),
    "nested 100000 deep": lambda text: "[" * 100_000 + "]" * 100_000,
    "huge": lambda text: text[:-1] + ', "pad": "' + "x" * MAX_CONFIG_BYTES + '"}',
    "not UTF-8": lambda text: text.replace('"flair"', '"fl\udcffair"'),
}


@pytest.mark.parametrize("damage", list(DAMAGED_CONFIGS))
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_damaged_config_is_one_error_line_and_changes_nothing(run, capsys, damage, command):
    out, argv = run
    path = RunLayout(out).config
    text = DAMAGED_CONFIGS[damage](path.read_text(encoding="utf-8"))
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = _listing(out)
    line = _refused(capsys, argv if command == "train" else _evaluate(out), path)
    assert "damaged run configuration" in line
    assert _listing(out) == before


LOCKS = {
    "pid a string": json.dumps({"pid": "abc", "host": socket.gethostname(), "started": 1.0}),
    "pid -1": json.dumps({"pid": -1, "host": socket.gethostname(), "started": 1.0}),
    "a list": "[1]",
    "nested": "[" * 50_000 + "]" * 50_000,
    "huge": json.dumps({"pid": 1, "host": "x" * MAX_LOCK_BYTES, "started": 1.0}),
}


@pytest.mark.parametrize("damage", [*LOCKS, "lock folder is a file", "lock is a folder"])
def test_damaged_lock_is_one_error_line(run, capsys, damage):
    out, argv = run
    lock_dir = out / ".lock"
    if damage == "lock folder is a file":
        lock_dir.write_text("x")
        named = lock_dir
    else:
        lock_dir.mkdir()
        named = lock_dir / "run.lock"
        if damage == "lock is a folder":
            named.mkdir()
        else:
            named.write_text(LOCKS[damage])
    before = _listing(out)
    line = _refused(capsys, argv, named)
    assert "delete it" in line
    assert _listing(out) == before


def test_lock_cut_short_by_a_kill_is_still_taken_over_once_old(run, capsys):
    out, argv = run
    (out / ".lock").mkdir()
    lock = out / ".lock" / "run.lock"
    lock.write_text('{"pid": 12')  # a kill during the write: garbled, not damaged
    os.utime(lock, (1.0, 1.0))
    argv = [*argv[: argv.index("--shape")], "--shape", "4000", "4000", "4000", "--no-progress"]
    assert main(argv) == 2  # past the lock: refused by the option check, not by the lock
    assert "--shape" in capsys.readouterr().err


FOLDS = {
    "list of ints": lambda folds: [1, 2],
    "one fold missing": lambda folds: folds[:1],
    "fold numbers swapped": lambda folds: [{**folds[0], "fold": 1}, {**folds[1], "fold": 0}],
    "ids not strings": lambda folds: [{**f, "test": [1, 2]} for f in folds],
    "extra key": lambda folds: [{**f, "path": "../x"} for f in folds],
    "nested": None,
}


@pytest.mark.parametrize("damage", list(FOLDS))
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_damaged_folds_json_is_one_error_line(run, capsys, damage, command):
    out, argv = run
    path = RunLayout(out).folds
    if FOLDS[damage] is None:
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.write_text(json.dumps(FOLDS[damage](json.loads(path.read_text(encoding="utf-8")))))
    before = _listing(out)
    line = _refused(capsys, argv if command == "train" else _evaluate(out), path)
    assert "damaged fold splits" in line
    assert _listing(out) == before


@pytest.mark.parametrize("damage", ["nested", "huge"])
def test_damaged_bundle_json_read_by_evaluate_is_one_error_line(run, capsys, damage):
    """``bundle.json`` is read by the engine's bounded reader (16 MiB, no deep nesting)."""
    out, _ = run
    path = RunLayout(out).bundle(1) / "bundle.json"
    if damage == "nested":
        path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    else:
        meta = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**meta, "pad": "x" * (17 << 20)}))
    _refused(capsys, _evaluate(out), path)


def _cache_entry(out: Path, cohort: Path) -> Path:
    """Build the run's cache (preprocessing the tiny cohort) and return one subject's entry."""
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.run_folder.run_config import load_config
    from FCDTrainLib.training.input_cache import VolumeCache

    config = load_config(out)
    cache = VolumeCache(RunLayout(out).cache, config.spacing, config.shape, config.modalities)
    subjects = load_dataset(cohort).subjects
    cache.build(subjects)
    return cache.path_for(subjects[0])


CACHE_DAMAGE = {
    "NaN": lambda a: np.full_like(a, np.nan),
    "Inf": lambda a: np.where(a > a.mean(), np.inf, a).astype(np.float32),
    "wrong shape": lambda a: a[:, :5],
    "float64": lambda a: a.astype(np.float64),
    "truncated": None,
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_damaged_cache_entry_stops_training_before_its_first_epoch(run, cohort, capsys, damage):
    out, argv = run
    entry = _cache_entry(out, cohort)
    if CACHE_DAMAGE[damage] is None:
        entry.write_bytes(entry.read_bytes()[:-100])
    else:
        np.save(entry, CACHE_DAMAGE[damage](np.load(entry)))
    line = _refused(capsys, argv, entry)
    assert "damaged cache entry" in line and "delete it" in line
    events = read_events(RunLayout(out).events)
    assert not [e for e in events if e["event"] == "epoch"]  # no epoch was trained
    assert not list(out.glob("fold-*/*.pt"))  # no checkpoint, no best weights
    entry.unlink()  # the fix the message gives: the entry is rebuilt from the images
    assert _cache_entry(out, cohort).is_file()


def test_damaged_cache_statistics_name_the_file(run, cohort):
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.run_folder.run_config import load_config
    from FCDTrainLib.training.input_cache import VolumeCache

    out, _ = run
    entry = _cache_entry(out, cohort)
    stats = entry.with_suffix(".stats.json")
    stats.write_text('{"voxel_mm_min": "four"}')
    config = load_config(out)
    cache = VolumeCache(RunLayout(out).cache, config.spacing, config.shape, config.modalities)
    with pytest.raises(FCDInputError, match=str(stats)):
        cache.statistics(load_dataset(cohort).subjects[0])


def test_damaged_fold_metrics_name_the_file(run):
    from FCDTrainLib.experiment.train_run import summarise_run

    out, _ = run
    for fold in (0, 1):
        RunLayout(out).metrics(fold).write_text('{"accuracy": 1.0}')
    RunLayout(out).metrics(1).write_text("[" * 100_000)
    with pytest.raises(FCDInputError, match="metrics.json: damaged fold metrics"):
        summarise_run(out, 2)


def test_ill_formed_events_are_skipped_and_repaired(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.emit("start", folds=[0, 1], max_epochs=2)
    good = path.read_bytes()
    path.write_bytes(good + b'{"event": "epoch", "fold": "x", "epoch": 1}\n' + b"[" * 100_000 + b"\n"
                     + b'{"event": "epoch", "fold": 0, "epoch": 1, "pad": "' + b"x" * (2 << 20) + b'"}\n'
                     + b"\xff\xfe not text\n")
    log.emit("epoch", fold=0, epoch=1, train_loss=0.5, val_loss=0.5, seconds=1.0)
    events = read_events(path)
    assert [e["event"] for e in events] == ["start", "epoch"]
    assert progress_from_events(events)["epoch"] == 1
    EventLog(path)  # opening repairs: only the well-formed events stay
    assert path.read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("failure, line_stays", [(KeyboardInterrupt(), True), (OSError(28, "No space left"), False)])
def test_an_interrupt_during_fsync_keeps_the_whole_line(tmp_path, monkeypatch, failure, line_stays):
    """The Slicer panel's Stop comes right after it read an epoch line, often while the trainer
    still fsyncs it: the whole line must stay (a Ctrl-C/SIGTERM there once took it back, and the
    panel's progress fell to 0). A disk that refuses the fsync still takes the line back. The
    interrupt is raised from os.fsync itself: a real signal cannot be timed into that call."""
    import FCDTrainLib.run_folder.event_log as event_log

    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.emit("start", folds=[0], max_epochs=2)
    real_fsync = os.fsync

    def interrupted(fd):
        monkeypatch.setattr(event_log.os, "fsync", real_fsync)
        raise failure

    monkeypatch.setattr(event_log.os, "fsync", interrupted)
    with pytest.raises(type(failure)):
        log.emit("epoch", fold=0, epoch=1, train_loss=0.5, val_loss=0.5, seconds=1.0)
    assert [e["event"] for e in read_events(path)] == (["start", "epoch"] if line_stays else ["start"])
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("argv", [
    ["train", "--data", "absent", "--out", "OUT", "--seed", "-1"],
    ["train", "--data", "absent", "--out", "OUT", "--seed", str(2**32)],
    ["train", "--data", "absent", "--out", "OUT", "--seed", "1.5"],
    ["synth", "--out", "OUT", "--subjects", "2", "--size", "tiny", "--quiet", "--seed", "-1"],
    ["synth", "--out", "OUT", "--subjects", "2", "--size", "tiny", "--quiet", "--seed", str(2**32)],
    ["demo", "--out", "OUT", "--seed", "-3"],
])
def test_seeds_out_of_range_are_one_error_line_and_write_nothing(tmp_path, capsys, argv):
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses a non-integer itself, with the same one line
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--seed" in lines[0], err
    assert not out.exists()
