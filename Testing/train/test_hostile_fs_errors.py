"""Issue 9, item 3: an output folder that cannot be written is one ``error:`` line, exit 2, before any work.

Each command is given an output that is an existing file, a read-only place, or a folder
with a folder where an output file goes. The model / data paths given do not exist: the
error must still be about the output, which shows it is checked first, before anything
is read or computed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from FCDDetectLib.cli import main
from FCDTrainLib.run_folder.run_config import RunConfig

from Testing.builders.hostile_fixtures import tiny_bundle


def _read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permissions: use a place no one can write
        if not Path("/sys").is_dir():
            pytest.skip("needs /sys when run as root")
        return Path("/sys/fcd-hostile-out")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "out"


def _outs(tmp_path: Path, occupied: str) -> dict[str, Path]:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    holder = tmp_path / "holder"
    (holder / occupied).mkdir(parents=True)
    return {"file": afile, "read-only": _read_only(tmp_path), "occupied": holder}


def _check(capsys, argv: list[str], out: Path, expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(out) in lines[0] and expected in lines[0], lines[0]


EXPECTED = {"file": "is a file", "read-only": "cannot write into", "occupied": "is a folder where the output file"}


@pytest.mark.parametrize("case", ["file", "read-only", "occupied"])
def test_detect(tmp_path, capsys, case):
    out = _outs(tmp_path, "result.json")[case]
    _check(capsys, ["detect", "--model", str(tmp_path / "absent.fcdbundle"), "--image", "absent.nii.gz",
                    "--out", str(out)], out, EXPECTED[case])


@pytest.mark.parametrize("case", ["file", "read-only", "occupied"])
def test_train(tmp_path, capsys, case):
    out = _outs(tmp_path, "config.json")[case]
    _check(capsys, ["train", "--data", str(tmp_path / "absent"), "--out", str(out)], out, EXPECTED[case])


@pytest.mark.parametrize("case", ["file", "read-only", "occupied"])
def test_synth(tmp_path, capsys, case):
    out = _outs(tmp_path, "participants.tsv")[case]
    _check(capsys, ["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--quiet"], out,
           EXPECTED[case])
    assert not any(p.name.startswith("sub-") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("case", ["file", "read-only", "occupied"])
def test_evaluate(tmp_path, capsys, case):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(RunConfig(data=str(tmp_path / "absent"), folds=2).to_dict()))
    for fold in (0, 1):
        tiny_bundle(run / f"fold-{fold}" / "model.fcdbundle")
    out = _outs(tmp_path, "metrics.json")[case]
    _check(capsys, ["evaluate", "--run", str(run), "--device", "cpu", "--out", str(out)], out, EXPECTED[case])
