"""Tiny cohorts for the training tests: real NIfTI files in the ds004199 layout.

Each subject has a head-shaped ellipsoid with noise; patients carry a bright blob in
FLAIR (and a faint one in T1) and a FLAIR-grid ROI around it. T1 lies on another grid
than FLAIR (as in ds004199). Volumes are ~30 voxels a side at 4 mm, so a ResNet-18
epoch takes well under a second on one core.

Example:
    >>> root = write_cohort(tmp_path / "cohort", n_fcd=6, n_hc=6)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

# A small model grid for tests: 5 mm, 24 x 28 x 24 voxels.
TEST_SPACING = ["5", "5", "5"]
TEST_SHAPE = ["24", "28", "24"]


def _affine(voxel: float, shape: tuple[int, int, int], shift: float = 0.0) -> np.ndarray:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -np.asarray(shape) * voxel / 2 + shift
    return affine


def _head(shape, rng, blob_world=None, affine=None, blob_gain=0.0):
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    radii = np.asarray(shape) * 0.38
    inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1.0
    image = np.where(inside, 100.0, 2.0) + rng.normal(0, 4.0, shape)
    roi = np.zeros(shape, dtype=np.uint8)
    if blob_world is not None:
        world = grid @ affine[:3, :3].T + affine[:3, 3]
        blob = np.linalg.norm(world - blob_world, axis=-1) <= 9.0
        image[blob] += blob_gain
        roi = blob.astype(np.uint8)
    return image.astype(np.float32), roi


def write_cohort(root: str | Path, n_fcd: int = 6, n_hc: int = 6, seed: int = 0, with_split: bool = False,
                 flair_shape: tuple[int, int, int] = (30, 34, 30), voxel: float = 4.0) -> Path:
    """Write a ds004199-style BIDS cohort (participants.tsv, sub-X/anat/...) and return its root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    t1_shape = tuple(int(round(n * voxel / 4.5)) for n in flair_shape)
    flair_affine = _affine(voxel, flair_shape)
    t1_affine = _affine(4.5, t1_shape, shift=1.5)
    subjects = [(f"sub-{i + 1:05d}", "fcd" if i < n_fcd else "hc") for i in range(n_fcd + n_hc)]
    for index, (subject, group) in enumerate(subjects):
        anat = root / subject / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        blob = None
        if group == "fcd":
            blob = rng.uniform(-20, 20, size=3) + np.array([0.0, 10.0, 5.0])
        flair, roi = _head(flair_shape, rng, blob, flair_affine, blob_gain=150.0)
        t1, _ = _head(t1_shape, rng, blob, t1_affine, blob_gain=60.0)
        acq = "T2sel" if index % 2 else "3D"
        nib.save(nib.Nifti1Image(flair, flair_affine), anat / f"{subject}_acq-{acq}_FLAIR.nii.gz")
        nib.save(nib.Nifti1Image(t1, t1_affine), anat / f"{subject}_acq-iso08_T1w.nii.gz")
        (anat / f"{subject}_acq-{acq}_FLAIR.json").write_text(json.dumps({"MRAcquisitionType": "3D"}))
        if group == "fcd":
            nib.save(nib.Nifti1Image(roi, flair_affine), anat / f"{subject}_acq-{acq}_FLAIR_roi.nii.gz")
        split = "test" if (with_split and group == "fcd" and index % 3 == 0) else "train"
        rows.append({"participant_id": subject, "group": group, "split": split})
    with (root / "participants.tsv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["participant_id", "group", "split"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return root


def write_manifest(cohort: str | Path, path: str | Path, drop_flair: tuple[str, ...] = ()) -> Path:
    """A CSV manifest over a cohort written by :func:`write_cohort`, without FLAIR for ``drop_flair``."""
    cohort = Path(cohort)
    rows = []
    with (cohort / "participants.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            subject = row["participant_id"]
            anat = cohort / subject / "anat"
            flair = next(p for p in anat.glob("*_FLAIR.nii.gz"))
            roi = next(iter(anat.glob("*_FLAIR_roi.nii.gz")), None)
            rows.append({
                "subject": subject, "label": row["group"],
                "t1": str(next(anat.glob("*_T1w.nii.gz"))),
                "flair": "" if subject in drop_flair else str(flair),
                "roi": "" if roi is None or subject in drop_flair else str(roi),
            })
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject", "label", "t1", "flair", "roi"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def train_args(data: str | Path, out: str | Path, *extra: str, epochs: int = 2, folds: int = 2,
               spacing: list[str] = TEST_SPACING) -> list[str]:
    """``fcd train`` arguments for a fast CPU run on a tiny cohort."""
    return ["train", "--data", str(data), "--out", str(out), "--depth", "18", "--modality", "flair",
            "--folds", str(folds), "--max-epochs", str(epochs), "--device", "cpu", "--seed", "3",
            "--batch-size", "4", "--spacing", *spacing, "--shape", *TEST_SHAPE, "--no-progress", *extra]


# `fcd synth --size tiny` subjects are 6 mm, ~216 mm across: an 8 mm grid holds the head.
SYNTH_SPACING = ["8", "8", "8"]


def write_synth(root: str | Path, subjects: int = 12, seed: int = 0) -> Path:
    """A cohort from the project's generator (``fcd synth --size tiny``), ds004199 layout."""
    import subprocess

    done = subprocess.run(cli_command(["synth", "--out", str(root), "--subjects", str(subjects), "--size", "tiny",
                                       "--seed", str(seed), "--overlays", "0", "--quiet"]),
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return Path(root)


def shared_train_args(cohort: str | Path, out: str | Path, *extra: str) -> list[str]:
    """The options of the shared run (and of the resume test's interrupted run)."""
    return train_args(cohort, out, *extra, spacing=SYNTH_SPACING)



def cli_command(args: list[str]) -> list[str]:
    """``fcd ARGS`` as a subprocess command line (the package is installed in the venv)."""
    import sys

    return [sys.executable, "-m", "FCDDetectLib.cli", *args]


def cli_env() -> dict[str, str]:
    """One thread, so that an interrupted and an uninterrupted run compute identically."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


_SHARED: dict[str, tuple[Path, Path]] = {}


def shared_run(root: str | Path) -> tuple[Path, Path]:
    """(cohort, run folder) of one 2-fold, 2-epoch FLAIR run on ``fcd synth`` data, trained once per session.

    Runs ``fcd train`` in a subprocess under :func:`cli_env`, exactly like the resume test's
    interrupted run, so that it serves as that test's uninterrupted reference.
    """
    import subprocess

    key = str(root)
    if key not in _SHARED:
        root = Path(root)
        cohort = write_synth(root / "cohort", subjects=12, seed=0)
        out = root / "run"
        done = subprocess.run(cli_command(shared_train_args(cohort, out)), env=cli_env(), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        _SHARED[key] = (cohort, out)
    return _SHARED[key]
