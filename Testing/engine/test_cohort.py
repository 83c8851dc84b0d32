"""Cohort detection: discovery (BIDS, CSV, folder), one model over many subjects, resume, stop, bad subjects."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.cohort.runner import process_subject, run_cohort
from FCDDetectLib.cohort.summary import SUMMARY_COLUMNS, summary_row
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.errors import FCDInputError

from Testing.builders.cohort_fixtures import AFFINE, SHAPE, cohort_scan
from Testing.builders.ds004199_replica import build_replica
from Testing.builders.format_fixtures import write_dicom_series, write_mha, write_nrrd
from Testing.builders.geometry_fixtures import write_nifti


def _summary(out) -> list[dict]:
    with (out / "summary.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SUMMARY_COLUMNS
        return list(reader)


def test_bids_cohort_matches_single_detection_and_logs_bad_subjects(bids, bundle, tmp_path):
    subjects = discover_subjects(bids, ["flair"])
    assert [s.subject_id for s in subjects] == ["sub-00001", "sub-00002", "sub-00003", "sub-00004"]
    assert subjects[0].roi.name == "sub-00001_acq-T2sel_FLAIR_roi.nii.gz" and subjects[1].roi is None
    out = tmp_path / "out"
    seen = []
    rows = run_cohort(bundle, subjects, out, workers=2, device="cpu", progress=lambda d, t, r: seen.append((d, t)))
    assert seen[-1] == (4, 4)
    status = {r["subject"]: r for r in rows}
    assert [status[s]["status"] for s in sorted(status)] == ["done", "done", "error", "error"]
    assert "sub-00003_acq-T2sel_FLAIR.nii.gz: not a readable NIfTI image" in status["sub-00003"]["error"]
    assert "sub-00004: no sub-00004/anat/sub-00004_*_FLAIR.nii.gz" in status["sub-00004"]["error"]
    table = {r["subject"]: r for r in _summary(out)}
    assert table["sub-00003"]["status"] == "error" and table["sub-00003"]["error"] == status["sub-00003"]["error"]
    # the same files and numbers as a single `fcd detect`
    single = detect(bundle, [subjects[0].images[0]], roi=subjects[0].roi, device="cpu")
    stored = json.loads((out / "sub-00001" / "result.json").read_text(encoding="utf-8"))
    assert stored["probability"] == pytest.approx(single.probability, abs=1e-6)
    assert stored["heat_score"] == pytest.approx(single.heat_score, abs=1e-5)
    assert float(table["sub-00001"]["heat_score"]) == pytest.approx(single.heat_score, abs=1e-5)
    np.testing.assert_allclose(nib.load(out / "sub-00001" / "heatmap.nii.gz").get_fdata(), single.heatmap, atol=1e-6)
    assert not (out / "sub-00003").exists()


def test_resume_skips_finished_subjects_and_stop_leaves_the_rest_pending(bids, bundle, tmp_path):
    subjects = discover_subjects(bids, ["flair"])[:2]
    out = tmp_path / "out"
    calls = []
    rows = run_cohort(bundle, subjects, out, device="cpu", should_stop=lambda: len(calls) >= 1,
                      progress=lambda d, t, r: calls.append(r["subject"]))
    assert [r["status"] for r in rows] == ["done", "pending"]
    assert [r["status"] for r in _summary(out)] == ["done", "pending"]
    first = (out / "sub-00001" / "result.json").stat().st_mtime_ns
    rows = run_cohort(bundle, subjects, out, device="cpu")
    assert [r["status"] for r in rows] == ["resumed", "done"]
    assert (out / "sub-00001" / "result.json").stat().st_mtime_ns == first
    assert rows[0]["probability"] == pytest.approx(json.loads((out / "sub-00001" / "result.json").read_text(encoding="utf-8"))["probability"])
    # another method is not a finished subject
    rows = run_cohort(bundle, subjects[:1], out, device="cpu", method="gradcam++")
    assert rows[0]["status"] == "done"


def test_manifest_with_every_format_and_one_worker_equals_two(bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_nrrd(data / "a.nrrd", cohort_scan(1), AFFINE)
    write_mha(data / "b.mha", cohort_scan(2), AFFINE)
    write_dicom_series(data / "c_dicom", cohort_scan(3), AFFINE)
    write_nifti(data / "d.nii.gz", cohort_scan(4), AFFINE)
    manifest = data / "cohort.csv"
    manifest.write_text("subject,flair\na,a.nrrd\nb,b.mha\nc,c_dicom\nd,d.nii.gz\ne,missing.nii.gz\n")
    subjects = discover_subjects(manifest, ["flair"])
    one = run_cohort(bundle, subjects, tmp_path / "one", device="cpu", workers=1)
    two = run_cohort(bundle, subjects, tmp_path / "two", device="cpu", workers=3)
    assert [r["status"] for r in one] == ["done"] * 4 + ["error"]
    assert "missing.nii.gz: file not found" in one[-1]["error"]
    for a, b in zip(one, two, strict=True):
        assert a["subject"] == b["subject"] and a["status"] == b["status"]
        assert a["probability"] == b["probability"]  # same thread does the maths: bit-identical


def test_folder_of_images_and_process_subject_hook(bundle, tmp_path):
    folder = tmp_path / "images"
    write_nifti(folder / "p01.nii.gz", cohort_scan(1), AFFINE)
    write_nrrd(folder / "p02.nrrd", cohort_scan(2), AFFINE)
    write_dicom_series(folder / "p03", cohort_scan(3), AFFINE)
    subjects = discover_subjects(folder, ["flair"])
    assert [s.subject_id for s in subjects] == ["p01", "p02", "p03"]
    row = process_subject(bundle, subjects[1], tmp_path / "shard", device="cpu")
    assert row["status"] == "done" and (tmp_path / "shard" / "p02" / "heatmap.nii.gz").exists()
    assert process_subject(bundle, subjects[1], tmp_path / "shard", device="cpu")["status"] == "resumed"
    with pytest.raises(FCDInputError, match="takes 2 .t1, flair.; use a BIDS folder or a CSV manifest"):
        discover_subjects(folder, ["t1", "flair"])


def test_ds004199_layout_is_discovered_without_the_trainer(tmp_path):
    root = build_replica(tmp_path / "ds004199")
    subjects = discover_subjects(root, ["t1", "flair"])
    assert len(subjects) == 170 and not [s for s in subjects if s.error]
    odd = next(s for s in subjects if s.subject_id == "sub-00048")
    assert odd.roi.name == "sub-00048_acq-32ch10_FLAIR_roi.nii.gz"
    assert odd.images[1].name.endswith("_FLAIR.nii.gz") and odd.images[0].name.endswith("_T1w.nii.gz")


def test_cli_cohort_summary_and_exit_code(bids, bundle_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["detect", "--model", str(bundle_path), "--data", str(bids), "--out", str(out), "--device", "cpu",
                 "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 1
    printed = json.loads(captured.out)
    assert printed["done"] == 2 and printed["error"] == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: 2 of 4 subjects failed")
    assert (out / "sub-00002" / "result.json").exists()


def test_cli_dicom_out_needs_a_dicom_input(bundle_path, tmp_path, capsys):
    image = write_nifti(tmp_path / "scan.nii.gz", cohort_scan(1), AFFINE)
    code = main(["detect", "--model", str(bundle_path), "--image", str(image), "--out", str(tmp_path / "out"),
                 "--dicom-out", str(tmp_path / "pacs"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: --dicom-out:") and "scan.nii.gz is not a DICOM series folder" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "pacs").exists()


def test_cli_dicom_in_dicom_out(bundle_path, tmp_path, capsys):
    write_dicom_series(tmp_path / "study", cohort_scan(1), AFFINE, series_uid="1.2.3.4", description="FLAIR 3D", prefix="A")
    write_dicom_series(tmp_path / "study", cohort_scan(2), AFFINE, series_uid="1.2.3.5", description="T1", prefix="B")
    code = main(["detect", "--model", str(bundle_path), "--image", str(tmp_path / "study"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--dicom-out", str(tmp_path / "pacs")])
    err = capsys.readouterr().err
    assert code == 2 and "holds 2 series" in err and "'FLAIR 3D'" in err and not (tmp_path / "out").exists()
    code = main(["detect", "--model", str(bundle_path), "--image", str(tmp_path / "study"), "--series", "FLAIR 3D",
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--dicom-out", str(tmp_path / "pacs")])
    assert code == 0
    assert len(list((tmp_path / "pacs" / "overlay").glob("*.dcm"))) == SHAPE[2]
    assert (tmp_path / "pacs" / "heatmap-pm.dcm").exists()
    assert json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))["inputs"] == [str(tmp_path / "study")]


def test_top_cluster_is_read_from_the_result_or_clusters_json(tmp_path):
    cluster = {"id": 1, "peak": 0.93, "volume_mm3": 412.0, "peak_ras": [12.0, -30.5, 8.0]}
    row = summary_row("s1", {"probability": 0.9, "clusters": [cluster, {"id": 2}]}, tmp_path, "done")
    assert json.loads(row["top_cluster"]) == cluster
    (tmp_path / "clusters.json").write_text(json.dumps({"threshold": 0.5, "clusters": [cluster]}))
    assert json.loads(summary_row("s1", {"probability": 0.9}, tmp_path, "resumed")["top_cluster"]) == cluster
    assert summary_row("s1", {"probability": 0.9, "clusters": []}, tmp_path, "done")["top_cluster"] is None
    assert summary_row("s1", None, None, "error", "x")["top_cluster"] is None
