"""One writer per run folder (issue 14, item 6): a second writer is refused, a stale lock
of a dead process is taken over, another host's lock is never taken over, folds of one run
can be trained in parallel; and ``fcd train`` / the Slicer logic refuse a locked folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.stale_files import pid_alive
from FCDTrainLib.run_folder.run_lock import LOCK_DIR, RunLock, holder
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings

HOLD = ("import sys, time\n"
        "from FCDTrainLib.run_folder.run_lock import RunLock\n"
        "fold = None if sys.argv[2] == '-' else int(sys.argv[2])\n"
        "with RunLock(sys.argv[1], fold=fold):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n")


def _hold(folder, fold=None):
    """A real second writer: another process holding the lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "-" if fold is None else str(fold)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def test_second_writer_is_refused_and_the_lock_goes_with_the_process(tmp_path):
    other = _hold(tmp_path)
    try:
        assert holder(tmp_path)["pid"] == other.pid
        with pytest.raises(FCDInputError, match=f"being written by process {other.pid}"):
            RunLock(tmp_path).acquire()
        with pytest.raises(FCDInputError):  # a fold writer conflicts with the whole-run writer
            RunLock(tmp_path, fold=1).acquire()
    finally:
        other.kill()
        other.wait()
    # killed without releasing: its lock is stale now and is taken over
    with RunLock(tmp_path):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) is None
    assert not (tmp_path / LOCK_DIR).exists()  # nothing left behind


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    lock_dir = tmp_path / LOCK_DIR
    lock_dir.mkdir()
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time() - 3600}
    (lock_dir / "run.lock").write_text(json.dumps(stale))
    assert holder(tmp_path) is None
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text(encoding="utf-8"))["pid"] == os.getpid()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    lock_dir = tmp_path / LOCK_DIR
    lock_dir.mkdir()
    (lock_dir / "run.lock").write_text(json.dumps({"pid": _dead_pid(), "host": "cluster-node-7",
                                                   "started": time.time()}))
    with pytest.raises(FCDInputError, match="cluster-node-7"):
        RunLock(tmp_path).acquire()


def test_empty_lock_is_fresh_then_stale(tmp_path):
    lock_dir = tmp_path / LOCK_DIR
    lock_dir.mkdir()
    path = lock_dir / "run.lock"
    path.write_text("")  # a writer between create and write
    with pytest.raises(FCDInputError):
        RunLock(tmp_path).acquire()
    old = time.time() - 60
    os.utime(path, (old, old))
    with RunLock(tmp_path):
        pass


def test_folds_of_one_run_can_train_in_parallel(tmp_path):
    other = _hold(tmp_path, fold=0)
    try:
        with RunLock(tmp_path, fold=1):
            assert holder(tmp_path, fold=1)["pid"] == os.getpid()
        with pytest.raises(FCDInputError):
            RunLock(tmp_path, fold=0).acquire()
        with pytest.raises(FCDInputError):
            RunLock(tmp_path).acquire()  # the whole run conflicts with any fold writer
    finally:
        other.kill()
        other.wait()


def test_logic_and_cli_refuse_a_locked_run_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "run"
    other = _hold(out)
    try:
        with pytest.raises(FCDInputError, match="being written by"):
            TrainLogic().start(TrainSettings(data=data, out=out))  # before any child is started
        cli = subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", "train", "--data", str(data),
                              "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
        assert cli.returncode == 2, cli.stderr
        assert f"error: {out}: this run folder is being written by process {other.pid}" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        other.kill()
        other.wait()


def test_bad_input_leaves_no_run_folder_behind(tmp_path):
    """The lock is taken before the input is checked: a refused run must not leave the
    folder the lock created (nothing half-written)."""
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "new-run"
    cli = subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", "train", "--data", str(data),
                          "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2 and cli.stderr.startswith("error: "), cli.stderr
    assert not out.exists()
