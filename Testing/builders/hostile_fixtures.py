"""Hostile inputs for the reliability tests (and the probe's cases, benchmarks/hostile/): tiny real files.

A tiny bundle (untrained ResNet-18 at width 1/4 on a 4 mm, 24 x 28 x 24 grid), head-like
scans on a 4 mm grid, a malicious pickle whose ``__reduce__`` touches a marker file, and a
helper that runs the real ``fcd`` CLI in a subprocess.

Example:
    >>> bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")  # doctest: +SKIP
    >>> result = run_fcd(["detect", "--model", str(bundle), ...])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

GRID_SPACING = [4.0, 4.0, 4.0]
GRID_SHAPE = [24, 28, 24]


def head(shape: tuple[int, int, int] = (40, 44, 36), seed: int = 0, level: float = 100.0,
         background: float = 0.0) -> np.ndarray:
    """An ellipsoid 'head' with texture (magnitude-MRI-like: dark air, bright head)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.8
    return (background + inside * (level + 0.1 * level * rng.standard_normal(shape))).astype(np.float32)


def save_nifti(path: str | Path, array: np.ndarray, voxel: float = 4.0) -> Path:
    """``array`` as NIfTI with a centred diagonal affine of ``voxel`` mm."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -np.asarray(array.shape) * voxel / 2
    path = Path(path)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), path)
    return path


def tiny_bundle(path: str | Path, input_ranges: dict | None = None, seed: int = 3) -> Path:
    """An untrained ResNet-18 (width 1/4) bundle for 1-channel FLAIR on the 4 mm test grid."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(seed)
    meta = BundleMetadata(name="tiny", depth=18, geometry="paper", modalities=["flair"],
                          target_spacing=list(GRID_SPACING), target_shape=list(GRID_SHAPE),
                          input_ranges=input_ranges or {})
    return save_bundle(path, build_resnet(18, 1, widen_factor=0.25), meta)


class _Planted:
    """Pickles to ``os.system('touch MARKER')``: loading it with a full unpickler runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(path: str | Path, marker: str | Path, zip_format: bool = True) -> Path:
    """Write a malicious checkpoint/weights file at ``path`` (torch zip format or a raw pickle)."""
    import torch

    path = Path(path)
    payload = {"model": _Planted(Path(marker)), "state": {"epoch": 1}}
    if zip_format:
        torch.save(payload, path)
    else:
        with path.open("wb") as handle:
            pickle.dump(payload, handle, protocol=4)
    return path


def fcd_command(args: list[str]) -> list[str]:
    """``fcd ARGS`` as a subprocess command line."""
    return [sys.executable, "-m", "FCDDetectLib.cli", *args]


def run_fcd(args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``fcd ARGS`` in a subprocess (one thread), capture text output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(fcd_command(args), capture_output=True, text=True, timeout=timeout, env=full_env)


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line of ``stderr``; asserts there is nothing else (no traceback, no warning)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]
