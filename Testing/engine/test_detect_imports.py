"""What ``fcd detect`` imports (process latency, issue 15) and the hand-written Grad-CAM.

A ``fcd detect`` process pays every import on every call, so the command must not load
packages it does not use: scikit-learn, nilearn, matplotlib, pandas and captum (each
about a second or more on a 2-core CPU), the DICOM/ITK readers for a NIfTI input, the
cohort module for one scan, or the trainer beyond the ``fcd.commands`` registration.
Seconds are measured in benchmarks/bench_process.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

ABSENT_AFTER_DETECT = (
    "sklearn",
    "nilearn",
    "matplotlib",
    "pandas",
    "captum",
    "SimpleITK",
    "pydicom",
    "highdicom",
    "FCDDetectLib.cohort.runner",
    "FCDDetectLib.cohort.discovery",
    "FCDDetectLib.cohort.summary",
    "FCDDetectLib.io.dicom_series",
    "FCDDetectLib.outputs.dicom_outputs",
    "FCDDetectLib.outputs.dicom_identity",
    "FCDDetectLib.outputs.dicom_seg",
    "FCDDetectLib.outputs.overlay",
)
# The trainer's command registration (entry point fcd.commands) is imported to build the
# parser (its option tables: a few light modules); running detect must add nothing of the
# trainer to that (no synthetic generator, no training loop).
_HARNESS = """
import json, sys
from FCDDetectLib.cli import build_parser, main
build_parser()
registration = {{m for m in sys.modules if m.startswith('FCDTrainLib')}}
code = main(sys.argv[1:])
trainer = sorted(m for m in sys.modules if m.startswith('FCDTrainLib') and m not in registration)
loaded = sorted(m for m in sys.modules if m in {absent!r})
print(json.dumps({{"code": code, "loaded": loaded, "trainer_added": trainer,
                  "generator": any('synth' in m and 'command' not in m for m in registration)}}))
"""


@pytest.fixture(scope="module")
def bundle_and_scan(tmp_path_factory) -> tuple[Path, Path]:
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    folder = tmp_path_factory.mktemp("imports")
    torch.manual_seed(0)
    meta = BundleMetadata(name="tiny", depth=18, geometry="paper", modalities=["flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=[24, 28, 24])
    bundle = save_bundle(folder / "tiny.fcdbundle", build_resnet(18, 1), meta)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (40, 44, 36)], indexing="ij"))
    head = ((grid**2).sum(0) < 0.8) * (100 + 10 * rng.standard_normal((40, 44, 36)))
    scan = folder / "flair.nii.gz"
    nib.save(nib.Nifti1Image(head.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])), scan)
    return bundle, scan


def test_fcd_detect_process_imports_only_what_it_uses(bundle_and_scan, tmp_path):
    bundle, scan = bundle_and_scan
    harness = _HARNESS.format(absent=set(ABSENT_AFTER_DETECT))
    args = ["detect", "--model", str(bundle), "--image", str(scan), "--device", "cpu", "--out", str(tmp_path / "o")]
    result = subprocess.run([sys.executable, "-c", harness, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert (tmp_path / "o" / "heatmap.nii.gz").is_file()
    assert report["loaded"] == []
    assert report["trainer_added"] == []
    assert report["generator"] is False


def test_lean_monai_import_leaves_the_skipped_packages_importable():
    code = (
        "import sys; from FCDDetectLib.networks.lean_monai import import_monai_lean; lean = import_monai_lean(); "
        "absent = [m for m in ('matplotlib', 'pandas', 'sklearn') if m in sys.modules]; "
        "import scipy.stats, monai.transforms, monai.networks.nets; "
        "print(lean, absent, 'scipy.stats' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True [] True"


@pytest.mark.parametrize("geometry", ["medicalnet", "paper"])
def test_hand_written_gradcam_equals_captum_layergradcam(geometry):
    from captum.attr import LayerGradCam
    from FCDDetectLib.explain.cams import _gradcam, clean_model
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(1)
    model = build_resnet(18, in_channels=1, geometry=geometry).eval()
    x = torch.randn(1, 1, 32, 36, 32)
    peaks = []
    for target in (0, 1):  # Grad-CAM's ReLU empties the map of one class or the other
        with clean_model(model), torch.enable_grad():
            ours = _gradcam(model, x.clone().requires_grad_(True), target).detach()
            reference = LayerGradCam(model, model.layer4).attribute(
                x.clone().requires_grad_(True), target=target, relu_attributions=True
            ).detach()
        assert ours.shape == reference.shape
        peaks.append(float(reference.max()))
        # Same operations in float32; only the order of the channel sum may differ.
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6 * max(peaks[-1], 1e-12))
    assert max(peaks) > 0  # at least one map has something in it
