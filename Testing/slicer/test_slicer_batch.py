"""Batch detection in Slicer (issue 14, item 4): a folder of synthetic scans, the CLI's
outputs per subject, a summary table node, progress, stop and resume; on slicer-core with a
tiny real bundle. Skipped while the engine has no ``FCDDetectLib.cohort.runner``."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("FCDDetectLib.cohort.runner")

from FCDDetectLib.errors import FCDInputError  # noqa: E402
from FCDDetectLib.mrml.batch_logic import process_folder  # noqa: E402

from Testing.builders.geometry_fixtures import centred_affine, head_phantom, write_nifti  # noqa: E402

SHAPE = (22, 18, 12)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    model = build_resnet(18, in_channels=1, widen_factor=0.25, geometry="medicalnet")
    meta = BundleMetadata(depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[24, 24, 24], name="tiny-flair")
    return save_bundle(tmp_path_factory.mktemp("models") / "tiny-flair.fcdbundle", model, meta)


@pytest.fixture
def cohort(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, name in enumerate(("sub-01", "sub-02", "sub-03")):
        affine = centred_affine((1.5, 1.5, 2.5), SHAPE, centre_world=(float(i), 0.0, 0.0))
        write_nifti(folder / f"{name}.nii.gz", head_phantom(affine, SHAPE, centre_world=(float(i), 0.0, 0.0),
                                                            radii_mm=(12, 11, 12)), affine)
    return folder


def test_every_subject_gets_the_cli_outputs_and_a_summary_row(slicer_app, bundle, cohort, tmp_path):
    seen = []
    out = process_folder(slicer_app.scene, cohort, bundle, tmp_path / "out", device="cpu",
                         progress=lambda done, total, row: seen.append((done, total, row["status"])))
    assert [r["status"] for r in out.rows] == ["done"] * 3 and not out.stopped
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    table = out.table_node.GetTable()
    assert table.GetNumberOfRows() == 3
    probabilities = table.GetColumnByName("probability")
    assert all(0.0 <= probabilities.GetValue(i) <= 1.0 for i in range(3))
    for row in out.rows:
        result = json.loads((tmp_path / "out" / row["subject"] / "result.json").read_text(encoding="utf-8"))
        assert result["probability"] == pytest.approx(row["probability"])
    assert (tmp_path / "out" / "summary.csv").is_file()
    assert out.table_node.GetScene() is slicer_app.scene


def test_stop_leaves_pending_subjects_and_a_second_run_resumes(slicer_app, bundle, cohort, tmp_path):
    calls = []

    def stop_after_first():
        calls.append(1)
        return len(calls) > 1

    first = process_folder(slicer_app.scene, cohort, bundle, tmp_path / "out", device="cpu",
                           should_stop=stop_after_first)
    assert first.stopped and [r["status"] for r in first.rows].count("done") == 1
    second = process_folder(slicer_app.scene, cohort, bundle, tmp_path / "out", device="cpu")
    statuses = sorted(r["status"] for r in second.rows)
    assert statuses == ["done", "done", "resumed"]


def test_bad_folder_is_a_clear_error_before_any_subject(slicer_app, bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = slicer_app.node_ids()
    with pytest.raises(FCDInputError):
        process_folder(slicer_app.scene, empty, bundle, tmp_path / "out")
    assert slicer_app.node_ids() == before
