"""``fcd detect`` and ``fcd heat-score`` on the command line: outputs and every bad input.

Each bad input must exit 2 with one ``error:`` line naming the problem, print no
traceback and leave the output folder unwritten.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main

SHAPE = (24, 28, 24)


def _head(shape=(40, 44, 36), seed=0) -> np.ndarray:
    """An ellipsoid 'head' with texture, so cropping and z-scoring have something to do."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.8
    return (inside * (100 + 10 * rng.standard_normal(shape))).astype(np.float32)


def _save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    affine = np.diag([3.0, 3.0, 3.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    """An untrained ResNet-18 with a fixed initialisation (its Grad-CAM is not constant here)."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("bundle")
    meta = BundleMetadata(
        name="tiny",
        depth=18,
        geometry="paper",
        modalities=["flair"],
        target_spacing=[4.0, 4.0, 4.0],
        target_shape=list(SHAPE),
    )
    return save_bundle(folder / "tiny.fcdbundle", build_resnet(18, 1), meta)


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("scan")
    image = _save(folder / "flair.nii.gz", _head())
    roi = np.zeros((40, 44, 36), np.uint8)
    roi[18:24, 20:26, 15:20] = 1
    return image, _save(folder / "roi.nii.gz", roi)


def test_detect_writes_heatmap_on_input_grid_and_result(bundle_path, scan, tmp_path, capsys):
    image, roi = scan
    out = tmp_path / "out"
    code = main(["detect", "--model", str(bundle_path), "--image", str(image), "--roi", str(roi),
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert printed == stored
    for key in ("probability", "prediction", "threshold", "heat_score", "method", "model", "seconds",
                "layer", "top_cluster", "n_clusters", "detected", "fp_clusters", "peak_in_roi", "dice"):
        assert key in stored
    for name in ("clusters.nii.gz", "clusters.json", "clusters.csv"):
        assert (out / name).is_file(), name
    assert stored["prediction"] == ("fcd" if stored["probability"] >= stored["threshold"] else "control")
    heat = nib.load(out / "heatmap.nii.gz")
    source = nib.load(image)
    assert heat.shape == source.shape
    np.testing.assert_allclose(heat.affine, source.affine)
    data = heat.get_fdata(dtype=np.float32)
    assert heat.get_data_dtype() == np.float32
    assert data.min() >= 0.0 and data.max() <= 1.0

    # fcd heat-score on the written heatmap reproduces detect's Heat-Score
    assert main(["heat-score", "--heatmap", str(out / "heatmap.nii.gz"), "--roi", str(roi)]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["heat_score"] == pytest.approx(stored["heat_score"], rel=1e-4, abs=1e-4)
    assert scored["roi_voxels"] == 6 * 6 * 5
    assert scored["roi_resampled"] is False


def test_detect_png_writes_the_overlay(bundle_path, scan, tmp_path, capsys):
    """`fcd detect --png`: overlay.png beside the heatmap, drawn by the engine's renderer."""
    import matplotlib.image as mpimg

    image, roi = scan
    out = tmp_path / "png"
    assert main(["detect", "--model", str(bundle_path), "--image", str(image), "--roi", str(roi),
                 "--device", "cpu", "--out", str(out), "--png"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [
        "clusters.csv", "clusters.json", "clusters.nii.gz", "heatmap.nii.gz", "overlay.png", "result.json"]
    assert mpimg.imread(out / "overlay.png").shape[2] in (3, 4)


def _bad_inputs(folder: Path, image: Path, roi: Path, bundle: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a word the error line must contain)."""
    text = folder / "notes.nii.gz"
    text.write_text("this is not an image")
    flat = _save(folder / "flat.nii.gz", np.zeros((20, 20), np.float32))
    four_d = _save(folder / "4d.nii.gz", np.ones((10, 10, 10, 3), np.float32))
    nan = _head()
    nan[5, 5, 5] = np.nan
    nan_path = _save(folder / "nan.nii.gz", nan)
    inf = _head()
    inf[6, 6, 6] = np.inf
    inf_path = _save(folder / "inf.nii.gz", inf)
    constant = _save(folder / "constant.nii.gz", np.full((20, 20, 20), 7.0, np.float32))
    empty_roi = _save(folder / "empty_roi.nii.gz", np.zeros((40, 44, 36), np.uint8))
    far = np.eye(4) * 3.0
    far[3, 3] = 1
    far[:3, 3] = 5000.0
    far_roi = _save(folder / "far_roi.nii.gz", np.ones((5, 5, 5), np.uint8), far)
    corrupt = folder / "corrupt.fcdbundle"
    corrupt.mkdir()
    (corrupt / "bundle.json").write_text("{not json")
    (corrupt / "weights.pt").write_bytes(b"garbage")
    missing_field = folder / "missing.fcdbundle"
    missing_field.mkdir()
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    del meta["modalities"]
    (missing_field / "bundle.json").write_text(json.dumps(meta))
    (missing_field / "weights.pt").write_bytes((bundle / "weights.pt").read_bytes())
    base = ["--model", str(bundle), "--device", "cpu"]
    return {
        "missing file": (base + ["--image", str(folder / "nope.nii.gz")], "nope.nii.gz"),
        "not an image": (base + ["--image", str(text)], "notes.nii.gz"),
        "2D image": (base + ["--image", str(flat)], "flat.nii.gz"),
        "4D image": (base + ["--image", str(four_d)], "4d.nii.gz"),
        "NaN voxels": (base + ["--image", str(nan_path)], "nan.nii.gz"),
        "Inf voxels": (base + ["--image", str(inf_path)], "inf.nii.gz"),
        "constant image": (base + ["--image", str(constant)], "constant.nii.gz"),
        "empty ROI": (base + ["--image", str(image), "--roi", str(empty_roi)], "empty_roi.nii.gz"),
        "ROI outside grid": (base + ["--image", str(image), "--roi", str(far_roi)], "far_roi.nii.gz"),
        "too many images": (base + ["--image", str(image), "--image", str(image)], "expects 1"),
        "cluster threshold above 1": (base + ["--image", str(image), "--cluster-threshold", "1.5"], "threshold"),
        "negative cluster size": (base + ["--image", str(image), "--min-cluster-mm3", "-1"], "negative"),
        "corrupt bundle": (["--model", str(corrupt), "--image", str(image)], "corrupt.fcdbundle"),
        "bundle missing field": (["--model", str(missing_field), "--image", str(image)], "modalities"),
        "missing bundle": (["--model", str(folder / "none.fcdbundle"), "--image", str(image)], "none.fcdbundle"),
    }


def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(bundle_path, scan, tmp_path, capsys):
    image, roi = scan
    cases = _bad_inputs(tmp_path, image, roi, bundle_path)
    for name, (arguments, needle) in cases.items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        code = main(["detect", *arguments, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert err.startswith("error: ") and "\n" not in err, (name, err)
        assert needle.lower() in err.lower(), (name, err)
        assert not out.exists(), name


def test_fewer_images_than_modalities(tmp_path, scan, capsys):
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    meta = BundleMetadata(name="two", depth=18, geometry="paper", modalities=["t1", "flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=list(SHAPE))
    bundle = save_bundle(tmp_path / "two.fcdbundle", build_resnet(18, 2), meta)
    code = main(["detect", "--model", str(bundle), "--image", str(scan[0]), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "expects 2" in err and "t1, flair" in err
    assert not (tmp_path / "o").exists()


def test_heat_score_command_bad_roi_exits_2(scan, tmp_path, capsys):
    image, _ = scan
    empty = _save(tmp_path / "empty.nii.gz", np.zeros((40, 44, 36), np.uint8))
    assert main(["heat-score", "--heatmap", str(image), "--roi", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty.nii.gz" in err


def test_real_process_prints_no_traceback(tmp_path):
    """The installed entry point, in its own process: exit code 2, one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "FCDDetectLib.cli", "heat-score", "--heatmap", str(tmp_path / "x.nii.gz"),
         "--roi", str(tmp_path / "y.nii.gz")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and "x.nii.gz" in result.stderr


def test_help_lists_every_command():
    from FCDDetectLib.cli import build_parser

    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # argparse keeps sub-commands here
    assert set(choices) == {"detect", "heat-score", "synth", "audit", "demo", "train", "experiment", "evaluate"}


def test_no_evidence_gives_null_heat_score_not_an_error(scan, tmp_path, capsys):
    """A network with zero classifier weights has a constant Grad-CAM: detect still succeeds,
    the Heat-Score is null with a note; `fcd heat-score` on that heatmap is an error."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    model = build_resnet(18, 1)
    with torch.no_grad():
        model.fc.weight.zero_()
    meta = BundleMetadata(name="blind", depth=18, geometry="paper", modalities=["flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=list(SHAPE))
    bundle = save_bundle(tmp_path / "blind.fcdbundle", model, meta)
    image, roi = scan
    out = tmp_path / "out"
    assert main(["detect", "--model", str(bundle), "--image", str(image), "--roi", str(roi),
                 "--out", str(out)]) == 0
    stored = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert stored["heat_score"] is None and "constant" in stored["heat_score_note"]
    assert stored["roi_voxels"] == 6 * 6 * 5
    capsys.readouterr()
    assert main(["heat-score", "--heatmap", str(out / "heatmap.nii.gz"), "--roi", str(roi)]) == 2
    assert "constant" in capsys.readouterr().err
