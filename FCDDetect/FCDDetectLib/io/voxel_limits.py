"""Bounds every reader checks before it reads voxels: the voxel count and the float32 range.

Example:
    >>> from FCDDetectLib.io.voxel_limits import MAX_VOXELS, check_voxel_count
    >>> MAX_VOXELS == 512**3
    True
    >>> check_voxel_count((10, 10, 10), "scan.nii.gz")
"""

from __future__ import annotations

import numpy as np

from FCDDetectLib.errors import FCDInputError

__all__ = ["MAX_VOXELS", "check_voxel_count", "to_float32"]

MAX_VOXELS: int = 512**3
"""Largest input volume any reader accepts (134 M voxels, 512 MiB as float32), checked from the header
before the voxels are read: a 0.4 mm isotropic scan of a 20 cm head is 500^3. A decompression bomb
(a small .nii.gz that expands to 1200^3) or a header that claims 2000^3 is refused with one line."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_voxel_count(shape: tuple[int, ...], label: str) -> None:
    """Refuse a volume over :data:`MAX_VOXELS` voxels (from its header, before any voxel is read)."""
    count = int(np.prod([int(n) for n in shape], dtype=np.float64))
    if count > MAX_VOXELS:
        dims = "x".join(str(int(n)) for n in shape)
        raise FCDInputError(
            f"{label}: header declares {dims} = {count:,} voxels, over the reader's bound of "
            f"{MAX_VOXELS:,} (512^3); refused before reading (a corrupt header or a decompression bomb?)"
        )


def to_float32(data: np.ndarray, label: str) -> np.ndarray:
    """``data`` as float32, refusing finite values that float32 cannot hold (no numpy overflow warning)."""
    if data.dtype == np.float32 or data.dtype.kind not in "fc":
        return data.astype(np.float32, copy=False) if data.dtype.kind in "iu" else data
    if data.dtype.kind == "c":
        raise FCDInputError(f"{label}: complex voxels ({data.dtype}); expected a real-valued image")
    finite = np.isfinite(data)
    largest = float(np.abs(data[finite]).max()) if finite.any() else 0.0
    if largest > _FLOAT32_MAX:
        raise FCDInputError(
            f"{label}: {data.dtype} values up to {largest:.3g} do not fit float32 (max {_FLOAT32_MAX:.3g}); "
            "rescale the image"
        )
    return data.astype(np.float32)
