"""``fcd detect --data ... --executor ray``: a real local Ray cluster against the local cohort run.

Ray workers load the model once each and detect their shard; the summary (every column but
``seconds``) and each subject's files must equal the local executor's. Both run with one torch
thread, so the floats are the same computation and compared exactly.
"""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.cohort.runner import run_cohort

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


def _rows(out) -> list[dict]:
    with (out / "summary.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_ray_cohort_summary_equals_the_local_one(bids, bundle, bundle_path, tmp_path, ray_cluster):  # noqa: F811
    import torch

    subjects = discover_subjects(bids, ["flair"])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_cohort(bundle, subjects, tmp_path / "local", device="cpu")
    finally:
        torch.set_num_threads(previous)
    code = main(["detect", "--model", str(bundle_path), "--data", str(bids), "--out", str(tmp_path / "ray"),
                 "--device", "cpu", "--executor", "ray", "--workers", "2", "--cpus-per-worker", "1"])
    assert code == 1  # two subjects have bad input, as in the local run
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    for row in local + remote:
        row["output"] = row["output"].rsplit("/", 1)[-1]
    assert remote == local
    assert [r["status"] for r in remote] == ["done", "done", "error", "error"]
    for subject in ("sub-00001", "sub-00002"):
        np.testing.assert_array_equal(nib.load(tmp_path / "ray" / subject / "heatmap.nii.gz").get_fdata(),
                                      nib.load(tmp_path / "local" / subject / "heatmap.nii.gz").get_fdata())
    # a second submission finds every good subject finished
    assert main(["detect", "--model", str(bundle_path), "--data", str(bids), "--out", str(tmp_path / "ray"),
                 "--device", "cpu", "--executor", "ray", "--workers", "2"]) == 1
    with (tmp_path / "ray" / "summary.csv").open(newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["resumed", "resumed", "error", "error"]


def test_ray_cohort_bad_cluster_input_is_one_error_line(bids, bundle_path, tmp_path, ray_cluster, capsys):  # noqa: F811
    out = tmp_path / "out"
    assert main(["detect", "--model", str(bundle_path), "--data", str(bids), "--out", str(out),
                 "--executor", "ray", "--gpus-per-worker", "4"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --gpus-per-worker 4: no node of the Ray cluster has that many GPUs (largest: 0 on 1 node(s))"]
    assert not out.exists()
    assert main(["detect", "--model", str(bundle_path), "--image", str(bids), "--out", str(out),
                 "--executor", "ray"]) == 2
    assert "only for a cohort" in capsys.readouterr().err
