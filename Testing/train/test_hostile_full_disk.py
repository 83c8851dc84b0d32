"""Issue 25, trainer: a full disk, a name too long, a link loop: one ``error:`` line, exit 2, nothing half-written.

The kernel itself refuses the writes (:mod:`Testing.builders.full_disk`): a small tmpfs, where
``mount`` is allowed (``ENOSPC``, exactly a full disk), and always the file size limit
``RLIMIT_FSIZE`` (``EFBIG``: the same ``OSError`` from ``write``, for every user). Nothing in
Python is faked.

- ``fcd synth`` into a full disk: no cohort, no temporary folder, no parent folder it made.
- ``fcd train``, disk full while the cache is built (before ``config.json``): nothing stays.
- ``fcd train``, disk full while training: only whole files stay (``config.json``,
  ``folds.json``, ``dataset.json``, the log, the cache), no temporary file, no empty folder,
  every log line whole; with space again the same command finishes the run.
- ``--out`` with a name over 255 bytes, or a link loop, for train, synth and experiment.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from FCDDetectLib.cli import main

from Testing.builders.full_disk import file_size_limit, resize_tmpfs, small_tmpfs
from Testing.builders.hostile_fixtures import fcd_command, one_error_line
from Testing.builders.train_fixtures import train_args, write_cohort

TRAIN_EXTRA = ("--widen-factor", "0.25")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort") / "cohort", n_fcd=4, n_hc=4)


def _fcd(args: list[str], max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(fcd_command(args), capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=file_size_limit(max_file_bytes) if max_file_bytes else None)


class _Disk:
    """A place whose writes fail past a size: a small tmpfs (``ENOSPC``) or the file size limit (``EFBIG``)."""

    def __init__(self, kind: str, folder: Path, tmpfs_kb: int, file_bytes: int, inodes: int | None = None) -> None:
        self.kind, self.folder, self.tmpfs_kb, self.file_bytes = kind, folder, tmpfs_kb, file_bytes
        self.inodes = inodes

    def __enter__(self) -> _Disk:
        self._mount = small_tmpfs(self.folder, self.tmpfs_kb, self.inodes) if self.kind == "tmpfs" else None
        if self._mount is not None and self._mount.__enter__() is None:
            self._mount.__exit__(None, None, None)
            pytest.skip("mount -t tmpfs is not allowed here (needs root); the fsize case covers the code path")
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mount is not None:
            self._mount.__exit__(*exc)

    def fcd(self, args: list[str]) -> subprocess.CompletedProcess:
        return _fcd(args, self.file_bytes if self.kind == "fsize" else None)

    @property
    def code(self) -> str:
        return "(ENOSPC)" if self.kind == "tmpfs" else "(EFBIG)"


def _temporary(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def _empty_folders(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_dir() and not any(p.iterdir())]


@pytest.mark.parametrize("kind", ["tmpfs", "fsize"])
def test_synth_on_a_full_disk_leaves_nothing(tmp_path, kind):
    # 1 MiB free passes synth's free-space check up front (about 350 KB for two tiny subjects);
    # 8 inodes run out while the first subject is written: ENOSPC part way.
    with _Disk(kind, tmp_path / "disk", tmpfs_kb=1024, file_bytes=4000, inodes=8) as disk:
        out = disk.folder / "new" / "cohort"
        done = disk.fcd(["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--quiet"])
        assert done.returncode == 2
        assert disk.code in one_error_line(done.stderr)
        assert list(disk.folder.iterdir()) == []  # no cohort, no temporary folder, no "new/"


@pytest.mark.parametrize("kind", ["tmpfs", "fsize"])
def test_train_with_a_full_disk_while_caching_leaves_nothing(cohort, tmp_path, kind):
    with _Disk(kind, tmp_path / "disk", tmpfs_kb=300, file_bytes=30_000) as disk:
        out = disk.folder / "runs" / "r18"
        done = disk.fcd(train_args(cohort, out, *TRAIN_EXTRA, epochs=1))
        assert done.returncode == 2
        line = one_error_line(done.stderr)
        assert disk.code in line and str(out) in line
        assert list(disk.folder.iterdir()) == []


@pytest.mark.slow  # trains a tiny network once the disk has space again
@pytest.mark.parametrize("kind", ["tmpfs", "fsize"])
def test_train_with_a_full_disk_while_training_keeps_a_resumable_run(cohort, tmp_path, kind):
    with _Disk(kind, tmp_path / "disk", tmpfs_kb=1024, file_bytes=200_000) as disk:
        out = disk.folder / "run"
        args = train_args(cohort, out, *TRAIN_EXTRA, epochs=1)
        done = disk.fcd(args)
        assert done.returncode == 2
        assert disk.code in one_error_line(done.stderr)
        assert {p.name for p in out.iterdir()} == {"cache", "config.json", "folds.json", "dataset.json",
                                                    "skipped.json", "events.jsonl"}
        assert _temporary(out) == [] and _empty_folders(out) == []
        for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines():
            json.loads(line)  # whole lines only
        if kind == "tmpfs":
            resize_tmpfs(disk.folder, 200 * 1024)
        resumed = _fcd(args)  # space again (no file size limit): the same command finishes the run
        assert resumed.returncode == 0, resumed.stderr
        assert (out / "summary.json").is_file() and _temporary(out) == []


LONG = "x" * 300


@pytest.mark.parametrize("command", ["train", "synth", "experiment"])
@pytest.mark.parametrize("case", ["name over 255 bytes", "link loop"])
def test_out_names_the_system_refuses_are_one_error_line(cohort, tmp_path, capsys, command, case):
    if case == "link loop":
        (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
        (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
        out = tmp_path / "loop-a"
    else:
        out = tmp_path / "new" / LONG
    argv = {
        "train": train_args(cohort, out),
        "synth": ["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--quiet"],
        "experiment": ["experiment", "--data", str(cohort), "--out", str(out), "--depths", "18", "--pretrained",
                       "none", "--modalities", "flair", "--no-progress"],
    }[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder made on the way
