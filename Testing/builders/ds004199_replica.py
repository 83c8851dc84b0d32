"""Test fixtures: a replica of the OpenNeuro ds004199 layout and small synthetic cohorts.

``build_replica`` writes every file name of ds004199's FILES.txt (Testing/data/ds004199/,
the dataset's published text metadata, CC0): each NIfTI as a tiny image whose voxel sizes
follow its JSON sidecar (0.7 x 0.7 x 4 mm for the 2D FLAIRs), each ROI on its FLAIR's grid
(sub-00048's ``acq-32ch10`` ROI on its ``acq-T2sel`` FLAIR), the JSON sidecars with the fields
kept in sidecars.tsv, and the real participants.tsv.

``small_cohort`` writes a synthetic cohort (``FCDTrainLib.data.synth``) for other tests, e.g.
training: ``small_cohort(tmp_path / "cohort", n_subjects=6, size="tiny")``.

Example:
    >>> root = build_replica(tmp_path / "ds004199")  # doctest: +SKIP
    >>> len(load_dataset(root).subjects)  # doctest: +SKIP
    170
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "ds004199"
_SHAPE = (5, 6, 4)


def _sidecars() -> dict[str, dict]:
    with (DATA / "sidecars.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    out = {}
    for row in rows:
        path = row.pop("path")
        facts: dict = {"MRAcquisitionType": row["MRAcquisitionType"], "ProtocolName": row["ProtocolName"],
                       "ManufacturersModelName": row["ManufacturersModelName"]}
        for key in ("SliceThickness", "MagneticFieldStrength"):
            facts[key] = float(row[key])
        out[path] = facts
    return out


def _affine(sidecar: dict, seed: int) -> np.ndarray:
    thickness = float(sidecar.get("SliceThickness", 1.0))
    zooms = (0.7, 0.7, thickness) if sidecar.get("MRAcquisitionType") == "2D" else (thickness,) * 3
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [-1.0 - seed % 7, -2.0, -3.0]
    return affine


def build_replica(dest: str | Path) -> Path:
    """Write the ds004199 replica (about 600 tiny files) under ``dest``; returns ``dest``."""
    import nibabel as nib

    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    names = [line.strip() for line in (DATA / "FILES.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    sidecars = _sidecars()
    shutil.copyfile(DATA / "participants.tsv", root / "participants.tsv")
    rng = np.random.default_rng(0)
    flair_grid: dict[str, np.ndarray] = {}
    images = [n for n in names if n.endswith(".nii.gz") and not n.endswith("_roi.nii.gz")]
    rois = [n for n in names if n.endswith("_roi.nii.gz")]
    for number, name in enumerate(images):
        sidecar = sidecars.get(name.replace(".nii.gz", ".json"), {})
        affine = _affine(sidecar, number)
        data = rng.integers(0, 1000, _SHAPE).astype(np.int16)
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), str(target))
        if name.endswith("_FLAIR.nii.gz"):
            flair_grid[name.split("/")[0]] = affine
        if sidecar:
            target.with_name(target.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar), encoding="utf-8")
    for name in rois:
        subject = name.split("/")[0]
        mask = np.zeros(_SHAPE, np.uint8)
        mask[2, 2, 1:3] = 1
        nib.save(nib.Nifti1Image(mask, flair_grid[subject]), str(root / name))
    for name in names:
        if not re.match(r"sub-", name) and (DATA / name).is_file() and not (root / name).exists():
            shutil.copyfile(DATA / name, root / name)
    return root


def small_cohort(dest: str | Path, n_subjects: int = 6, seed: int = 0, size: str = "tiny", **options) -> Path:
    """A synthetic cohort for tests (``size="tiny"``: ~6 mm voxels, ~0.3 s/subject); returns its folder."""
    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    options.setdefault("overlays", 0)
    synth_cohort(dest, n_subjects, seed=seed, size=size, **options)
    return Path(dest)
