"""Files of a synthetic cohort beyond its images: brain masks, and the disk space a cohort needs.

Brain masks (``--brain-mask``, or half of the brain-extracted subjects of ``--randomize``) are
not raw BIDS data, so they go where BIDS puts derived files, which the validator leaves alone:
``derivatives/synth-brainmask/sub-X/[ses-Y/]anat/sub-X_[ses-Y_]acq-<acq>_space-<T1w|FLAIR>_desc-brain_mask.nii.gz``,
one per image, on that image's grid (``space-`` names the image). Pass one to
``fcd detect --brain-mask`` or a manifest's ``brain_mask`` column.

:func:`check_disk_space` refuses, before anything is written, a cohort that would not fit:
the size is estimated from the grids the options give (the head's box plus the field-of-view
margins at the finest voxel size of the options, all sessions, stored bytes, a gzip ratio
measured on ``fcd synth`` images) and compared with the free space beside ``--out``.

Example:
    >>> estimate_bytes(10, "small", SynthVariant()) < estimate_bytes(10, "full", SynthVariant())
    True
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic
from FCDDetectLib.io.image_io import Image, save_image

from FCDTrainLib.data.synth.variants import SynthVariant

MASK_PIPELINE = "synth-brainmask"
_HEAD_MM = (190.0, 230.0, 210.0)
"""The synthetic head's box (MNI152 head plus 6 mm on each side, mm), rounded up."""
_FINEST_MM = {"tiny": 4.0, "small": 2.0, "full": 0.7}
"""The finest voxel edge any option gives per size (the randomised 2D in-plane minimum, rounded)."""
_TYPICAL_MM = {"tiny": (5.5, 5.5, 6.5), "small": (2.6, 2.6, 3.0), "full": (0.9, 0.9, 1.0)}
_MARGIN_MM = {"standard": 8.0, "randomize": 21.0}
"""Mean field-of-view margin per side: 8 mm in the standard cohort, the middle of 2-40 mm when randomised."""
_GZIP_RATIO = 0.75
"""Compressed / raw bytes of a noisy int16 or float32 head image (measured 0.45-0.70 on fcd synth output)."""
_SAFETY = 1.25
"""Headroom on the estimate (sidecars, ROIs, masks, overlays, filesystem blocks)."""


def write_brain_masks(root: Path, folder: str, prefix: str, sequences: dict[str, Any], masks: dict[str, Image]) -> None:
    """Write each image's brain mask (if any) under ``root/derivatives/synth-brainmask`` (see the module docstring)."""
    if not masks:
        return
    base = root / "derivatives" / MASK_PIPELINE
    description = base / "dataset_description.json"
    if not description.exists():
        write_json_atomic(description, {
            "Name": "Brain masks of the synthetic cohort", "BIDSVersion": "1.6.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "FCDTrainLib.data.synth"}]})
    for key, mask in masks.items():
        sequence = sequences[key]
        name = f"{prefix}_acq-{sequence.acq}_space-{sequence.suffix}_desc-brain_mask.nii.gz"
        save_image(base / folder / "anat" / name, mask.array, mask.affine)


def _voxels(zooms: tuple[float, float, float], margin: float) -> float:
    count = 1.0
    for extent, zoom in zip(_HEAD_MM, zooms, strict=True):
        count *= (extent + 2 * margin) / zoom + 1
    return count


def estimate_bytes(n_subjects: int, size: str, variant: SynthVariant) -> int:
    """Estimated bytes of a cohort on disk (see the module docstring): every session's T1w and FLAIR.

    A randomised cohort's images are counted at the finest voxel the randomisation gives for
    ``size`` in two axes and the typical one in the third, stored as float32 (the widest type).
    """
    margin = _MARGIN_MM["randomize" if variant.randomize or variant.separate_grids else "standard"]
    if variant.randomize:
        finest = _FINEST_MM[size]
        zooms = (finest, finest, _TYPICAL_MM[size][2])
        per_image = _voxels(zooms, margin) * 4
    else:
        per_image = _voxels(_TYPICAL_MM[size], margin) * (4 if variant.rescale == "unit" else 2)
    return int(n_subjects * variant.n_sessions * 2 * per_image * _GZIP_RATIO * _SAFETY)


def check_disk_space(out: Path, n_subjects: int, size: str, variant: SynthVariant) -> None:
    """FCDInputError (one line) when the cohort would not fit on the disk that holds ``out``."""
    need = estimate_bytes(n_subjects, size, variant)
    where = Path(out).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise FCDInputError(
            f"synth: {out}: the cohort needs about {need / 1e9:.1f} GB ({n_subjects} subjects x {variant.n_sessions} "
            f"session(s) at --size {size}{', randomised' if variant.randomize else ''}), but only {free / 1e9:.1f} GB "
            f"are free on {where}; write fewer subjects or choose another --out")
