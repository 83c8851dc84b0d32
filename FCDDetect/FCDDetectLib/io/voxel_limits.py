"""Bounds every reader checks before it reads voxels: the voxel count, the geometry and the float32 range.

Example:
    >>> from FCDDetectLib.io.voxel_limits import MAX_VOXELS, check_voxel_count
    >>> MAX_VOXELS == 512**3
    True
    >>> check_voxel_count((10, 10, 10), "scan.nii.gz")
"""

from __future__ import annotations

import numpy as np

from FCDDetectLib.errors import FCDInputError

__all__ = ["MAX_VOXELS", "MAX_VOXEL_MM", "MAX_WORLD_MM", "check_geometry", "check_voxel_count", "to_float32"]

MAX_VOXELS: int = 512**3
"""Largest input volume any reader accepts (134 M voxels, 512 MiB as float32), checked from the header
before the voxels are read: a 0.4 mm isotropic scan of a 20 cm head is 500^3. A decompression bomb
(a small .nii.gz that expands to 1200^3) or a header that claims 2000^3 is refused with one line."""

MAX_VOXEL_MM: float = 100.0
"""Largest voxel size accepted (mm). Clinical MRI slices are at most about 10 mm thick; 100 mm is ten times that,
so only a broken header (1e17 mm) is refused, before any grid is built from it (one tried to allocate 7.4 PB)."""

MAX_WORLD_MM: float = 1e4
"""Largest distance (mm) of any corner of the scan from the world origin: scanner coordinates lie within about
1 m of the isocentre; 10 m is far beyond any scanner. A 1e17 mm translation would also cost float64 its
precision (1e17 + 4 mm steps are 16 mm apart), distorting every map silently."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_geometry(affine: np.ndarray, shape: tuple[int, ...], label: str) -> None:
    """Refuse a voxel -> world affine no scanner writes: voxels over :data:`MAX_VOXEL_MM`, corners beyond
    :data:`MAX_WORLD_MM` (checked before anything is resampled).

    Example:
        >>> check_geometry(np.diag([1.0, 1.0, 1.0, 1.0]), (10, 10, 10), "scan.nii.gz")
        >>> check_geometry(np.diag([1e17, 1.0, 1.0, 1.0]), (10, 10, 10), "scan.nii.gz")
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: scan.nii.gz: voxel size 1e+17 mm along axis 1 is more than 100 mm; the header's geometry is broken (fix its pixdim / qform / sform)
    """
    affine = np.asarray(affine, dtype=np.float64)
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    for axis, size in enumerate(sizes, start=1):
        if size > MAX_VOXEL_MM:
            raise FCDInputError(f"{label}: voxel size {size:.3g} mm along axis {axis} is more than {MAX_VOXEL_MM:g} mm; "
                                "the header's geometry is broken (fix its pixdim / qform / sform)")
    last = np.asarray([max(int(n) - 1, 0) for n in shape[:3]], dtype=np.float64)
    corners = np.array([[i, j, k] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    farthest = float(np.abs(world).max())
    if farthest > MAX_WORLD_MM:
        raise FCDInputError(f"{label}: the scan lies {farthest:.3g} mm from the world origin, more than "
                            f"{MAX_WORLD_MM:g} mm (no scanner is that large); the header's translation is broken "
                            "(fix its qoffset / sform)")


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
