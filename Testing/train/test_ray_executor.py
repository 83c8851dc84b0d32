"""``fcd experiment --executor ray`` on a real local Ray cluster, against the local executor.

One Ray instance (2 CPUs) serves the whole module; the experiment is a tiny grid (ResNet-18
at a quarter width, FLAIR and T1, 2 folds, 3 epochs, 12 subjects on a 5 mm grid). Both
executors train with one torch thread per fold (``--cpus-per-run 1``), so they run the very
same computation and their tables must be equal byte for byte, not within a margin.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from FCDDetectLib.cli import main
from FCDTrainLib.run_folder.event_log import read_events
from FCDTrainLib.slicer_support.train_launcher import TrainSettings, run_progress

from Testing.builders.train_fixtures import TEST_SHAPE, TEST_SPACING, cli_env, write_cohort

ray = pytest.importorskip("ray")

RUNS = ("resnet18-none-flair", "resnet18-none-t1")


def experiment_args(cohort: Path, out: Path, *extra: str) -> list[str]:
    return ["experiment", "--data", str(cohort), "--out", str(out), "--depths", "18", "--pretrained", "none",
            "--modalities", "flair", "t1", "--folds", "2", "--max-epochs", "3", "--device", "cpu",
            "--seed", "3", "--spacing", *TEST_SPACING, "--shape", *TEST_SHAPE, "--widen-factor", "0.25",
            "--cpus-per-run", "1", "--no-progress", *extra]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster for the module (workers inherit this process's PYTHONPATH)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("ray") / "cohort", n_fcd=6, n_hc=6)


@pytest.fixture(scope="module")
def local_experiment(cohort):
    out = cohort.parent / "local"
    assert main(experiment_args(cohort, out)) == 0
    return out


@pytest.fixture(scope="module")
def ray_experiment(cohort, ray_cluster):
    out = cohort.parent / "ray"
    assert main(experiment_args(cohort, out, "--executor", "ray")) == 0
    return out


def _tables(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in ("results.csv", "results_folds.csv", "results.md")}
    for run in RUNS:
        for fold in (0, 1):
            files[f"{run}/{fold}"] = (out / "runs" / run / f"fold-{fold}" / "predictions.csv").read_bytes()
    return files


def _experiment_kinds(out: Path) -> Counter:
    return Counter(e["event"] for e in read_events(out / "events.jsonl"))


@pytest.mark.slow
def test_ray_results_and_progress_equal_the_local_executor(local_experiment, ray_experiment):
    assert _tables(ray_experiment) == _tables(local_experiment)
    with (ray_experiment / "results.csv").open() as handle:
        assert {r["modality"] for r in csv.DictReader(handle)} == {"flair", "t1"}
    # the same experiment events and the same figures for the FCDTrain panel
    assert _experiment_kinds(ray_experiment) == _experiment_kinds(local_experiment)
    for out in (local_experiment, ray_experiment):
        events = read_events(out / "events.jsonl")
        assert [e["folds_done"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
        progress = run_progress(out, n_runs=2)
        assert (progress["status"], progress["fraction"], progress["folds_done"], progress["folds_total"]) == (
            "done", 1.0, 4, 4)
        assert progress["eta_seconds"] == 0.0
        assert {Path(k).name for k in progress["runs"]} == set(RUNS)
        assert all(p["status"] == "done" and p["folds_done"] == 2 for p in progress["runs"].values())
        for run in RUNS:
            assert (out / "runs" / run / "summary.json").is_file()
    starts = [e for e in read_events(ray_experiment / "events.jsonl") if e["event"] == "start"]
    assert starts[0]["executor"] == "ray" and starts[0]["slots"] == 2


@pytest.mark.slow
def test_second_submission_of_a_finished_experiment_runs_nothing(cohort, ray_experiment):
    before = {run: len(read_events(ray_experiment / "runs" / run / "events.jsonl")) for run in RUNS}
    table = (ray_experiment / "results.csv").read_bytes()
    assert main(experiment_args(cohort, ray_experiment, "--executor", "ray")) == 0
    events = read_events(ray_experiment / "events.jsonl")
    last = len(events) - 1 - [e["event"] for e in reversed(events)].index("start")
    assert events[last]["tasks"] == [] and events[last]["folds_skipped"] == 4
    assert [e["event"] for e in events[last + 1:]] == ["run_skipped", "run_skipped", "done"]
    assert {run: len(read_events(ray_experiment / "runs" / run / "events.jsonl")) for run in RUNS} == before
    assert (ray_experiment / "results.csv").read_bytes() == table


def _worker_pids(title: str) -> list[int]:
    """Processes whose command line is Ray's title for a running task, ``ray::<task name>``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith(f"ray::{title}"):
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
def test_a_fold_killed_with_sigkill_is_retried_and_resumes(cohort, ray_cluster, local_experiment):
    out = cohort.parent / "ray-killed"
    run_events = out / "runs" / RUNS[0] / "events.jsonl"
    killed: list[int] = []
    stop = threading.Event()

    def kill_after_first_epoch() -> None:
        # SIGKILL the worker training fold 0 once its epoch 1 is checkpointed (2 epochs left)
        while not stop.is_set():
            if any(e["event"] == "epoch" and e["fold"] == 0 for e in read_events(run_events)):
                for pid in _worker_pids(f"fcd-fold {RUNS[0]} fold 0"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                if killed:
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_epoch, daemon=True)
    killer.start()
    try:
        assert main(experiment_args(cohort, out, "--executor", "ray", "--max-retries", "2")) == 0
    finally:
        stop.set()
        killer.join()
    assert killed, "the fold finished before it could be killed"
    events = read_events(run_events)
    assert any(e["event"] == "resume" and e["fold"] == 0 for e in events)  # retried from its checkpoint
    assert sorted(e["epoch"] for e in events if e["event"] == "epoch" and e["fold"] == 0) == [1, 2, 3]
    assert _tables(out) == _tables(local_experiment)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_ray_address_is_one_error_line_within_30_s(tmp_path):
    out = tmp_path / "exp"
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", *experiment_args(
        tmp_path / "cohort", out, "--executor", "ray", "--ray-address", address)],
        env=cli_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --ray-address {address}: no Ray cluster answers")
    assert elapsed < 30
    assert not out.exists()


def test_more_gpus_per_run_than_any_node_has_is_refused_before_submitting(tmp_path, cohort, ray_cluster, capsys):
    out = tmp_path / "exp"
    assert main(experiment_args(cohort, out, "--executor", "ray", "--gpus-per-run", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --gpus-per-run 1: no node of the Ray cluster has that many GPUs (largest: 0 on 1 node(s))"]
    assert not out.exists()


def test_a_run_folder_that_cannot_be_written_is_refused_before_any_task(tmp_path, cohort, ray_cluster, capsys):
    out = tmp_path / "exp"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / RUNS[1]).write_text("not a folder")
    assert main(experiment_args(cohort, out, "--executor", "ray")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out / 'runs' / RUNS[1]}: is a file")
    assert sorted(p.name for p in (out / "runs").iterdir()) == [RUNS[1]]  # nothing left behind
    assert not (out / "events.jsonl").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through permissions")
def test_a_read_only_runs_folder_is_refused_before_any_task(tmp_path, cohort, ray_cluster, capsys):
    out = tmp_path / "exp"
    (out / "runs").mkdir(parents=True)
    (out / "runs").chmod(0o555)
    try:
        assert main(experiment_args(cohort, out, "--executor", "ray")) == 2
    finally:
        (out / "runs").chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the run folder" in err[0]


def test_every_node_must_see_the_folder(tmp_path, ray_cluster):
    from FCDDetectLib.cohort.ray_connection import _probe_folders, check_shared_folders
    from FCDDetectLib.errors import FCDInputError

    check_shared_folders([tmp_path])  # the one node sees it and writes there
    assert list(tmp_path.iterdir()) == []  # markers and probes removed
    problem = _probe_folders([str(tmp_path)], "marker-the-driver-never-wrote")
    assert problem and "not visible from this node" in problem
    with pytest.raises(FCDInputError, match="no Ray cluster answers"):
        from FCDDetectLib.cohort.ray_connection import probe_port

        probe_port(f"127.0.0.1:{_closed_port()}")


def test_the_panel_settings_pass_the_executor_to_fcd_experiment(tmp_path):
    grid = TrainSettings(data=tmp_path, out=tmp_path / "exp", depths=[18, 50], executor="ray",
                         ray_address="head-node:6379", gpus_per_run=1)
    args = grid.arguments()
    assert args[0] == "experiment"
    assert args[args.index("--executor") + 1] == "ray"
    assert args[args.index("--ray-address") + 1] == "head-node:6379"
    assert args[args.index("--gpus-per-run") + 1] == "1"
    assert "--executor" not in TrainSettings(data=tmp_path, out=tmp_path / "exp", depths=[18, 50]).arguments()
    from FCDDetectLib.errors import FCDInputError

    with pytest.raises(FCDInputError, match="only for an experiment"):
        TrainSettings(data=tmp_path, out=tmp_path / "run", executor="ray").check()


def test_cuda_on_ray_needs_a_gpu_per_run(tmp_path, capsys):
    assert main(["experiment", "--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--depths", "18",
                 "--pretrained", "none", "--modalities", "flair", "--device", "cuda", "--executor", "ray"]) == 2
    assert "needs --gpus-per-run 1" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
