"""A small cohort for the cohort tests: head phantoms on a 3 mm grid, a BIDS folder, a tiny bundle.

The fixtures that use them (``bundle_path``, ``bundle``, ``bids``) are in
``Testing/engine/conftest.py``, shared by the local and the Ray cohort tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from Testing.builders.geometry_fixtures import centred_affine, head_phantom, write_nifti

SHAPE = (20, 22, 16)
AFFINE = np.array([[-3.0, 0, 0, 30.0], [0, -3.0, 0, 33.0], [0, 0, 3.0, -24.0], [0, 0, 0, 1]])


def cohort_scan(seed: int) -> np.ndarray:
    """A head phantom on :data:`SHAPE` (int16), different for each ``seed``."""
    affine = centred_affine((3.0, 3.0, 3.0), SHAPE)
    return np.round(head_phantom(affine, SHAPE, radii_mm=(24.0, 27.0, 20.0), seed=seed)).astype(np.int16)


def tiny_cohort_bundle(folder: Path) -> Path:
    """A seeded, untrained ResNet-18 (width 1/8) bundle for FLAIR on a 16^3 grid of 4 mm."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(3)
    meta = BundleMetadata(name="tiny", depth=18, geometry="medicalnet", modalities=["flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=[16, 16, 16])
    return save_bundle(folder / "tiny.fcdbundle", build_resnet(18, 1, widen_factor=0.125), meta)


def write_bids_cohort(root: Path) -> Path:
    """Four subjects in the ds004199 layout: two good (one with an ROI), one corrupt FLAIR, one without FLAIR."""
    rows = ["participant_id\tgroup"]
    for number in range(1, 5):
        subject = f"sub-{number:05d}"
        rows.append(f"{subject}\t{'fcd' if number % 2 else 'hc'}")
        anat = root / subject / "anat"
        anat.mkdir(parents=True)
        write_nifti(anat / f"{subject}_acq-iso08_T1w.nii.gz", cohort_scan(number + 10), AFFINE)
        if number == 3:
            (anat / f"{subject}_acq-T2sel_FLAIR.nii.gz").write_text("not an image")
        elif number != 4:
            write_nifti(anat / f"{subject}_acq-T2sel_FLAIR.nii.gz", cohort_scan(number), AFFINE)
    roi = np.zeros(SHAPE, np.uint8)
    roi[8:12, 9:13, 6:9] = 1
    write_nifti(root / "sub-00001" / "anat" / "sub-00001_acq-T2sel_FLAIR_roi.nii.gz", roi, AFFINE)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root
