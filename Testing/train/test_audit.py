"""Protocol audit: the ds004199 confound, a balanced cohort, the numbers checked by hand, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.data.audit import audit_dataset
from FCDTrainLib.data.dataset_loader import load_dataset
from FCDTrainLib.data.records import Dataset, Subject

from Testing.builders.ds004199_replica import build_replica, small_cohort


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return build_replica(tmp_path_factory.mktemp("ds") / "ds004199")


def _dataset(pairs: list[tuple[int, str | None]]) -> Dataset:
    subjects = [Subject(f"s{i}", label, {"flair": Path(f"s{i}.nii.gz")}, protocol=protocol)
                for i, (label, protocol) in enumerate(pairs)]
    return Dataset(Path("."), subjects)


def test_ds004199_flair_confound_numbers(replica):
    audit = audit_dataset(load_dataset(replica), factor="flair")
    assert audit.table["T2sel"] == {"fcd": 41, "control": 85}
    assert audit.table["tse3dvfl"] == {"fcd": 36, "control": 0}
    assert sum(r["fcd"] for r in audit.table.values()) == 85 and len(audit.table) == 10
    # By hand: T2sel predicts control (85 right, 41 wrong); tse3dvfl keeps a patient majority with one
    # left out (36 right); the 8 single-subject protocols have no other subject (8 x 0.5).
    assert audit.loo_accuracy == pytest.approx((85 + 36 + 4) / 170)
    assert audit.in_sample_accuracy == pytest.approx((85 + 36 + 8) / 170)
    assert audit.chance == 0.5 and audit.confounded
    assert audit.exclusive == {"fcd": 44, "control": 0}
    assert "every control has protocol T2sel" in audit.warnings[0]
    assert "44 of 85 fcd subjects have a protocol no control has" in audit.warnings[0]
    assert audit.flags == {"2d-flair": 7, "roi-acq-mismatch": 1}


def test_ds004199_protocol_table_and_stratification_keys(replica):
    dataset = load_dataset(replica)
    audit = audit_dataset(dataset)
    assert audit.confounded and audit.protocols()[0] == "iso08+T2sel"
    assert audit.subject_protocol["sub-00048"] == "iso08+T2sel"
    assert set(audit.subject_protocol) == {s.subject_id for s in dataset.subjects}
    assert sum(sum(row.values()) for row in audit.table.values()) == 170


def test_balanced_protocols_not_confounded():
    pairs = [(label, protocol) for protocol in ("a", "b", "c") for label in (0, 1, 0, 1)]
    audit = audit_dataset(_dataset(pairs))
    assert not audit.confounded and audit.warnings == []
    # Each protocol holds 2 + 2: leaving one out leaves the other label in the majority -> 0 right.
    assert audit.loo_accuracy == 0.0 and audit.in_sample_accuracy == 0.5


def test_perfect_confound_and_unknown_protocols():
    audit = audit_dataset(_dataset([(1, "old")] * 5 + [(0, "new")] * 5))
    assert audit.loo_accuracy == 1.0 and audit.confounded
    unknown = audit_dataset(_dataset([(1, None), (0, None), (1, None)]))
    assert "no protocol information" in unknown.warnings[-1]
    with pytest.raises(FCDInputError, match="unknown factor"):
        audit_dataset(_dataset([(1, "x"), (0, "y")]), factor="site")


def test_synthetic_confound_option_is_detected(tmp_path):
    root = small_cohort(tmp_path / "confounded", n_subjects=12, seed=2, confound=True)
    audit = audit_dataset(load_dataset(root), factor="flair")
    assert audit.table["T2sel"]["control"] == 6 and audit.exclusive["control"] == 0
    assert audit.confounded
    balanced = audit_dataset(load_dataset(small_cohort(tmp_path / "balanced", n_subjects=8, seed=2, protocol_mix=0.5)))
    assert not balanced.confounded


def test_audit_cli_json_and_table(replica, capsys):
    assert main(["audit", "--data", str(replica)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"]["subjects"] == 170 and report["audit"]["confounded"] is True
    assert main(["audit", "--data", str(replica), "--by", "flair", "--format", "table"]) == 0
    text = capsys.readouterr().out
    assert "T2sel" in text and "WARNING: protocol alone predicts the label" in text
    assert "0.735 leave-one-out accuracy" in text


def test_audit_cli_bad_input(tmp_path, capsys):
    assert main(["audit", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no participants.tsv" in err[0]
