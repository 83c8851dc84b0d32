"""Issue 25, item 6 (engine) and items 7-8: odd inputs of ``fcd detect`` give one line, never a traceback.

Spreadsheet rows with a trailing comma or an extra cell, a cell over 131,072 characters,
a subject called ``summary.csv``, one oddly named file in a folder cohort (that subject
fails, the others run), ``--out`` inside the data folder (a rerun must not take the results
for a failing subject), names over 255 bytes and a link-loop ``--out``, ``--nt-samples``
beyond its bound, SmoothGrad's progress, the batched ``summary.csv`` and
``fcd heat-score --roi-segment``. Every command runs through the real CLI entry (``main``).
"""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.cohort.summary import SummaryWriter, summary_row
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.localized_smoothgrad import MAX_NT_SAMPLES

from Testing.builders.cohort_fixtures import AFFINE, SHAPE, cohort_scan
from Testing.builders.format_fixtures import write_seg_nrrd
from Testing.builders.geometry_fixtures import write_nifti


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for number in (1, 2):
        write_nifti(folder / f"p{number}.nii.gz", cohort_scan(number), AFFINE)
    return folder


def _run(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.replace("\r", "\n").splitlines() if line.strip()]
    return code, [line for line in lines if not line.lstrip().startswith("fcd detect")], captured.out


def _one_error(code: int, lines: list[str]) -> str:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, lines)
    return lines[0]


def test_spreadsheet_rows_trailing_commas_extra_cells_and_huge_cells(scans, tmp_path):
    table = tmp_path / "cohort.csv"
    table.write_text("subject,flair,\np1,scans/p1.nii.gz,\np2,scans/p2.nii.gz,,,\n,,\n")  # a spreadsheet export
    assert [s.images[0].name for s in discover_subjects(table)] == ["p1.nii.gz", "p2.nii.gz"]
    table.write_text("subject,flair\np1,scans/p1.nii.gz,scans/p2.nii.gz\n")
    with pytest.raises(FCDInputError, match=r"cohort.csv: line 2 has 3 cells but the header names 2 columns"):
        discover_subjects(table)
    table.write_text("subject,flair\np1," + "a" * 140_000 + "\n")
    with pytest.raises(FCDInputError, match="a cell is longer than 131,072 characters"):
        discover_subjects(table)
    table.write_text("subject,flair\np1,scans/p1\0.nii.gz\n")
    with pytest.raises(FCDInputError, match="NUL byte"):
        discover_subjects(table)


def test_odd_subject_names_fail_alone_and_results_inside_the_data_folder_are_no_subject(
        bundle_path, scans, tmp_path, capsys):
    write_nifti(scans / "odd name (copy).nii.gz", cohort_scan(3), AFFINE)
    table = tmp_path / "cohort.csv"
    long_id = "x" * 300
    table.write_text(f"subject,flair\nsummary.csv,scans/p1.nii.gz\np2,scans/p2.nii.gz\n{long_id},scans/p1.nii.gz\n"
                     f"p3,scans/{'y' * 300}.nii.gz\n")
    code, lines, stdout = _run(capsys, "detect", "--model", str(bundle_path), "--data", str(table), "--device", "cpu",
                               "--out", str(tmp_path / "by-table"))
    rows = {row["subject"]: row for row in csv.DictReader((tmp_path / "by-table" / "summary.csv").open())}
    assert code == 1 and rows["p2"]["status"] == "done"
    assert "the name of the run's summary file" in rows["summary.csv"]["error"]
    assert "300 bytes long" in rows[long_id]["error"]
    assert "File name too long" in rows["p3"]["error"] and rows["p3"]["status"] == "error"
    assert (tmp_path / "by-table" / "summary.csv").is_file() and not (tmp_path / "by-table" / long_id[:255]).exists()
    # a folder cohort with --out inside it: the odd file fails alone, the rerun resumes, no "results" subject
    out = scans / "results"
    for run in (1, 2):
        code, lines, stdout = _run(capsys, "detect", "--model", str(bundle_path), "--data", str(scans), "--device",
                                   "cpu", "--out", str(out))
        counts = json.loads(stdout)
        assert code == 1 and counts["subjects"] == 3 and counts["error"] == 1, (run, counts, lines)
        assert counts["done" if run == 1 else "resumed"] == 2
    rows = {row["subject"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == {"p1", "p2", "odd name (copy)"} and "rename it" in rows["odd name (copy)"]["error"]
    code, lines, _ = _run(capsys, "detect", "--model", str(bundle_path), "--data", str(scans), "--device", "cpu",
                          "--out", str(scans))
    assert "the output folder is the data folder itself" in _one_error(code, lines)


def test_long_names_and_link_loops_are_one_line(bundle_path, scans, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for out, words in ((tmp_path / ("o" * 300), "300 bytes long"), (loop, "link that leads nowhere"),
                       (loop / "deeper", "link that leads nowhere")):
        for source in (["--image", str(scans / "p1.nii.gz")], ["--data", str(scans)]):
            code, lines, _ = _run(capsys, "detect", "--model", str(bundle_path), *source, "--device", "cpu",
                                  "--out", str(out))
            assert words in _one_error(code, lines)
    code, lines, _ = _run(capsys, "detect", "--model", str(bundle_path), "--image", str(tmp_path / ("i" * 300)),
                          "--device", "cpu", "--out", str(tmp_path / "o"))
    assert "File name too long" in _one_error(code, lines) and not (tmp_path / "o").exists()
    code, lines, _ = _run(capsys, "detect", "--model", str(tmp_path / ("m" * 300)), "--image",
                          str(scans / "p1.nii.gz"), "--device", "cpu", "--out", str(tmp_path / "o"))
    _one_error(code, lines)


def test_nt_samples_has_an_upper_bound_and_smoothgrad_shows_progress(monkeypatch):
    with pytest.raises(FCDInputError, match=f"from 1 to {MAX_NT_SAMPLES}"):
        DetectOptions(localized_smoothgrad=True, nt_samples=MAX_NT_SAMPLES + 1)
    DetectOptions(localized_smoothgrad=True, nt_samples=MAX_NT_SAMPLES)
    import torch
    from FCDDetectLib.explain.localized_smoothgrad import classifier_logit, signed_smoothgrad
    from FCDDetectLib.networks.resnets import build_resnet

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    torch.manual_seed(0)
    net = build_resnet(18, 1, widen_factor=0.125).eval()
    grads = signed_smoothgrad(net, torch.randn(1, 1, 16, 16, 16), classifier_logit(1), nt_samples=6, noise_stdev=0.1)
    assert grads.shape == (1, 16, 16, 16)
    shown = terminal.getvalue()  # a bar of 6 copies (how many refreshes it shows depends on the machine's speed)
    assert "SmoothGrad:" in shown and "0/6 [" in shown and "copy" in shown


def test_the_summary_is_written_in_batches_not_after_every_subject(tmp_path, monkeypatch):
    """1000 subjects a second apart; each real write of summary.csv is charged 0.05 s on a test clock."""
    import FCDDetectLib.cohort.summary as summary_module

    now = [0.0]
    real_write = summary_module.write_summary

    def costly_write(rows, path):
        real_write(rows, path)
        now[0] += 0.05

    monkeypatch.setattr(summary_module, "write_summary", costly_write)
    path = tmp_path / "summary.csv"
    writer = SummaryWriter(path, [summary_row(f"s{i}", None, None, "pending") for i in range(1000)],
                           budget=0.01, clock=lambda: now[0], first_after=0.0)
    writer.flush()
    for index in range(1000):
        now[0] += 1.0
        writer.update(summary_row(f"s{index}", {"probability": 0.5}, None, "done"))
    writer.flush()
    assert 150 <= writer.writes <= 220, writer.writes  # a write every ~5 subjects, not 1000 writes
    assert writer.seconds <= 0.011 * now[0]  # the summary's share of the run: about 1%
    table = list(csv.DictReader(path.open()))
    assert len(table) == 1000 and all(row["status"] == "done" for row in table)  # the final flush has them all


def test_heat_score_reads_a_segment_by_name_or_label_value(tmp_path, capsys):
    heat = np.zeros(SHAPE, np.float32)
    heat[8:12, 9:13, 6:9] = 1.0
    heatmap = write_nifti(tmp_path / "heatmap.nii.gz", heat + 0.01 * cohort_scan(1) / 100.0, AFFINE)
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[8:12, 9:13, 6:9] = 1
    lesion[1:3, 1:3, 1:3] = 2  # a second segment far from the heat
    seg = write_seg_nrrd(tmp_path / "Segmentation.seg.nrrd", lesion, AFFINE,
                         [{"name": "lesion", "value": 1}, {"name": "corner", "value": 2}])
    scores = {}
    for choice in ("lesion", "1", "corner"):
        code, lines, stdout = _run(capsys, "heat-score", "--heatmap", str(heatmap), "--roi", str(seg),
                                   "--roi-segment", choice)
        assert code == 0, lines
        scores[choice] = json.loads(stdout)["heat_score"]
    assert scores["lesion"] == pytest.approx(scores["1"]) and scores["lesion"] > scores["corner"] + 1.0
    code, lines, _ = _run(capsys, "heat-score", "--heatmap", str(heatmap), "--roi", str(seg))
    assert "holds 2 segments" in _one_error(code, lines)
