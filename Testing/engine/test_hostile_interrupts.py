"""Issue 25, item 4: one detection is one unit also under Ctrl-C, SIGTERM and a full disk.

SIGKILL stops a writer where it is; SIGINT and SIGTERM run its ``finally`` and ``__exit__``,
which once undid half a commit (a new heatmap beside the old ``result.json``). A writer
process (the real ``write_detection``, with ``fcd``'s SIGTERM handler) gets SIGINT or SIGTERM
at each named commit point (``FCD_TEST_KILL_AT`` + ``FCD_TEST_KILL_SIGNAL``); the next reader
must then find the old set or the new one. A full disk (a tiny tmpfs where this machine lets
us mount one, else a file-size limit on the process: both fail inside the kernel) must leave
the old set, one ``error:`` line, exit 2, and no empty folder. The report and its pages
belong to the detection's set: a later plain run into the same folder removes them.
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
from FCDDetectLib.io.commit_journal import JOURNAL_NAME
from FCDDetectLib.io.output_set import read_output_set

from Testing.builders.full_disk import file_size_limit, fill, tiny_filesystem
from Testing.builders.hostile_fixtures import (
    fcd_command,
    head,
    one_error_line,
    run_fcd,
    save_nifti,
    tiny_bundle,
)

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from FCDDetectLib.detection.result import DetectionResult
    from FCDDetectLib.io.interrupts import raise_on_sigterm
    from FCDDetectLib.outputs.detection_files import write_detection

    raise_on_sigterm()  # as `fcd` does
    tag, out, extra = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    rng = np.random.default_rng(abs(hash(tag)) % 1000)
    result = DetectionResult(probability=0.5, prediction="fcd", threshold=0.5, method="gradcam", model=tag,
                             target_class="fcd", seconds=0.0, heatmap=rng.random((20, 22, 18), dtype=np.float32),
                             affine=np.eye(4))
    def overlay(result, folder):
        (folder / "overlay.png").write_text(result.model)
    try:
        write_detection(result, out, extra_writers=[overlay] if extra else [])
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:  # a full disk: what `fcd` prints as one line
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
""")

POINTS = ["staged", "journal", "renamed:heatmap.nii.gz", "renamed:overlay.png", "renamed:result.json", "committed"]


def _default_sigint() -> None:
    # a shell starts background jobs with SIGINT ignored and children inherit it: Ctrl-C as in a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _write(tag: str, out: Path, extra: bool, point: str = "", signal_name: str = "SIGKILL") -> int:
    env = {**os.environ, "FCD_TEST_KILL_AT": point, "FCD_TEST_KILL_SIGNAL": signal_name}
    done = subprocess.run([sys.executable, "-c", WRITER, tag, str(out), "1" if extra else "0"], env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=_default_sigint)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def _state(out: Path) -> str | None:
    """The tag of the consistent set in ``out`` after the reader's recovery (None: no set)."""
    if not (out / "result.json").exists() and not (out / JOURNAL_NAME).exists():
        return None
    manifest = read_output_set(out)  # recovers, then verifies every checksum
    assert {p.name for p in out.iterdir()} == {"result.json", *manifest["files"]}  # no temp, no stale member
    return manifest["model"]


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_and_sigterm_at_each_commit_point_leave_old_or_new(tmp_path, point, signal_name):
    out = tmp_path / "out"
    assert _write("old", out, extra=False) == 0
    assert _write("new", out, extra=True, point=point, signal_name=signal_name) == 130
    names = {p.name for p in out.iterdir()}
    if point in ("journal", "renamed:heatmap.nii.gz", "renamed:overlay.png", "renamed:result.json"):
        # the interrupted writer left its journal and staging folder for the next one (as a kill does)
        assert JOURNAL_NAME in names and any(n.startswith(".fcd-staging-") for n in names), names
    else:
        assert JOURNAL_NAME not in names and not any(n.startswith(".fcd-staging-") for n in names), names
    state = _state(out)
    assert state == ("old" if point == "staged" else "new")
    assert ((out / "overlay.png").read_text(encoding="utf-8") == "new") if state == "new" else not (out / "overlay.png").exists()
    assert _write("third", out, extra=False) == 0  # and the overlay goes with the old set
    assert _state(out) == "third" and not (out / "overlay.png").exists()


def test_a_full_disk_leaves_the_old_set_and_no_empty_folder(tmp_path):
    """In-process on a tiny tmpfs (skipped where this machine cannot mount one; the CLI test below is not)."""
    disk = tmp_path / "disk"
    with tiny_filesystem(disk, 512) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root); the file-size-limit test covers this machine")
        out = disk / "out"
        assert _write("old", out, extra=False) == 0
        fill(disk, leave=2048)
        code = _write("new", out, extra=True)
        assert code == 1  # the writer script's OSError
        assert _state(out) == "old"
        fresh = disk / "new" / "deeper"
        assert _write("new", fresh, extra=False) == 1
        assert not (disk / "new").exists()  # the folders it created are removed again


@pytest.fixture(scope="module")
def detect_case(tmp_path_factory):
    base = tmp_path_factory.mktemp("detect")
    bundle = tiny_bundle(base / "tiny.fcdbundle")
    scans = {name: save_nifti(base / f"{name}.nii.gz", head((24, 28, 24), seed=seed))  # inside the field of view
             for name, seed in (("a", 1), ("b", 2))}
    return bundle, scans


def _detect(bundle: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return ["detect", "--model", str(bundle), "--image", str(image), "--device", "cpu", "--out", str(out), *extra]


def test_fcd_detect_on_a_full_disk_is_one_error_line(detect_case, tmp_path):
    """A real ENOSPC (tmpfs) where mounting works, else EFBIG from a file-size limit: one line, old set kept."""
    bundle, scans = detect_case
    disk = tmp_path / "disk"
    with tiny_filesystem(disk, 768) as mounted:
        out = disk / "out"
        assert run_fcd(_detect(bundle, scans["a"], out)).returncode == 0
        old = read_output_set(out)
        if mounted:
            fill(disk, leave=4096)
            done = run_fcd(_detect(bundle, scans["b"], out, "--png"))
            cohort = disk / "cohort-out"
            manifest = tmp_path / "cohort.csv"
            manifest.write_text(f"subject,flair\ns1,{scans['a']}\ns2,{scans['b']}\n")
            cohort_done = run_fcd(["detect", "--model", str(bundle), "--data", str(manifest), "--device", "cpu",
                                   "--out", str(cohort)])
        else:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run(fcd_command(_detect(bundle, scans["b"], out, "--png")), capture_output=True,
                                  text=True, timeout=300, env=env, preexec_fn=file_size_limit(8192))
            cohort = tmp_path / "cohort-out"
            manifest = tmp_path / "cohort.csv"
            manifest.write_text(f"subject,flair\ns1,{scans['a']}\ns2,{scans['b']}\n")
            cohort_done = subprocess.run(fcd_command(["detect", "--model", str(bundle), "--data", str(manifest),
                                                      "--device", "cpu", "--out", str(cohort)]),
                                         capture_output=True, text=True, timeout=300, env=env,
                                         preexec_fn=file_size_limit(8192))
        assert done.returncode == 2, done.stderr
        line = one_error_line(done.stderr)
        assert ("No space left on device" in line or "File too large" in line) and str(out) in line
        assert read_output_set(out) == old  # the old set, whole
        assert not any(p.name.startswith(".") for p in out.iterdir())  # no staging, no temporary file left
        # the cohort: one line, exit 2, and no empty subject folder left behind
        assert cohort_done.returncode == 2, cohort_done.stderr
        one_error_line(cohort_done.stderr.split("\r")[-1])
        if cohort.exists():
            assert all(any(p.iterdir()) for p in cohort.iterdir() if p.is_dir())


def test_the_report_is_part_of_the_detections_set(detect_case, tmp_path):
    """The issue's stale report: after --report on scan a, a plain run on scan b left a's report.pdf."""
    bundle, scans = detect_case
    out = tmp_path / "out"
    assert run_fcd(_detect(bundle, scans["a"], out, "--report")).returncode == 0
    first = read_output_set(out)
    assert "report.pdf" in first["files"] and "report-page-1.png" in first["files"]
    done = run_fcd(_detect(bundle, scans["b"], out))
    assert done.returncode == 0, done.stderr
    second = read_output_set(out)
    assert second["inputs"] == [str(scans["b"])]
    assert not any(p.name.startswith("report") for p in out.iterdir())
    assert json.loads(done.stdout)["files"] == second["files"]


def test_ctrl_c_while_fcd_itself_is_imported_is_one_line_and_exit_130():
    # `fcd` (the console script, `python -m FCDDetectLib.cli`) imports the package and the CLI
    # before main() runs: the package imports no numpy, and a Ctrl-C during the CLI's own
    # imports is one line and exit 130. The interrupt is raised deterministically by a finder
    # that fails the import of the registry (a real SIGINT there lands by timing only).
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import FCDDetectLib\n"
        "assert 'numpy' not in sys.modules, 'the package imported numpy'\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'FCDDetectLib.cli.registry':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "import FCDDetectLib.cli\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "error: interrupted; run the same command again to resume"
