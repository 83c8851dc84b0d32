"""Dataset discovery in the ds004199 layout: the full replica and every bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.data.bids_loader import load_bids
from FCDTrainLib.data.dataset_loader import load_dataset
from FCDTrainLib.data.records import FLAG_2D_FLAIR, FLAG_ROI_ACQ_MISMATCH

from Testing.builders.ds004199_replica import DATA, build_replica


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return build_replica(tmp_path_factory.mktemp("ds") / "ds004199")


def test_replica_counts(replica):
    dataset = load_dataset(replica)
    assert len(dataset.subjects) == 170
    assert sum(s.roi is not None for s in dataset.subjects) == 85
    assert sum(s.label == 1 for s in dataset.subjects) == 85
    test_patients = [s for s in dataset.subjects if s.split == "test"]
    assert len(test_patients) == 28 and all(s.label == 1 for s in test_patients)
    # Every patient has its ROI, no control has one (independent count from FILES.txt).
    files = (DATA / "FILES.txt").read_text(encoding="utf-8").split()
    roi_subjects = {f.split("/")[0] for f in files if f.endswith("_roi.nii.gz")}
    assert {s.subject_id for s in dataset.subjects if s.roi} == roi_subjects
    with (DATA / "participants.tsv").open(encoding="utf-8-sig") as handle:
        groups = {row["participant_id"]: row["group"].strip() for row in csv.DictReader(handle, delimiter="\t")}
    assert {s.subject_id: ("fcd" if s.label else "hc") for s in dataset.subjects} == groups


def test_sub_00048_roi_with_other_acq_label(replica):
    subject = load_dataset(replica).subject("sub-00048")
    assert subject.roi.name == "sub-00048_acq-32ch10_FLAIR_roi.nii.gz"
    assert subject.images["flair"].name == "sub-00048_acq-T2sel_FLAIR.nii.gz"
    assert FLAG_ROI_ACQ_MISMATCH in subject.flags
    # sub-00068 has a real acq-32ch10 FLAIR, and its ROI matches it.
    other = load_dataset(replica).subject("sub-00068")
    assert other.roi.name == "sub-00068_acq-32ch10_FLAIR_roi.nii.gz" and FLAG_ROI_ACQ_MISMATCH not in other.flags


def test_2d_flair_subjects_flagged(replica):
    dataset = load_dataset(replica)
    with (DATA / "sidecars.tsv").open() as handle:
        expected = {row["path"].split("/")[0] for row in csv.DictReader(handle, delimiter="\t")
                    if row["path"].endswith("_FLAIR.json") and row["MRAcquisitionType"] == "2D"}
    assert len(expected) == 7
    assert {s.subject_id for s in dataset.subjects if FLAG_2D_FLAIR in s.flags} == expected


def test_protocol_from_file_names(replica):
    dataset = load_dataset(replica)
    s = dataset.subject("sub-00001")
    assert s.protocol == "iso08+T2sel" and s.acquisitions == {"t1": "iso08", "flair": "T2sel"}
    assert len({s.protocol for s in dataset.subjects}) == 11
    assert all(s.images["t1"].name.endswith("_T1w.nii.gz") for s in dataset.subjects)


def test_2d_flag_from_header_without_sidecar(tmp_path):
    root = _mini_bids(tmp_path, flair_zooms=(0.7, 0.7, 3.6))
    for sidecar in root.rglob("*.json"):
        if sidecar.name != "dataset_description.json":
            sidecar.unlink()
    assert FLAG_2D_FLAIR in load_bids(root).subject("sub-01").flags
    assert FLAG_2D_FLAIR not in load_bids(_mini_bids(tmp_path / "iso", (1.0, 1.0, 1.2))).subject("sub-01").flags


def _save(path: Path, affine: np.ndarray, shape=(6, 7, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.arange(np.prod(shape), dtype=np.int16).reshape(shape), affine), str(path))


def _oblique(zooms) -> np.ndarray:
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-1, -1, 1]) @ np.diag(zooms)  # LPS-like, oblique, anisotropic
    affine[:3, 3] = [30.0, 20.0, -10.0]
    return affine


def _mini_bids(root: Path, flair_zooms=(1.0, 1.0, 1.0)) -> Path:
    """Two subjects: sub-01 (fcd, ROI on an oblique LPS FLAIR grid), sub-02 (hc)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "participants.tsv").write_text("participant_id\tgroup\tsplit\nsub-01\tfcd\ttest\nsub-02\thc\tn/a\n")
    for sub in ("sub-01", "sub-02"):
        anat = root / sub / "anat"
        _save(anat / f"{sub}_acq-mp2_T1w.nii.gz", _oblique((0.8, 0.8, 0.8)))
        _save(anat / f"{sub}_acq-fl_FLAIR.nii.gz", _oblique(flair_zooms))
        (anat / f"{sub}_acq-fl_FLAIR.json").write_text(json.dumps({"MRAcquisitionType": "3D"}))
    _save(root / "sub-01/anat/sub-01_acq-fl_FLAIR_roi.nii.gz", _oblique(flair_zooms))
    return root


def test_mini_bids_oblique_grids(tmp_path):
    dataset = load_bids(_mini_bids(tmp_path))
    one, two = dataset.subject("sub-01"), dataset.subject("sub-02")
    assert (one.label, two.label, one.split, two.split) == (1, 0, "test", None)
    assert one.roi is not None and two.roi is None


def test_no_participants_tsv(tmp_path):
    root = _mini_bids(tmp_path)
    (root / "participants.tsv").unlink()
    with pytest.raises(FCDInputError, match="no participants.tsv"):
        load_dataset(root)


def test_subject_listed_without_images(tmp_path):
    root = _mini_bids(tmp_path)
    shutil.rmtree(root / "sub-02")
    with pytest.raises(FCDInputError, match=r"^sub-02: listed in participants.tsv but has no images"):
        load_dataset(root)


def test_subject_missing_flair(tmp_path):
    root = _mini_bids(tmp_path)
    (root / "sub-02/anat/sub-02_acq-fl_FLAIR.nii.gz").unlink()
    with pytest.raises(FCDInputError, match=r"^sub-02: no FLAIR image"):
        load_dataset(root)


def test_roi_grid_differs_from_flair(tmp_path):
    root = _mini_bids(tmp_path)
    shifted = _oblique((1.0, 1.0, 1.0))
    shifted[:3, 3] += [0.0, 0.0, 2.0]
    _save(root / "sub-01/anat/sub-01_acq-fl_FLAIR_roi.nii.gz", shifted)
    with pytest.raises(FCDInputError, match=r"sub-01_acq-fl_FLAIR_roi.nii.gz: ROI grid .* differs from its FLAIR"):
        load_dataset(root)
    _save(root / "sub-01/anat/sub-01_acq-fl_FLAIR_roi.nii.gz", _oblique((1.0, 1.0, 1.0)), shape=(6, 7, 6))
    with pytest.raises(FCDInputError, match="differs from its FLAIR"):
        load_dataset(root)


def test_unknown_group_and_missing_column(tmp_path):
    root = _mini_bids(tmp_path)
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tfcd\nsub-02\tmaybe\n")
    with pytest.raises(FCDInputError, match=r"sub-02 group: unknown label 'maybe'"):
        load_dataset(root)
    (root / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tfcd\n")
    with pytest.raises(FCDInputError, match=r"participants.tsv: missing column 'group'"):
        load_dataset(root)


def test_unreadable_image(tmp_path):
    root = _mini_bids(tmp_path)
    (root / "sub-02/anat/sub-02_acq-mp2_T1w.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(FCDInputError, match=r"sub-02_acq-mp2_T1w.nii.gz: T1w is not a readable NIfTI"):
        load_dataset(root)


def test_missing_dataset_path(tmp_path):
    with pytest.raises(FCDInputError, match="dataset not found"):
        load_dataset(tmp_path / "nowhere")
