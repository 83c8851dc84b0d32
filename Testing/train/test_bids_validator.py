"""What the BIDS validator accepts: an ``fcd synth`` cohort has no error.

The validator is the Node one (npm ``bids-validator`` 1.15, on Debian's ``nodejs``); the
validator test is skipped, saying so, where it is not installed. CI installs it (``.ci/run``:
``npm install -g bids-validator@1.15.0``), so there it runs. The side files it needs are
checked without it too: every participants.tsv column described in participants.json, the
lesion ROIs listed in ``.bidsignore`` the way ds004199's own ``.bidsignore`` does.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from FCDTrainLib.data.synth.write_cohort import synth_cohort

DS004199_BIDSIGNORE = Path(__file__).parents[1] / "data" / "ds004199" / ".bidsignore"  # as published


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two tiny subjects (one patient with its ROI, one control), the smallest cohort ``fcd synth`` writes."""
    return Path(synth_cohort(tmp_path_factory.mktemp("bids") / "cohort", 2, seed=1, size="tiny", overlays=1).out)


def test_side_files_describe_every_column_and_ignore_the_rois(cohort):
    with open(cohort / "participants.tsv", encoding="utf-8", newline="") as table:
        columns = next(csv.reader(table, delimiter="\t"))
    described = json.loads((cohort / "participants.json").read_text(encoding="utf-8"))
    assert set(columns) <= set(described) and all(described[c]["Description"] for c in columns)
    ignored = (cohort / ".bidsignore").read_text(encoding="utf-8").splitlines()
    assert "*_roi.nii.gz" in ignored and "overlays/" in ignored
    assert set(DS004199_BIDSIGNORE.read_text(encoding="utf-8").split()) <= set(ignored)  # the dataset's own rule
    assert list(cohort.rglob("*_roi.nii.gz"))  # the patient's ROI is there, ignored rather than left out


def test_bids_validator_reports_no_error(cohort):
    if shutil.which("bids-validator") is None:
        pytest.skip("bids-validator is not installed here (npm bids-validator 1.15; CI installs it: .ci/run)")
    done = subprocess.run(["bids-validator", str(cohort), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    errors = [(issue["key"], [f["file"]["relativePath"] for f in issue["files"] if f.get("file")])
              for issue in report["issues"]["errors"]]
    assert errors == []
    warnings = {issue["key"] for issue in report["issues"]["warnings"]}
    # none about the side files this project writes (a synthetic cohort mixes protocols on purpose and
    # names no human authors: INCONSISTENT_PARAMETERS and NO_AUTHORS may stay)
    assert not warnings & {"CUSTOM_COLUMN_WITHOUT_DESCRIPTION", "README_FILE_SMALL", "NOT_INCLUDED"}
