"""FCDTrain's logic outside Slicer: command lines, events -> progress, stop/resume of a real run,
the process-tree kill, results as MRML table and plot nodes, the weights cache.

The stop/resume test runs the real ``fcd train`` CLI in a child process on a tiny
ds004199-style cohort (8 subjects, 2 folds, 3 epochs, 24x28x24 model grid).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.tree_process import TreeProcess
from FCDTrainLib.mrml.experiment_nodes import experiment_results_nodes, table_column_names
from FCDTrainLib.run_folder.event_log import EventLog, progress_from_events, read_events
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings, format_event, run_progress
from FCDTrainLib.training import medicalnet_weights as weights_cache

from Testing.builders.train_fixtures import TEST_SHAPE, TEST_SPACING, write_cohort

pytestmark = pytest.mark.slow  # trains a real network


def _column(table_node, name):
    column = table_node.GetTable().GetColumnByName(name)
    return [column.GetValue(i) for i in range(column.GetNumberOfValues())]


def test_command_line_train_and_experiment(tmp_path):
    single = TrainSettings(data=tmp_path, out=tmp_path / "run", depths=[34], pretrained=["medicalnet23"],
                           modalities=["t1+flair"], weights=tmp_path / "w.pth", folds=3, max_epochs=7, fold=1)
    args = single.arguments()
    assert args[0] == "train" and not single.is_experiment
    assert args[args.index("--depth") + 1] == "34" and args[args.index("--pretrained") + 1] == "medicalnet23"
    assert args[args.index("--weights") + 1] == str(tmp_path / "w.pth") and args[args.index("--fold") + 1] == "1"
    assert args[args.index("--max-epochs") + 1] == "7" and args[args.index("--modality") + 1] == "t1+flair"
    grid = TrainSettings(data=tmp_path, out=tmp_path / "exp", depths=[18, 50], pretrained=["none", "medicalnet8"],
                         modalities=["flair"], weights_dir=tmp_path)
    args = grid.arguments()
    assert args[0] == "experiment" and grid.n_runs == 4
    assert args[args.index("--depths") + 1: args.index("--depths") + 3] == ["18", "50"]
    assert args[args.index("--weights-dir") + 1] == str(tmp_path)
    command = TrainLogic("/opt/Slicer/bin/PythonSlicer").command(single)
    assert command[0] == "/opt/Slicer/bin/PythonSlicer" and command[3:] == single.arguments()
    # The command really parses with the fcd CLI (every option exists there).
    from FCDDetectLib.cli import build_parser

    for settings in (single, grid):
        assert build_parser().parse_args(settings.arguments()).command == settings.arguments()[0]


def test_bad_settings_refused_before_starting(tmp_path):
    logic = TrainLogic()
    with pytest.raises(FCDInputError, match="no such folder"):
        logic.start(TrainSettings(data=tmp_path / "missing", out=tmp_path / "run"))
    with pytest.raises(FCDInputError, match="at least one depth"):
        logic.start(TrainSettings(data=tmp_path, out=tmp_path / "run", depths=[]))
    with pytest.raises(FCDInputError, match="weights file .*not found"):
        logic.start(TrainSettings(data=tmp_path, out=tmp_path / "run", pretrained=["medicalnet8"],
                                  weights=tmp_path / "nope.pth"))
    assert logic.process is None


def test_events_to_progress_and_log_lines(tmp_path):
    run = tmp_path / "run"
    log = EventLog(run / "events.jsonl")
    log.emit("start", folds=[0, 1], max_epochs=4)
    log.emit("epoch", fold=0, epoch=1, train_loss=0.9, val_loss=0.8, lr=1e-3, seconds=2.0)
    logic = TrainLogic()
    logic.settings = TrainSettings(data=tmp_path, out=run)
    first = logic.poll()
    assert first.lines == ["start", "fold 0 epoch 1, train_loss 0.9, val_loss 0.8, lr 0.001"]
    assert first.progress["status"] == "running" and first.progress["fraction"] == pytest.approx(1 / 8)
    assert first.progress["eta_seconds"] == pytest.approx(7 * 2.0)
    log.emit("epoch", fold=0, epoch=2, train_loss=0.7, val_loss=0.6, seconds=2.0)
    with (run / "events.jsonl").open("a") as handle:  # a write cut short by a kill
        handle.write('{"event": "epoch", "fold": 0, "ep')
    second = logic.poll()
    assert second.lines == ["fold 0 epoch 2, train_loss 0.7, val_loss 0.6"]  # only what is new and whole
    assert second.progress["fraction"] == pytest.approx(2 / 8)
    assert format_event({"event": "warning", "message": "sub-3 lacks FLAIR"}) == "warning: sub-3 lacks FLAIR"


def test_experiment_progress_counts_runs_not_started(tmp_path):
    for name, done in (("r18-none-flair", True), ("r34-none-flair", False)):
        log = EventLog(tmp_path / name / "events.jsonl")
        log.emit("start", folds=[0, 1], max_epochs=2)
        for fold in (0, 1) if done else (0,):
            log.emit("epoch", fold=fold, epoch=2, seconds=1.0)
            log.emit("fold_done", fold=fold, metrics={"accuracy": 1.0})
        if done:
            log.emit("done")
    progress = run_progress(tmp_path, n_runs=4)
    assert progress["status"] == "running"
    assert progress["fraction"] == pytest.approx((1.0 + 0.5) / 4)
    assert len(progress["runs"]) == 2


def _alive(pid: int) -> bool:
    """Running (a killed process not yet reaped by init is a zombie: dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(120)
    """)
    process = TreeProcess([sys.executable, "-c", script])
    process.start()
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text(encoding="utf-8")) and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    process.stop(grace_seconds=5)
    assert not process.running and process.stopped
    time.sleep(0.2)
    if sys.platform != "win32":
        assert not _alive(grandchild)  # the grandchild went with its parent
    assert "started" in process.tail()


def test_a_child_under_an_ascii_locale_prints_what_the_panel_reads():
    # An ASCII locale without Python's UTF-8 mode (as on CI; cp1252 on Windows is alike): a
    # child printing a non-ASCII character would die of UnicodeEncodeError unless told to write
    # the UTF-8 that TreeProcess reads.
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    process = TreeProcess([sys.executable, "-c", r"print('accuracy 0.9 \u00b1 0.1 \u2192 fold 1')"], env=env)
    process.start()
    assert process.wait(timeout=60) == 0, process.tail()
    time.sleep(0.2)  # the reader thread takes the last line
    assert process.tail() == ["accuracy 0.9 \u00b1 0.1 \u2192 fold 1"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort") / "ds", n_fcd=4, n_hc=4)


def _settings(cohort, out, **kwargs):
    return TrainSettings(data=cohort, out=out, depths=[18], folds=2, max_epochs=3, device="cpu",
                         extra_args=["--spacing", *TEST_SPACING, "--shape", *TEST_SHAPE], **kwargs)


def test_stop_and_resume_real_training_run(cohort, tmp_path, slicer_app, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    logic = TrainLogic()
    logic.start(_settings(cohort, out))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # stop once the first epoch is on disk
        if any(e.get("event") == "epoch" for e in read_events(out / "events.jsonl")) or not logic.running:
            break
        time.sleep(0.2)
    ended_early = not logic.running
    logic.stop()
    assert not logic.running
    stopped = progress_from_events(read_events(out / "events.jsonl"))
    assert not ended_early, "the training process ended before its first epoch:\n" + "\n".join(logic.process.tail())
    assert stopped["status"] == "running" and 0 < stopped["fraction"] < 1
    with pytest.raises(RuntimeError, match="stopped"):
        logic.check_finished()

    lines: list[str] = []
    final = logic.train(_settings(cohort, out), wait=True, on_line=lines.append)  # same command: resumes
    assert final["status"] == "done" and final["fraction"] == 1.0
    events = read_events(out / "events.jsonl")
    epochs = [(e["fold"], e["epoch"]) for e in events if e.get("event") == "epoch"]
    assert len(epochs) == len(set(epochs))  # nothing run twice
    assert {f for f, _ in epochs} == {0, 1}
    assert any(line.startswith("fold 1 done") for line in lines)

    bundles = logic.bundles(out)
    assert len(bundles) == 2 and all(b.path.name.endswith(".fcdbundle") for b in bundles)
    assert "ResNet-18" in bundles[0].tooltip

    nodes = experiment_results_nodes(slicer_app.scene, out)
    folds = nodes["folds_table"]
    done = {e["fold"]: e["metrics"] for e in events if e.get("event") == "fold_done"}
    assert _column(folds, "fold") == [0.0, 1.0]
    np.testing.assert_allclose(_column(folds, "accuracy"), [done[0]["accuracy"], done[1]["accuracy"]])
    chart = nodes["chart"]
    assert chart.GetNumberOfPlotSeriesNodes() == len(table_column_names(folds)) - 1
    curves = nodes["curves_table"]
    assert "train_loss_fold0" in table_column_names(curves) and "val_loss_fold1" in table_column_names(curves)
    assert nodes["curves_chart"].GetNthPlotSeriesNode(0).GetTableNodeID() == curves.GetID()


def test_cli_input_error_is_raised_as_fcdinputerror(cohort, tmp_path):
    settings = _settings(cohort, tmp_path / "run")
    settings.folds = 6  # 4 subjects per class: fewer than the folds
    with pytest.raises(FCDInputError, match="fold"):
        TrainLogic().train(settings, wait=True, on_line=None)


def test_experiment_results_table_and_plot(tmp_path, slicer_app):
    from FCDTrainLib.evaluation.stats import summarise
    from FCDTrainLib.experiment.results_report import write_report

    rows = [dict(depth=18, pretrained=p, modality="flair", fold=f, accuracy=0.6 + 0.1 * f + (p != "none") * (0.03 + 0.01 * f),
                 roc_auc=0.7, heat_score=1.0 + f, run=f"r18-{p}") for p in ("none", "medicalnet23") for f in range(3)]
    write_report(summarise(rows), rows, tmp_path)
    nodes = experiment_results_nodes(slicer_app.scene, tmp_path)
    table = nodes["results_table"]
    assert table.GetTable().GetNumberOfRows() == 2
    means = dict(zip(_column(table, "pretrained"), _column(table, "accuracy_mean"), strict=True))
    assert means["none"] == pytest.approx(np.mean([0.6, 0.7, 0.8]))
    assert means["medicalnet23"] == pytest.approx(np.mean([0.63, 0.74, 0.85]))
    assert nodes["folds_table"].GetTable().GetNumberOfRows() == 6
    assert nodes["chart"].GetNumberOfPlotSeriesNodes() == 3


def test_weights_cache_list_and_delete(tmp_path):
    (tmp_path / "resnet_18_23dataset.pth").write_bytes(b"x" * 2048)
    (tmp_path / "my_own.pth").write_bytes(b"y" * 10)
    (tmp_path / "notes.txt").write_text("not weights")
    files = weights_cache.cached_files(tmp_path)
    assert [f.name for f in files] == ["my_own.pth", "resnet_18_23dataset.pth"]
    assert (files[1].family, files[1].depth, files[1].size) == ("medicalnet23", 18, 2048)
    assert files[1].size_text == "2.0 KB"
    assert weights_cache.find_cached(tmp_path, "medicalnet23", 18) == tmp_path / "resnet_18_23dataset.pth"
    assert weights_cache.find_cached(tmp_path, "medicalnet8", 18) is None
    assert weights_cache.download_url("medicalnet8", 50).endswith("/resnet_50.pth")
    with pytest.raises(FCDInputError, match="not a weights file"):
        weights_cache.delete_cached(tmp_path, "../notes.txt")
    weights_cache.delete_cached(tmp_path, "my_own.pth")
    assert [f.name for f in weights_cache.cached_files(tmp_path)] == ["resnet_18_23dataset.pth"]
    with pytest.raises(FCDInputError, match="not in the cache"):
        weights_cache.delete_cached(tmp_path, "my_own.pth")
    assert json.loads(json.dumps(weights_cache.official_files()))  # names only, nothing downloaded


def test_download_is_atomic_reports_progress_and_cancels_cleanly(tmp_path):
    # a file:// URL exercises the real urllib path without any network
    source = tmp_path / "remote" / "resnet_18.pth"
    source.parent.mkdir()
    payload = bytes(range(256)) * 9000  # 2.3 MB: several chunks
    source.write_bytes(payload)
    cache = tmp_path / "cache"
    seen = []
    path = weights_cache.download(source.as_uri(), cache, "resnet_18.pth", progress=lambda d, t: seen.append((d, t)))
    assert path == cache / "resnet_18.pth" and path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload)) and len(seen) >= 3
    assert sorted(p.name for p in cache.iterdir()) == ["resnet_18.pth"]  # no temporary file left
    assert path.stat().st_mode & 0o044  # readable like any other cached file, not owner-only

    with pytest.raises(weights_cache.DownloadCancelled) as cancelled:  # not a failure (issue 14, item 11)
        weights_cache.download(source.as_uri(), cache, "resnet_34.pth", progress=lambda d, t: False)
    assert sorted(p.name for p in cache.iterdir()) == ["resnet_18.pth"]  # nothing half-written
    from FCDTrainLib.slicer_support.train_presenter import TrainPresenter

    outcome = TrainPresenter.download_outcome(cancelled.value, "resnet_34.pth")
    assert outcome.kind == "info" and "cancelled" in outcome.text
    assert [f.name for f in weights_cache.cached_files(cache)] == ["resnet_18.pth"]  # the refresh still lists
