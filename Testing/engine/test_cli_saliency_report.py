"""``fcd detect --localized-smoothgrad --report``: the files, result.json's section, bad input.

A two-modality (T1 + FLAIR, T1 on another grid) untrained ResNet-18 bundle: the numbers do not
matter here, the files, grids, sections and errors do (the values are tested in
test_localized_saliency.py and the pages in test_report.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.maps.clusters import find_clusters
from pypdf import PdfReader

from Testing.builders.geometry_fixtures import write_nifti
from Testing.builders.hostile_fixtures import head

SHAPE = (40, 44, 36)


def _head(shape=SHAPE, seed=0) -> np.ndarray:
    return head(shape, seed)  # the shared textured ellipsoid


def _save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    return write_nifti(path, array, np.diag([3.0, 3.0, 3.0, 1.0]) if affine is None else affine)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("case")
    meta = BundleMetadata(name="tiny2", depth=18, geometry="medicalnet", modalities=["t1", "flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=[24, 28, 24],
                          training={"source": "test"}, metrics={"roc_auc": 0.5})
    bundle = save_bundle(folder / "tiny2.fcdbundle", build_resnet(18, 2, geometry="medicalnet",
                                                                 widen_factor=0.125), meta)
    flair = _save(folder / "sub-00007_FLAIR.nii.gz", _head())
    t1_affine = np.diag([3.5, 3.5, 3.5, 1.0])
    t1_affine[:3, 3] = 2.0
    t1 = _save(folder / "sub-00007_T1w.nii.gz", _head((34, 38, 31), seed=1), t1_affine)
    roi = np.zeros(SHAPE, np.uint8)
    roi[18:24, 20:26, 15:20] = 1
    roi[8:11, 10:13, 8:11] = 1  # a second component
    roi_path = _save(folder / "roi.nii.gz", roi)
    return bundle, t1, flair, roi_path, folder


def _detect(case, out, *extra):
    bundle, t1, flair, roi, _ = case
    return main(["detect", "--model", str(bundle), "--image", str(t1), "--image", str(flair), "--device", "cpu",
                 "--out", str(out), *extra])


def test_localized_smoothgrad_and_report_files(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert _detect(case, out, "--roi", str(case[3]), "--localized-smoothgrad", "--nt-samples", "3", "--report") == 0
    stored = json.loads((out / "result.json").read_text(encoding="utf-8"))
    section = stored["modality_contributions"]
    assert section["nt_samples"] == 3 and section["noise_sd"] == 0.05 and section["target"] == "fcd-logit"
    assert [r["name"] for r in section["regions"]] == ["roi-1", "roi-2"]  # the ROI's components, largest first
    t1_grid = nib.load(case[1])
    for modality in ("t1", "flair"):
        signed = nib.load(out / f"smoothgrad_{modality}.nii.gz")
        assert signed.shape == t1_grid.shape  # the first input's grid
        np.testing.assert_allclose(signed.affine, t1_grid.affine)
        data = np.asarray(signed.dataobj)
        assert (data > 0).any() and (data < 0).any()  # signed
    for region in section["regions"]:
        shares = [m["share"] for m in region["modalities"]]
        assert sum(shares) == pytest.approx(1.0)
        assert all(m["positive"] >= 0 >= m["negative"] for m in region["modalities"])
    heat = nib.load(out / "heatmap.nii.gz")
    clusters = find_clusters(np.asarray(heat.dataobj), heat.affine, image=np.asarray(t1_grid.dataobj))
    pages = len(PdfReader(str(out / "report.pdf")).pages)
    assert pages == 1 + len(clusters.clusters) + 1
    assert sorted(p.name for p in out.glob("report-page-*.png")) == [f"report-page-{n}.png"
                                                                     for n in range(1, pages + 1)]


@pytest.mark.parametrize(("extra", "message"), [
    (["--localized-smoothgrad", "--nt-samples", "0"], "nt_samples must be an integer from 1 to"),
    (["--localized-smoothgrad", "--noise-sd", "-0.1"], "noise sd must be a finite number >= 0"),
])
def test_bad_smoothgrad_settings(case, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert _detect(case, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists()


def test_roi_on_a_grid_that_does_not_overlap(case, tmp_path, capsys):
    far = np.diag([3.0, 3.0, 3.0, 1.0])
    far[:3, 3] = 900.0
    roi = _save(tmp_path / "far_roi.nii.gz", np.ones((5, 5, 5), np.uint8), far)
    out = tmp_path / "out"
    assert _detect(case, out, "--roi", str(roi), "--localized-smoothgrad", "--nt-samples", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "far_roi.nii.gz" in err[0] and "does not overlap" in err[0]
    assert not out.exists()


def test_report_into_a_folder_that_cannot_be_written(case, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    out = blocker / "out"
    assert _detect(case, out, "--report") == 2
    err = capsys.readouterr().err.strip().splitlines()
    # The shared output-folder check (issue 9) refuses it before detection, naming the blocking file.
    assert len(err) == 1 and err[0].startswith("error:") and "not-a-folder" in err[0] and "cannot" in err[0]
    assert blocker.read_text(encoding="utf-8") == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
