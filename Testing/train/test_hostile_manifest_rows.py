"""Issue 25, trainer: spreadsheet exports and small cohorts are odd inputs, never a traceback.

- Manifest rows with a trailing comma (or padded with separators), common in spreadsheet
  exports, are read as they are by ``fcd train``; a non-empty cell beyond the header's
  columns is one error line naming the manifest (the shared reader,
  :mod:`FCDDetectLib.io.manifest_table`).
- A fold whose training part holds a single subject of a class cannot be split into training
  and validation: one error line naming the dataset (it was a bare ``ValueError`` of
  scikit-learn).
"""

from __future__ import annotations

import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.data.manifest_loader import load_manifest
from FCDTrainLib.training.folds import make_folds

from Testing.builders.train_fixtures import train_args, write_cohort, write_manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    return write_manifest(write_cohort(root / "cohort", n_fcd=4, n_hc=4), root / "cohort.csv")


def _rewritten(manifest, tmp_path, suffix: str, header_suffix: str = ""):
    lines = manifest.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "export.csv"
    path.write_text("\n".join([lines[0] + header_suffix, *(line + suffix for line in lines[1:])]) + "\n")
    return path


@pytest.mark.parametrize("suffix, header_suffix", [(",", ""), (",,,", ""), (",", ",")])
def test_rows_with_trailing_separators_are_read(manifest, tmp_path, capsys, suffix, header_suffix):
    export = _rewritten(manifest, tmp_path, suffix, header_suffix)
    assert [s.subject_id for s in load_manifest(export).subjects] == [s.subject_id for s in
                                                                     load_manifest(manifest).subjects]
    # fcd train reads it through to the fold planning (9 folds for 4 + 4 subjects: refused there)
    argv = train_args(export, tmp_path / "run", "--folds", "9")
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "\n" not in line and "fewer than the 9 folds" in line, line
    assert str(export) in line
    assert not (tmp_path / "run").exists()


def test_a_filled_cell_beyond_the_header_is_one_error_line(manifest, tmp_path, capsys):
    export = _rewritten(manifest, tmp_path, ",extra")
    assert main(train_args(export, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(export) in lines[0], err
    assert not (tmp_path / "run").exists()


def test_a_class_too_small_for_a_fold_s_validation_part_is_an_error():
    # 3 patients over 2 folds: one fold's training part holds a single patient
    with pytest.raises(FCDInputError, match="cohort.csv: a fold's training subjects hold 1 fcd subject"):
        make_folds([f"s{i}" for i in range(8)], [1, 1, 1, 0, 0, 0, 0, 0], n_folds=2, seed=0, source="cohort.csv")
