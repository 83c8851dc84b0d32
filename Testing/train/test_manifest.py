"""CSV manifests: path resolution, label names (incl. a non-FCD task), and every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.data.dataset_loader import load_dataset
from FCDTrainLib.data.labels import LabelNames
from FCDTrainLib.data.manifest_loader import load_manifest
from FCDTrainLib.data.records import FLAG_2D_FLAIR


def _save(path: Path, zooms=(1.0, 1.0, 1.0), shape=(5, 6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*zooms, 1.0])
    nib.save(nib.Nifti1Image(np.ones(shape, np.int16), affine), str(path))
    return path


@pytest.fixture
def cohort(tmp_path) -> Path:
    for name in ("p1_t1", "p1_flair", "p1_roi", "c1_t1", "c1_flair", "c2_t1"):
        _save(tmp_path / "images" / f"{name}.nii.gz")
    _save(tmp_path / "images" / "c2_flair.nii.gz", zooms=(0.7, 0.7, 4.0))
    return tmp_path


def _write(folder: Path, text: str, name: str = "cohort.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD = """subject,label,t1,flair,roi,site,age
p1,fcd,images/p1_t1.nii.gz,images/p1_flair.nii.gz,images/p1_roi.nii.gz,bonn,30
c1,Control,images/c1_t1.nii.gz,images/c1_flair.nii.gz,,bonn,31
c2,0,images/c2_t1.nii.gz,images/c2_flair.nii.gz,,freiburg,
"""


def test_manifest_paths_resolved_against_csv_folder(cohort, tmp_path, monkeypatch):
    manifest = _write(cohort, GOOD)
    monkeypatch.chdir(tmp_path.parent)  # relative paths must not depend on the working directory
    dataset = load_dataset(manifest)
    assert dataset.source == "manifest" and [s.subject_id for s in dataset.subjects] == ["p1", "c1", "c2"]
    p1, c1, c2 = dataset.subjects
    assert (p1.label, c1.label, c2.label) == (1, 0, 0)
    assert p1.images["flair"] == cohort / "images" / "p1_flair.nii.gz" and p1.images["flair"].is_file()
    assert p1.roi == cohort / "images" / "p1_roi.nii.gz" and c1.roi is None
    assert (p1.protocol, c2.protocol) == ("bonn", "freiburg")
    assert p1.info == {"age": "30"}
    assert FLAG_2D_FLAIR in c2.flags and FLAG_2D_FLAIR not in p1.flags


def test_absolute_paths_and_tsv(cohort):
    flair = (cohort / "images" / "p1_flair.nii.gz").resolve()
    manifest = _write(cohort, f"subject\tlabel\tflair\tprotocol\nx\t1\t{flair}\tnew\ny\thc\t{flair}\told\n", "c.tsv")
    dataset = load_manifest(manifest)
    assert [s.images for s in dataset.subjects] == [{"flair": flair}] * 2
    assert [s.protocol for s in dataset.subjects] == ["new", "old"]


def test_other_task_labels_and_image_columns(tmp_path):
    _save(tmp_path / "ct1.nii.gz")
    _save(tmp_path / "ct2.nii.gz")
    manifest = _write(tmp_path, "subject,label,image_ct\nct-1,bleed,ct1.nii.gz\nct-2,normal,ct2.nii.gz\n")
    with pytest.raises(FCDInputError, match=r"ct-1 label: unknown label 'bleed'"):
        load_manifest(manifest)
    dataset = load_manifest(manifest, LabelNames.with_extra(positive=["Bleed"], negative=["normal"]))
    assert [(s.label, list(s.images)) for s in dataset.subjects] == [(1, ["ct"]), (0, ["ct"])]


def test_label_name_clash():
    with pytest.raises(FCDInputError, match="both positive and negative"):
        LabelNames.with_extra(positive=["x"], negative=["X"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,t1\nfcd,images/p1_t1.nii.gz\n", r"cohort.csv: missing column 'subject'"),
        ("subject,t1\np1,images/p1_t1.nii.gz\n", r"cohort.csv: missing column 'label'"),
        ("subject,label,age\np1,fcd,3\n", r"cohort.csv: missing image column"),
        ("subject,label,t1\np1,sick,images/p1_t1.nii.gz\n", r"cohort.csv: p1 label: unknown label 'sick'"),
        ("subject,label,t1\np1,fcd,images/nope.nii.gz\n", r"cohort.csv: p1 t1: file not found: .*images/nope.nii.gz"),
        ("subject,label,t1,roi\np1,fcd,images/p1_t1.nii.gz,images/gone.nii.gz\n", r"p1 roi: file not found: .*gone"),
        ("subject,label,t1\np1,fcd,images/p1_t1.nii.gz\np1,hc,images/c1_t1.nii.gz\n", r"subject p1 listed twice"),
        ("subject,label,t1\np1,fcd,\n", r"cohort.csv: p1: no image"),
        ("subject,label,t1\n,fcd,images/p1_t1.nii.gz\n", r"line 2 has an empty subject"),
    ],
)
def test_bad_manifest(cohort, text, message):
    with pytest.raises(FCDInputError, match=message):
        load_dataset(_write(cohort, text))


def test_roi_grid_differs(cohort):
    _save(cohort / "images" / "p1_roi.nii.gz", shape=(5, 6, 5))
    with pytest.raises(FCDInputError, match=r"p1_roi.nii.gz: ROI grid differs from p1's flair image p1_flair.nii.gz"):
        load_dataset(_write(cohort, GOOD))


def test_missing_manifest_and_wrong_suffix(tmp_path):
    with pytest.raises(FCDInputError, match="dataset not found"):
        load_dataset(tmp_path / "missing.csv")
    other = tmp_path / "list.txt"
    other.write_text("x")
    with pytest.raises(FCDInputError, match=r"list.txt: expected a dataset folder or a .csv/.tsv manifest"):
        load_dataset(other)
    assert os.path.exists(other)


def test_a_manifest_that_is_not_utf8_is_one_clear_error(tmp_path):
    # A spreadsheet saved as Windows-1252 CSV: "é" is byte 0xe9, not UTF-8. Both manifest
    # readers share FCDDetectLib.io.manifest_table, so both name the file instead of a traceback.
    from FCDDetectLib.cohort.discovery import discover_subjects

    manifest = tmp_path / "cohort.csv"
    manifest.write_bytes("subject,label,flair\nRené,fcd,r.nii.gz\n".encode("cp1252"))
    with pytest.raises(FCDInputError, match=r"cohort\.csv: not UTF-8 text \(byte \d+\); save it as CSV UTF-8"):
        load_manifest(manifest)
    with pytest.raises(FCDInputError, match=r"cohort\.csv: not UTF-8 text"):
        discover_subjects(manifest, modalities=["flair"])
