"""First-run check (issue 14, item 5): versions, CUDA/device, and whether each bundle loads.

Real bundles are built here: one that loads, one whose weights are truncated, one with
broken metadata (skipped by the listing and reported).
"""

from __future__ import annotations

import importlib.metadata

import pytest
from FCDDetectLib.slicer_support.install_check import check_installation


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    meta = BundleMetadata(depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[24, 24, 24], name="good")
    model = build_resnet(18, in_channels=1, widen_factor=0.25, geometry="medicalnet")
    save_bundle(root / "good.fcdbundle", model, meta)
    bad = save_bundle(root / "truncated.fcdbundle", model, meta)
    weights = next(p for p in bad.iterdir() if p.suffix == ".pt")
    weights.write_bytes(weights.read_bytes()[:200])
    broken = root / "broken.fcdbundle"
    broken.mkdir()
    (broken / "bundle.json").write_text("{not json")
    return root


def test_report_lists_versions_device_and_each_bundle(models):
    report = check_installation([str(models)], slicer_version="5.10.1")
    text = report.text()
    assert report.lines[0] == "Slicer: 5.10.1"
    assert any(line.startswith("Python: ") for line in report.lines)
    assert f"torch: {__import__('torch').__version__}" in report.lines
    assert f"MONAI: {importlib.metadata.version('monai')}" in report.lines
    assert f"captum: {importlib.metadata.version('captum')}" in report.lines
    assert any(line.startswith("CUDA: ") for line in report.lines)
    assert any(line.startswith("device: ") for line in report.lines)
    status = {path.split("/")[-1]: value for path, value in report.bundles.items()}
    assert status["good.fcdbundle"] == "ok"
    assert status["truncated.fcdbundle"].startswith("does not load")
    assert "broken.fcdbundle" in text and "problem(s)" in text
    assert len(report.problems) == 2  # the truncated bundle and the skipped broken one


def test_report_without_models_folder_and_unsafe_folder():
    report = check_installation([], slicer_version=None)
    assert report.lines[0] == "Slicer: not running in Slicer"
    assert "models: no models folder chosen" in report.lines
    unsafe = check_installation(["/"])
    assert any("root" in p for p in unsafe.problems)  # never scanned
