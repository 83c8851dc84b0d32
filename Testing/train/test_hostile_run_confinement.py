"""Issue 25, trainer: nothing outside a run folder is read or written through it; evaluate checks its data.

- A link planted in a run folder that leads outside it (``fold-1 -> elsewhere``, ``cache ->
  elsewhere``) or nowhere is refused by ``fcd train`` and ``fcd evaluate`` with one error line
  naming it, and nothing in the place it points to changes (a resume would have written
  checkpoints there and deleted its ``best-*.pt``).
- An experiment's ``events.jsonl`` naming a run ``../../elsewhere`` is refused; nothing outside
  the experiment folder is read.
- Manifest subject ids name result folders: ``../x`` is refused.
- ``fcd evaluate --out`` in a fold folder, the cache or the run folder itself is refused
  (it would replace a fold's training ``metrics.json`` and ``predictions.csv``).
- ``fcd evaluate`` and a resumed ``fcd train`` refuse a dataset whose files or labels changed
  since the run was trained (``dataset.json``); runs older than that record compare fold splits.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.experiment.evaluate_run import check_evaluation_out
from FCDTrainLib.experiment.progress import experiment_progress
from FCDTrainLib.run_folder.dataset_record import check_dataset, dataset_record
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import RunLayout
from FCDTrainLib.run_folder.run_files import check_links

from Testing.builders.run_folders import prepared_run, with_tiny_bundles
from Testing.builders.train_fixtures import write_cohort, write_manifest


@pytest.fixture(scope="module")
def source_cohort(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort") / "cohort", n_fcd=4, n_hc=4)


@pytest.fixture()
def run(source_cohort, tmp_path) -> tuple[Path, Path, list[str]]:
    """(cohort copy, prepared run with tiny bundles, its train argv)."""
    cohort = shutil.copytree(source_cohort, tmp_path / "cohort")
    out = tmp_path / "run"
    argv = prepared_run(cohort, out)
    with_tiny_bundles(out)
    return cohort, out, argv


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"dir" for p in sorted(folder.rglob("*"))}


def _refused(capsys, argv: list[str], *named: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert all(word in lines[0] for word in named), lines[0]
    return lines[0]


def _evaluate(out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--run", str(out), "--device", "cpu", *extra]


@pytest.mark.parametrize("planted", ["fold-1", "cache", "fold-0/checkpoint.pt"])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_link_out_of_the_run_is_refused_and_its_target_untouched(run, tmp_path, capsys, planted, command):
    _, out, argv = run
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "best-1.pt").write_bytes(b"someone's file")
    link = out / planted
    if link.exists():
        shutil.rmtree(link) if link.is_dir() else link.unlink()
    link.symlink_to(victim if planted != "fold-0/checkpoint.pt" else victim / "best-1.pt")
    before = _listing(victim)
    _refused(capsys, argv if command == "train" else _evaluate(out), str(link), "outside the run folder")
    assert _listing(victim) == before


def test_a_link_loop_in_the_run_is_refused(run, capsys):
    _, out, argv = run
    (out / "loop-a").symlink_to(out / "loop-b")
    (out / "loop-b").symlink_to(out / "loop-a")
    _refused(capsys, argv, "leads nowhere")


def test_links_that_stay_inside_the_run_are_fine(run):
    _, out, _ = run
    (out / "latest").symlink_to(out / "fold-1")
    check_links(out)


def test_experiment_log_naming_a_run_outside_is_refused(tmp_path):
    victim = tmp_path / "victim"
    EventLog(victim / "events.jsonl").emit("epoch", fold=0, epoch=7)
    experiment = tmp_path / "exp"
    EventLog(experiment / "events.jsonl").emit("start", tasks=[{"run": "../../victim", "fold": 0}], max_epochs=9)
    with pytest.raises(FCDInputError, match="events.jsonl: names the run '../../victim'"):
        experiment_progress(experiment)
    from FCDTrainLib.slicer_support.train_launcher import run_progress

    progress = run_progress(experiment)
    assert progress["status"] == "error" and "../../victim" in progress["message"]


def test_manifest_subject_ids_must_be_plain_names(source_cohort, tmp_path):
    from FCDTrainLib.data.manifest_loader import load_manifest

    manifest = write_manifest(source_cohort, tmp_path / "cohort.csv")
    rows = list(csv.DictReader(manifest.open()))
    rows[0]["subject"] = "../../elsewhere"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(FCDInputError, match="not a plain name"):
        load_manifest(manifest)


@pytest.mark.parametrize("where", ["fold-0", "fold-1/deeper", ".", "cache", "link-into-fold"])
def test_evaluate_never_writes_into_the_run_s_own_folders(run, tmp_path, capsys, where):
    _, out, _ = run
    target = out / where
    if where == "link-into-fold":  # a folder outside that is a link into fold-0
        target = tmp_path / "elsewhere"
        target.symlink_to(out / "fold-0")
    before = _listing(out)
    _refused(capsys, _evaluate(out, "--out", str(target)), "--out", "never writes into the run's own folders")
    assert _listing(out) == before


def test_evaluate_may_write_into_other_folders_of_the_run(run):
    _, out, _ = run
    for where in ("evaluation", "evaluation-other", "my-results/site-2"):
        check_evaluation_out(out / where, RunLayout(out))


def _replace_flair(cohort: Path, subject: str) -> None:
    flair = next((cohort / subject / "anat").glob("*_FLAIR.nii.gz"))
    image = nib.load(flair)
    nib.save(nib.Nifti1Image(image.get_fdata() * 1.5, image.affine), flair)


def _relabel(cohort: Path, subject: str) -> None:
    table = cohort / "participants.tsv"
    rows = list(csv.DictReader(table.open(), delimiter="\t"))
    for row in rows:
        if row["participant_id"] == subject:
            row["group"] = "hc" if row["group"] == "fcd" else "fcd"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def _remove(cohort: Path, subject: str) -> None:
    shutil.rmtree(cohort / subject)
    table = cohort / "participants.tsv"
    lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
    table.write_text("".join(line for line in lines if not line.startswith(subject)))


CHANGES = {
    "an image replaced": (lambda cohort: _replace_flair(cohort, "sub-00003"), "with other images or ROI (sub-00003)"),
    "a label changed": (lambda cohort: _relabel(cohort, "sub-00002"), "with another label (sub-00002)"),
    "a subject gone": (lambda cohort: _remove(cohort, "sub-00008"), "gone (sub-00008)"),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_a_changed_dataset_is_refused_by_evaluate_and_by_a_resume(run, capsys, change, command):
    cohort, out, argv = run
    make_change, words = CHANGES[change]
    make_change(cohort)
    before = _listing(out)
    _refused(capsys, _evaluate(out) if command == "evaluate" else argv, str(cohort),
             "the dataset changed since this run was trained", words)
    assert _listing(out) == before  # no evaluation folder, nothing of the run rewritten


def test_the_unchanged_dataset_passes_the_check(run):
    from FCDTrainLib.data.dataset_loader import load_dataset

    cohort, out, _ = run
    assert check_dataset(out, dataset_record(load_dataset(cohort).subjects, ["flair"]), cohort) is True


def test_a_run_without_a_dataset_record_is_checked_by_its_fold_splits(run, capsys):
    cohort, out, _ = run
    RunLayout(out).dataset.unlink()  # a run made before the record existed
    _relabel(cohort, "sub-00001")
    _relabel(cohort, "sub-00008")
    _refused(capsys, _evaluate(out), str(cohort), "other fold splits")


def test_a_damaged_dataset_record_is_one_error_line(run, capsys):
    _, out, argv = run
    path = RunLayout(out).dataset
    record = json.loads(path.read_text(encoding="utf-8"))
    record["subjects"]["sub-00001"]["files"]["flair"] = "../../etc/passwd"
    path.write_text(json.dumps(record))
    _refused(capsys, _evaluate(out), str(path), "damaged dataset record")
