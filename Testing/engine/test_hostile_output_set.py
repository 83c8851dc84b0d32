"""Issue 9, item 2: the files of one detection change together, whatever moment a kill hits.

A writer process (``write_detection`` of a small result, the real function ``fcd detect``
calls) is SIGKILLed at each named point of the commit (``FCD_TEST_KILL_AT``, see
FCDDetectLib.io.commit_points), into an empty folder and over a previous detection. After each
kill, the next reader (``read_output_set``) must find the old set or the new set, every
checksum right, and no temporary file of the killed writer left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.output_folder import check_output_folder
from FCDDetectLib.io.output_set import OutputSet, read_output_set

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from FCDDetectLib.detection.result import DetectionResult
    from FCDDetectLib.outputs.detection_files import write_detection

    tag, out, extra = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    rng = np.random.default_rng(abs(hash(tag)) % 1000)
    result = DetectionResult(probability=0.5, prediction="fcd", threshold=0.5, method="gradcam", model=tag,
                             target_class="fcd", seconds=0.0, heatmap=rng.random((20, 22, 18), dtype=np.float32),
                             affine=np.eye(4))
    def clusters(result, folder):
        (folder / "clusters.json").write_text('{"tag": "%s"}' % result.model)
    write_detection(result, out, extra_writers=[clusters] if extra else [])
""")

POINTS = ["staged", "journal", "renamed:clusters.json", "renamed:heatmap.nii.gz", "renamed:result.json",
          "committed"]


def _write(tag: str, out: Path, extra: bool, kill_at: str | None = None) -> int:
    env = {**os.environ, "FCD_TEST_KILL_AT": kill_at or ""}
    done = subprocess.run([sys.executable, "-c", WRITER, tag, str(out), "1" if extra else "0"], env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode


def _state(out: Path) -> str | None:
    """The tag of the consistent set in ``out`` (None: no set), after the reader's recovery."""
    if not (out / "result.json").exists() and not (out / ".fcd-commit.json").exists():
        assert not (out / "heatmap.nii.gz").exists(), "heatmap without result.json"
        return None
    manifest = read_output_set(out)  # recovers, then verifies every checksum
    names = {p.name for p in out.iterdir()}
    assert names == {"result.json", *manifest["files"]}, names  # nothing else: no temp, no stale member
    return manifest["model"]


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_commit_point_leaves_old_or_new(tmp_path, point):
    out = tmp_path / "out"
    assert _write("old", out, extra=False) == 0
    assert _state(out) == "old"
    code = _write("new", out, extra=True, kill_at=point)
    assert code == -signal.SIGKILL
    state = _state(out)
    assert state == ("old" if point == "staged" else "new")
    if state == "new":
        assert json.loads((out / "clusters.json").read_text(encoding="utf-8"))["tag"] == "new"
    # and back to a set without clusters.json: the stale member goes with the old set
    assert _write("third", out, extra=False) == 0
    assert _state(out) == "third" and not (out / "clusters.json").exists()


@pytest.mark.parametrize("point", ["staged", "renamed:heatmap.nii.gz"])
def test_kill_into_an_empty_folder(tmp_path, point):
    out = tmp_path / "out"
    assert _write("new", out, extra=False, kill_at=point) == -signal.SIGKILL
    assert _state(out) == (None if point == "staged" else "new")


def test_a_changed_file_is_detected_by_the_reader(tmp_path):
    out = tmp_path / "out"
    with OutputSet(out) as staged:
        (staged.folder / "a.txt").write_text("a")
        staged.manifest = {"x": 1}
    (out / "a.txt").write_text("b")
    with pytest.raises(FCDInputError, match="differs from the checksum"):
        read_output_set(out)


def test_a_failed_writer_commits_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), OutputSet(out) as staged:
        (staged.folder / "a.txt").write_text("a")
        raise RuntimeError("boom")
    assert not out.exists()  # the folder it created is removed again: no empty folder left behind
    out.mkdir()
    with pytest.raises(RuntimeError), OutputSet(out) as staged:
        raise RuntimeError("boom")
    assert out.is_dir() and list(out.iterdir()) == []  # a folder that was there stays


def test_output_folder_checks(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(FCDInputError, match="is a file, expected a folder"):
        check_output_folder(afile)
    with pytest.raises(FCDInputError, match="so the folder cannot be created"):
        check_output_folder(afile / "sub")
    (tmp_path / "out" / "result.json").mkdir(parents=True)
    with pytest.raises(FCDInputError, match="is a folder where the output file result.json goes"):
        check_output_folder(tmp_path / "out", ["heatmap.nii.gz", "result.json"])
    check_output_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # the check creates nothing
