"""Issue 9, items 4, 7, 8 and 9 on the training side.

- Out-of-bounds ``--shape``/``--spacing``/``--widen-factor`` are refused before anything is written.
- A dataset with a truncated FLAIR: ``fcd train`` exits 2 and writes nothing, so once the
  file is fixed the same command runs (it used to leave config.json/folds.json/events.jsonl/
  cache and then refuse the folder). The bundle it makes records the training input ranges.
- ``fcd evaluate`` with a fold bundle missing: an error naming it, or ``--allow-missing``.
"""

from __future__ import annotations

import json
import shutil

import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata
from FCDTrainLib.run_folder.run_config import RunConfig

from Testing.builders.hostile_fixtures import one_error_line, run_fcd, tiny_bundle
from Testing.builders.train_fixtures import train_args, write_cohort


@pytest.mark.parametrize("option, values, words", [
    ("--shape", ["4000", "4000", "4000"], "--shape"),
    ("--spacing", ["1e-6", "1e-6", "1e-6"], "--spacing"),
    ("--widen-factor", ["0.01"], "--widen-factor"),
])
def test_out_of_bounds_training_options_write_nothing(tmp_path, capsys, option, values, words):
    cohort = write_cohort(tmp_path / "cohort", n_fcd=2, n_hc=2)
    out = tmp_path / "run"
    argv = train_args(cohort, out)
    position = argv.index(option) if option in argv else len(argv)
    argv = argv[:position] + [option, *values] + argv[position + 1 + (len(values) if option in argv else 0):]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not out.exists()


@pytest.mark.slow  # trains a real (tiny) network for one epoch
def test_refused_run_writes_nothing_and_the_fixed_dataset_then_trains(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n_fcd=4, n_hc=4)
    flair = next((cohort / "sub-00002" / "anat").glob("*_FLAIR.nii.gz"))
    good = flair.read_bytes()
    flair.write_bytes(good[: len(good) // 2])
    out = tmp_path / "run"
    args = train_args(cohort, out, "--fold", "0", "--widen-factor", "0.25", epochs=1)
    refused = run_fcd(args, timeout=600)
    assert refused.returncode == 2
    assert str(flair) in one_error_line(refused.stderr)
    assert not out.exists()  # no config.json, folds.json, events.jsonl, cache/

    flair.write_bytes(good)
    done = run_fcd(args, timeout=600)
    assert done.returncode == 0, done.stderr
    ranges = read_bundle_metadata(out / "fold-0" / "model.fcdbundle").input_ranges
    assert {"voxel_mm_max", "fov_mm_min", "head_volume_ml", "background_ratio"} <= set(ranges)
    assert ranges["voxel_mm_max"] == [4.0, 4.0]  # the fixtures' FLAIR voxels
    leftovers = [p.name for p in out.rglob(".*")]
    assert not leftovers, leftovers


def _run_folder(tmp_path, folds: int, with_bundles: tuple[int, ...]):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(RunConfig(data=str(tmp_path / "absent"), folds=folds).to_dict()))
    for fold in with_bundles:
        tiny_bundle(run / f"fold-{fold}" / "model.fcdbundle")
    return run


def test_evaluate_with_a_missing_fold_bundle_names_it(tmp_path, capsys):
    run = _run_folder(tmp_path, folds=2, with_bundles=(0,))
    assert main(["evaluate", "--run", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(run / "fold-1" / "model.fcdbundle") in err[0] and "--allow-missing" in err[0]
    assert not (run / "evaluation").exists()


def test_evaluate_allow_missing_goes_on_to_the_data(tmp_path, capsys):
    run = _run_folder(tmp_path, folds=2, with_bundles=(0,))
    shutil.rmtree(run / "fold-1", ignore_errors=True)
    assert main(["evaluate", "--run", str(run), "--device", "cpu", "--allow-missing"]) == 2
    err = capsys.readouterr().err
    assert "absent" in err and "fold-1" not in err  # past the bundle check, stopped by the (absent) data
