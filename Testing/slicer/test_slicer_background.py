"""Nothing long on the GUI thread: every entry point of the panels starts a child process and returns.

- With a fake process launcher (a child that never ends until the test says so), each public
  entry point the panels and the console use (detection, batch, report, installation check,
  dataset audit, MedicalNet size and download) returns a started job at once, and the work
  itself (``detect``, ``run_cohort``, ``write_report``, ``check_installation``, ``load_dataset``,
  ``remote_size``, ``download``, replaced here by functions that fail the test) never runs in the
  calling process.
- With the real launcher, a detection of the FCD sample runs in a child: the call returns while
  the child works (polled several times), the nodes arrive on the calling thread and equal the
  in-process detection's; Cancel stops the whole process group and adds nothing; bad input is
  an error before any process starts; the child's ``error:`` line becomes an ``FCDInputError``;
  a cancelled download leaves no file behind.
"""

from __future__ import annotations

import http.server
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import slicer
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.mrml.detection_job import start_detection, start_report
from FCDDetectLib.mrml.detection_logic import DetectionLogic
from FCDDetectLib.slicer_support import background_task
from FCDDetectLib.slicer_support.background_task import PROGRESS_PREFIX, BackgroundTask, TaskCancelled
from FCDDetectLib.slicer_support.detect_tasks import start_installation_check
from FCDDetectLib.slicer_support.sample_data import SCAN_NODE_NAME, sample_files
from FCDTrainLib.slicer_support.train_tasks import start_audit, start_download, start_remote_size

from Testing.builders.slicer_fixtures import make_slicer_app


class FakeChild:
    """A child process that runs nothing and ends when the test calls :meth:`end`."""

    def __init__(self, command, env):
        self.command, self.env = list(command), dict(env)
        self.started = self.stopped = False
        self.code = None
        self.lines: list[str] = []
        self.signals: list[str] = []

    def start(self):
        self.started = True

    @property
    def running(self):
        return self.started and self.code is None

    @property
    def returncode(self):
        return self.code

    def read_lines(self):
        lines, self.lines = self.lines, []
        return lines

    def tail(self, count=20):
        return []

    def terminate(self):
        self.stopped = True
        self.signals.append("TERM")
        return self.code is None

    def kill(self):
        self.signals.append("KILL")
        self.code = -9

    def wait(self, timeout=None):
        return self.code

    def end(self, code=0):
        self.code = code


class FakeLauncher:
    def __init__(self):
        self.children: list[FakeChild] = []

    def __call__(self, command, env):
        child = FakeChild(command, env)
        self.children.append(child)
        return child


@pytest.fixture
def no_work_here(monkeypatch):
    """The long functions fail the test if they run in this (the calling) process."""
    import FCDDetectLib.cohort.runner
    import FCDDetectLib.detection.detect
    import FCDDetectLib.detection.ensemble_detect  # imported before the patch: it binds the real detect
    import FCDDetectLib.outputs.pdf_report
    import FCDDetectLib.slicer_support.install_check
    import FCDTrainLib.data.audit
    import FCDTrainLib.data.dataset_loader
    import FCDTrainLib.training.medicalnet_weights

    def forbidden(*_args, **_kwargs):
        raise AssertionError("long work ran on the calling thread")

    for module, name in ((FCDDetectLib.detection.detect, "detect"), (FCDDetectLib.detection.ensemble_detect, "detect"),
                         (FCDDetectLib.cohort.runner, "run_cohort"),
                         (FCDDetectLib.outputs.pdf_report, "write_report"),
                         (FCDDetectLib.slicer_support.install_check, "check_installation"),
                         (FCDTrainLib.data.audit, "audit_dataset"), (FCDTrainLib.data.dataset_loader, "load_dataset"),
                         (FCDTrainLib.training.medicalnet_weights, "remote_size"),
                         (FCDTrainLib.training.medicalnet_weights, "download")):
        monkeypatch.setattr(module, name, forbidden)


@pytest.fixture
def sample_scene():
    app = make_slicer_app()
    scan = app.load_volume(sample_files().scan, SCAN_NODE_NAME)
    yield app, scan
    app.scene.Clear(1)


def _task_name(child: FakeChild) -> str:
    import json

    folder = Path(child.command[-1])
    return json.loads((folder / background_task.TASK_FILE).read_text(encoding="utf-8"))["function"].rpartition(":")[2]


def test_every_entry_point_returns_at_once_and_runs_nothing_here(no_work_here, sample_scene, tmp_path):
    from FCDDetectLib.mrml.batch_logic import start_batch

    app, scan = sample_scene
    launcher = FakeLauncher()
    bundle = sample_files().bundle
    before = app.node_ids()
    job = start_detection(DetectionLogic(), [scan], bundle, method="smoothgrad", device="cpu", launcher=launcher)
    assert job.running and job.poll().running and app.node_ids() == before  # nothing added yet
    batch = start_batch(app.scene, tmp_path, bundle, tmp_path / "out", launcher=launcher)
    fake_nodes = type("Nodes", (), {"result": {"probability": 0.9}, "input_nodes": [scan], "roi_source": None})()
    report = start_report(fake_nodes, tmp_path, launcher=launcher)
    check = start_installation_check([str(tmp_path)], "5.10.0", launcher=launcher)
    audit = start_audit(tmp_path, launcher=launcher)
    size = start_remote_size("https://example.org/resnet_18.pth", launcher=launcher)
    download = start_download("https://example.org/resnet_18.pth", tmp_path, "resnet_18.pth", launcher=launcher)
    assert [_task_name(c) for c in launcher.children] == [
        "detect_task", "batch_task", "report_task", "installation_task", "audit_task", "remote_size_task",
        "download_task"]
    for child in launcher.children:
        assert child.started and child.running  # returned while the child works
        assert child.command[1:3] == ["-c", background_task._CHILD_BOOTSTRAP]
        assert str(Path(sys.modules["FCDDetectLib"].__file__).parents[1]) in child.env["PYTHONPATH"]
    assert str(Path(sys.modules["FCDTrainLib"].__file__).parents[1]) in launcher.children[4].env["PYTHONPATH"]
    for task in (job, batch, report, check, audit, size, download):
        task.cancel()
    assert all(c.signals == ["TERM"] for c in launcher.children)
    for child in launcher.children:
        child.end(-15)  # the SIGTERM ends the (fake) child
    with pytest.raises(TaskCancelled):
        job.finish()
    assert app.node_ids() == before


def test_progress_lines_cancel_and_kill_after_the_grace_period(monkeypatch):
    launcher = FakeLauncher()
    task = BackgroundTask("FCDDetectLib.slicer_support.detect_tasks:installation_task", {}, launcher=launcher).start()
    child = launcher.children[0]
    child.lines = [PROGRESS_PREFIX + '{"fraction": 0.25, "message": "3 of 12 subjects"}', "a log line",
                   PROGRESS_PREFIX + "not json"]
    status = task.poll()
    assert (status.running, status.fraction, status.message) == (True, 0.25, "3 of 12 subjects")
    assert status.lines == ["a log line", PROGRESS_PREFIX + "not json"]
    child.lines = [PROGRESS_PREFIX + '{"fraction": null, "message": "busy"}']
    assert task.poll().fraction is None  # busy: the bar shows an indeterminate state
    monkeypatch.setattr(background_task, "KILL_AFTER_SECONDS", 0.0)
    task.cancel()
    assert child.signals == ["TERM"] and task.poll().running  # cancel() did not wait
    time.sleep(0.01)
    assert not task.poll().running and child.signals == ["TERM", "KILL"]  # still there after the grace: killed
    with pytest.raises(TaskCancelled):
        task.result()
    assert not task.folder.exists()
    with pytest.raises(ValueError, match="task function"):
        BackgroundTask("os:system", {})


def test_bad_input_is_refused_before_any_process_starts(sample_scene, tmp_path):
    app, scan = sample_scene
    launcher = FakeLauncher()
    with pytest.raises(FCDInputError, match="expects 1 volume"):
        start_detection(DetectionLogic(), [scan, scan], sample_files().bundle, launcher=launcher)
    with pytest.raises(FCDInputError, match="no such bundle"):
        start_detection(DetectionLogic(), [scan], tmp_path / "absent.fcdbundle", launcher=launcher)
    with pytest.raises(FCDInputError, match="cluster threshold"):
        start_detection(DetectionLogic(), [scan], sample_files().bundle, cluster_threshold=3.0, launcher=launcher)
    with pytest.raises(FCDInputError, match="no such folder"):
        start_audit(tmp_path / "absent", launcher=launcher)
    assert launcher.children == []


@pytest.mark.slow
def test_detection_in_a_child_returns_at_once_and_brings_back_the_in_process_result(sample_scene):
    app, scan = sample_scene
    bundle = sample_files().bundle
    options = {"method": "gradcam", "device": "cpu", "cluster_threshold": 0.6, "min_cluster_mm3": 100.0,
               "layer": "layer4"}
    reference = DetectionLogic().process([scan], bundle, **options)
    before = app.node_ids()
    started = time.monotonic()
    job = start_detection(DetectionLogic(lower_threshold=0.3), [scan], bundle, **options)
    returned = time.monotonic() - started
    polls = []
    while True:
        status = job.poll()
        polls.append(status)
        if not status.running:
            break
        time.sleep(0.05)
    # The call returned while the child worked: it was polled many times after it returned.
    assert len(polls) > 5 and polls[-1].seconds > returned
    assert app.node_ids() == before  # nodes arrive only with finish(), on this thread
    out = job.finish()
    assert threading.current_thread() is threading.main_thread()
    np.testing.assert_allclose(slicer.util.arrayFromVolume(out.heatmap_node),
                               slicer.util.arrayFromVolume(reference.heatmap_node), atol=1e-5)
    assert out.result.probability == pytest.approx(reference.result.probability, abs=1e-6)
    # The panel's options reached the detection (FCD Detect's cluster threshold, size and layer).
    assert out.result.clusters.threshold == 0.6 and out.result.clusters.min_size_mm3 == 100.0
    assert out.result.layer == "layer4" and out.heatmap_node.GetDisplayNode().GetLowerThreshold() == 0.3
    assert out.input_nodes == [scan] and out.clusters_table_node is not None
    assert not job.task.folder.exists()


@pytest.mark.slow
def test_cancel_stops_the_process_group_and_adds_nothing(sample_scene):
    app, scan = sample_scene
    before = app.node_ids()
    job = start_detection(DetectionLogic(), [scan], sample_files().bundle, method="smoothgrad", device="cpu")
    group = job.task.process.popen.pid  # its own session: the group id is its pid
    time.sleep(0.5)
    job.cancel()
    deadline = time.monotonic() + 60
    while job.poll().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job.running
    with pytest.raises(TaskCancelled):
        job.finish()
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)  # nothing of the tree is left
    assert app.node_ids() == before and not job.task.folder.exists()


def test_the_childs_error_line_is_an_input_error(tmp_path):
    (tmp_path / "not-a-dataset.txt").write_text("x")
    task = start_audit(tmp_path / "not-a-dataset.txt")
    with pytest.raises(FCDInputError) as error:
        task.wait()
    assert "not-a-dataset.txt" in str(error.value)


class _SlowFile(http.server.BaseHTTPRequestHandler):
    size = 4 << 20

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        try:
            for _ in range(self.size // 65536):
                self.wfile.write(b"\0" * 65536)
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *_args):
        pass


def test_a_cancelled_download_writes_nothing(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/resnet_18.pth"
    cache = tmp_path / "cache"
    try:
        task = start_download(url, cache, "resnet_18.pth")
        deadline = time.monotonic() + 120
        while (status := task.poll()).running and not status.fraction and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.fraction and 0 < status.fraction < 1 and "MB" in status.message  # bytes are arriving
        task.cancel()
        with pytest.raises(TaskCancelled):
            task.wait()
    finally:
        server.shutdown()
    assert list(cache.iterdir()) == []  # no partial file, no temporary file


LONG_CALLS = {"detect", "process_folder", "run_cohort", "write_report", "check_installation", "audit_dataset",
              "load_dataset", "remote_size", "download", "urlopen", "localize_detection"}
LONG_MODULES = {"FCDDetectLib.detection.detect", "FCDDetectLib.cohort.runner", "FCDDetectLib.outputs.pdf_report",
                "FCDDetectLib.slicer_support.install_check", "FCDTrainLib.data.audit", "FCDTrainLib.data.dataset_loader",
                "urllib.request"}


def test_the_qt_side_calls_no_long_work_itself():
    """The module files and the widget packages start jobs; none calls the long functions or
    imports their modules (the self-test's detection goes through the logic's job too)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    files = [root / "FCDDetect" / "FCDDetect.py", root / "FCDTrain" / "FCDTrain.py",
             *(root / "FCDDetect" / "FCDDetectWidgets").glob("*.py"), *(root / "FCDTrain" / "FCDTrainWidgets").glob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # DetectionLogic.process is the in-process detection: the Qt side starts a job instead
        engines = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                   and getattr(n.value.func, "id", "") == "DetectionLogic" for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "process":
                receiver = node.func.value
                assert not (isinstance(receiver, ast.Name) and receiver.id in engines), f"{path.name}:{node.lineno}"
                assert getattr(getattr(receiver, "func", None), "id", "") != "DetectionLogic", f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                assert name not in LONG_CALLS, f"{path.name}:{node.lineno} calls {name}() on the GUI thread"
            if isinstance(node, ast.ImportFrom):
                assert node.module not in LONG_MODULES, f"{path.name}:{node.lineno} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & LONG_MODULES, f"{path.name}:{node.lineno}"
