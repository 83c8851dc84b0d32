"""Header-only facts about image files: grid (shape, affine), thick-slice test, sidecars.

Voxel sizes and the same-grid test are the engine's (:mod:`FCDDetectLib.grid.geometry`).

Reading a NIfTI header needs no voxel data, so a whole ds004199 tree is checked in a
second or two.

Example:
    >>> is_thick_slice((0.7, 0.7, 4.0)), is_thick_slice((3.0, 3.0, 3.0))
    (True, False)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from FCDDetectLib.errors import FCDInputError

THICK_SLICE_MM = 3.0
"""A voxel edge at least this long (mm) ..."""
THICK_SLICE_RATIO = 1.8
"""... and at least this many times the shortest edge marks a thick-slice (2D) acquisition."""


def read_grid(path: Path, what: str = "image") -> tuple[tuple[int, ...], np.ndarray]:
    """``(shape[:3], affine)`` of a NIfTI file from its header; FCDInputError naming ``path`` if unreadable."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        shape = tuple(int(n) for n in image.shape[:3])
        affine = np.asarray(image.affine, dtype=np.float64)
    except FileNotFoundError:
        raise FCDInputError(f"{path}: {what} file not found") from None
    except Exception as error:  # nibabel raises many types for damaged files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FCDInputError(f"{path}: {what} is not a readable NIfTI image ({reason})") from None
    return shape, affine


def is_thick_slice(zooms) -> bool:
    """True when one voxel edge is >= 3 mm and >= 1.8x the shortest (a 2D, thick-slice acquisition)."""
    z = sorted(float(v) for v in zooms)
    return z[-1] >= THICK_SLICE_MM and z[-1] >= THICK_SLICE_RATIO * z[0]


def read_sidecar(image_path: Path) -> dict:
    """The BIDS JSON sidecar beside ``image_path`` (``x.nii.gz`` -> ``x.json``), ``{}`` when absent.

    A sidecar that exists but is not JSON raises FCDInputError naming it.
    """
    name = image_path.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else image_path.stem
    sidecar = image_path.with_name(stem + ".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise FCDInputError(f"{sidecar}: JSON sidecar is not valid JSON ({error})") from None
    return data if isinstance(data, dict) else {}
