"""``fcd evaluate --modality-contributions --reports``: a T1 + FLAIR run's test subjects.

A real 2-fold, 2-epoch T1 + FLAIR run on the tiny ds004199-style cohort; what is checked is
the cohort bookkeeping (every test patient's ROI components, TP/FN grouping, the CSV, the
box plot, the paired test recomputed from the CSV) and the batch reports with resume.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest
from FCDDetectLib.cli import main
from pypdf import PdfReader
from scipy.stats import wilcoxon

from Testing.builders.train_fixtures import train_args, write_cohort

pytestmark = pytest.mark.slow  # trains a real network


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort-saliency")
    cohort = write_cohort(root / "cohort", n_fcd=6, n_hc=6, seed=4)
    out = root / "run"
    assert main(train_args(cohort, out, "--modality", "t1+flair", epochs=1)) == 0
    return out


def test_contributions_and_reports_over_the_test_folds(run, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--run", str(run), "--modality-contributions", "--reports", "--nt-samples", "2",
            "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    tests = [s for f in folds for s in f["test"]]
    assert summary["reports"]["written"] == len(tests)
    for subject in tests:
        pdf = out / "reports" / subject / "report.pdf"
        pages = len(PdfReader(str(pdf)).pages)
        assert pages >= 2 and len(list(pdf.parent.glob("report-page-*.png"))) == pages

    folder = out / "modality-contributions"
    with (folder / "contributions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    patients = {r["subject"] for r in rows}
    assert patients == {s for s in tests if int(s.split("-")[1]) <= 6}  # the FCD patients of the test folds
    assert {r["modality"] for r in rows} == {"t1", "flair"}
    for row in rows:
        assert row["group"] == ("TP" if float(row["probability"]) >= 0.5 else "FN")
        assert float(row["positive"]) >= 0 >= float(row["negative"])
    assert (folder / "contributions.png").stat().st_size > 10_000
    stored = json.loads((folder / "contributions.json").read_text(encoding="utf-8"))
    assert stored["patients"]["TP"] + stored["patients"]["FN"] == len(patients)

    pairs = defaultdict(dict)
    for row in rows:
        pairs[row["subject"], row["region"]][row["modality"]] = float(row["positive"]) - float(row["negative"])
    flair = np.array([v["flair"] for v in pairs.values()])
    t1 = np.array([v["t1"] for v in pairs.values()])
    test = stored["paired_test"]["all"]["total"]
    assert test["n"] == len(pairs)
    assert test["p_value"] == pytest.approx(float(wilcoxon(flair, t1).pvalue))

    # resume: nothing left to do, the same summary
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reports"]["written"] == 0
    assert again["paired_test"] == stored["paired_test"]


def test_bad_settings_write_nothing(run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--run", str(run), "--modality-contributions", "--noise-sd", "-1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "noise sd" in err[0]
    assert not out.exists()
