"""Files of a synthetic cohort beyond its images: brain masks, and the disk space a cohort needs.

Brain masks (``--brain-mask``, or half of the brain-extracted subjects of ``--randomize``) are
not raw BIDS data, so they go where BIDS puts derived files, which the validator leaves alone:
``derivatives/synth-brainmask/sub-X/[ses-Y/]anat/sub-X_[ses-Y_]acq-<acq>_space-<T1w|FLAIR>_desc-brain_mask.nii.gz``,
one per image, on that image's grid (``space-`` names the image). Pass one to
``fcd detect --brain-mask`` or a manifest's ``brain_mask`` column.

:func:`check_disk_space` refuses, before anything is written, a cohort that would not fit:
the size is estimated from the grids the options give (the head's box plus the field-of-view
margins at the voxel sizes the options draw, all sessions, stored bytes, a gzip ratio measured
on ``fcd synth`` images) and compared with the free space beside ``--out``.

Example:
    >>> estimate_bytes(10, "small", SynthVariant()) < estimate_bytes(10, "full", SynthVariant())
    True
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from FCDDetectLib.choices import MODALITIES
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic
from FCDDetectLib.io.byte_sizes import human_size
from FCDDetectLib.io.image_io import Image, save_image

from FCDTrainLib.data.synth.variants import SynthVariant

MASK_PIPELINE = "synth-brainmask"
_HEAD_MM = (190.0, 230.0, 210.0)
"""The synthetic head's box (MNI152 head plus 6 mm on each side, mm), rounded up."""
_BYTES = {"int16": 2, "12bit": 2, "unit": 4}
_STYLE_SAMPLES = 64
_GZIP_RATIO = 0.6
"""Compressed / raw bytes of noisy head images, rounded up (measured on fcd synth --size small cohorts: 0.53
standard, 0.39 randomised)."""
_SAFETY = 1.3
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


def _image_bytes(style, size: str) -> float:
    """Raw bytes of a style's T1w and FLAIR: the head box plus the mean margin, at the sequences' voxels."""
    total = 0.0
    for key in MODALITIES:
        margin = sum(style.margin_mm[key]) / 2
        count = 1.0
        for extent, zoom in zip(_HEAD_MM, style.sequence(key).zooms[size], strict=True):
            count *= (extent + 2 * margin) / zoom + 1
        total += count * _BYTES[style.storage]
    return total


def estimate_bytes(n_subjects: int, size: str, variant: SynthVariant) -> int:
    """Estimated bytes of a cohort on disk (see the module docstring): every session's T1w and FLAIR.

    The styles are drawn as the cohort draws them (:func:`~FCDTrainLib.data.synth.randomize.random_style`,
    or the standard protocol with the family's changes), 64 times with a fixed seed, and their
    mean size is taken: the same distribution the cohort will have, without making an image.
    """
    import numpy as np

    from FCDTrainLib.data.synth.protocols import PROTOCOLS
    from FCDTrainLib.data.synth.randomize import random_style
    from FCDTrainLib.data.synth.scan_style import family_style, standard_style

    rng = np.random.default_rng(0)
    if variant.randomize:
        styles = [random_style(rng, size) for _ in range(_STYLE_SAMPLES)]
    else:
        base = standard_style(PROTOCOLS["new"], {}, 0.02)
        styles = [family_style(base, rng, flair_2d=variant.flair_2d, rescale=variant.rescale,
                               separate_grids=variant.separate_grids) for _ in range(_STYLE_SAMPLES)]
    per_subject = float(np.mean([_image_bytes(style, size) for style in styles]))
    return int(n_subjects * variant.n_sessions * per_subject * _GZIP_RATIO * _SAFETY)


def check_disk_space(out: Path, n_subjects: int, size: str, variant: SynthVariant) -> None:
    """FCDInputError (one line) when the cohort would not fit on the disk that holds ``out``."""
    need = estimate_bytes(n_subjects, size, variant)
    where = Path(out).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise FCDInputError(
            f"synth: {out}: the cohort needs about {human_size(need)} ({n_subjects} subjects x {variant.n_sessions} "
            f"session(s) at --size {size}{', randomised' if variant.randomize else ''}), but only {human_size(free)} "
            f"is free on {where}; write fewer subjects or choose another --out")
