"""From input volumes to the network's grid (MONAI transforms) and back (through the affines).

Forward (:func:`preprocess`), for the reference (first) image:

1. ``Orientation("RAS")``: permute/flip the voxel axes to the closest RAS order (exact,
   no interpolation). An oblique acquisition stays oblique: the model grid keeps the
   input's rotation, as in every MONAI ``Orientationd`` + ``Spacingd`` pipeline, so no
   rotation is interpolated in and the axes stay those of the acquisition.
2. ``Spacing(spacing)``: linear resampling to the target voxel size, after a Gaussian
   anti-aliasing filter along every axis finer than the target
   (:mod:`FCDDetectLib.grid.antialias`: a 1 mm scan then looks to the network like a scan
   acquired near the model's voxel size, not like a sharper, noisier one).
3. A window of ``shape`` voxels centred on the head's bounding box: ``BorderPad`` (zeros,
   only where the window reaches past the input's field of view) then ``SpatialCrop``.
   The window holds the real image everywhere the input has data (air around the head
   included), so a heatmap maps back wherever the model looked. If the head is larger
   than the window it is cut equally on both sides and :attr:`Preprocessed.warnings` says so.
4. z-score inside the head: ``(x - mean_head) / std_head`` applied to every voxel, so the
   air and the padding become one constant (about -1 to -2) and the head has mean 0, std 1.

Further modalities (e.g. T1 beside a FLAIR reference; separate acquisitions on other
grids) are resampled through world coordinates straight onto the reference's model grid
(MONAI ``SpatialResample`` with ``dst_affine``, linear, zeros outside their field of
view, after the same anti-aliasing), then z-scored inside their own head mask.

Head mask: :func:`~FCDDetectLib.grid.head_mask.head_mask` (its rule is that module's docstring).
Inverse (:func:`to_input_grid`, in :mod:`FCDDetectLib.grid.input_grid`): one linear resampling
of the model-grid volume at the world positions of the reference's voxels, through the two
affines (why not MONAI's ``Compose.inverse``: that module's docstring).

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.io.image_io import Image
    >>> from FCDDetectLib.grid.input_grid import to_input_grid
    >>> from FCDDetectLib.grid.preprocess import preprocess
    >>> vol = np.zeros((40, 40, 30), np.float32); vol[8:32, 6:34, 5:25] = 100
    >>> vol += np.random.default_rng(0).random(vol.shape).astype(np.float32)
    >>> prep = preprocess([Image(vol, np.diag([1.0, 1.0, 1.5, 1.0]))], (2, 2, 2), (24, 24, 24))
    >>> tuple(prep.tensor.shape)
    (1, 24, 24, 24)
    >>> to_input_grid(prep.tensor[0].numpy(), prep).shape
    (40, 40, 30)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.antialias import antialias
from FCDDetectLib.grid.geometry import mask_bounds
from FCDDetectLib.grid.head_mask import head_mask
from FCDDetectLib.io.image_io import Image

__all__ = ["LEFT_RIGHT_AXIS", "Preprocessed", "preprocess"]

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_AXES = "RAS"
LEFT_RIGHT_AXIS = _AXES.index("R")
"""The model grid's left-right axis (0: the grid is in RAS voxel order), the one training flips
(``fcd train --flip``) and a lesion map is mirrored along (``lesion_mirror_axes``)."""


@dataclass
class Preprocessed:
    """Result of :func:`preprocess`.

    ``tensor``: (C, X, Y, Z) float32 on the model grid, channels in input order.
    ``reference``: the first input (the grid heatmaps return to).
    ``model_affine``: 4x4 voxel->RAS affine of the model grid.
    ``head_masks``: (C, X, Y, Z) bool, the head mask of each channel on the model grid
    (the z-score statistics were taken inside it).
    ``intensity_stats``: per channel (mean, std) inside the head before the z-score, so
    ``tensor[c] * std + mean`` is the resampled intensity.
    ``warnings``: e.g. the head did not fit in the model field of view.
    ``head_edge_fraction``: the largest share of one face of the input's field of view
    covered by the head (large when the field of view cuts the head).
    """

    tensor: torch.Tensor
    reference: Image
    model_affine: np.ndarray
    head_masks: np.ndarray
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    intensity_stats: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head_edge_fraction: float = 0.0


def _zscore(channel: np.ndarray, mask: np.ndarray, label: str) -> tuple[np.ndarray, tuple[float, float]]:
    if not mask.any():
        raise FCDInputError(
            f"{label}: no head found on the model grid (image empty or outside the field of view)"
        )
    values = channel[mask].astype(np.float64)
    mean, std = float(values.mean()), float(values.std())
    if std <= 0.0:
        raise FCDInputError(f"{label}: intensity is constant inside the head; cannot z-score")
    return ((channel - mean) / std).astype(np.float32), (mean, std)


def _check_grid(spacing: Sequence[float], shape: Sequence[int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    sp = tuple(float(s) for s in spacing)
    sh = tuple(int(s) for s in shape)
    if len(sp) != 3 or len(sh) != 3 or min(sp) <= 0 or min(sh) <= 0:
        raise FCDInputError(
            f"model grid: need 3 positive spacings and 3 positive sizes, got {spacing} and {shape}"
        )
    return sp, sh


GRID_TOLERANCE = 1e-3
"""Voxels: a resampled size within this of a half voxel rounds up, so 5e-8 of affine noise
(qform vs sform of one matrix) never flips it (MONAI rounds half to even on the exact value)."""


def _spaced_shape(image: torch.Tensor, spacing: tuple[float, ...]) -> list[int]:
    """Size of the ``Spacing(spacing)`` grid of ``image``, as MONAI computes it but noise-proof.

    MONAI (``compute_shape_offset``) takes ``round(extent / spacing + 1)`` with numpy's
    round-half-to-even on the exact float: an extent of 62.5 voxels gives 62 or 63
    depending on the 8th digit of the affine. Here a size within :data:`GRID_TOLERANCE`
    of a half rounds up.
    """
    from monai.data.utils import zoom_affine

    affine = np.asarray(image.affine, dtype=np.float64)
    target = zoom_affine(affine, spacing, diagonal=False)
    dims = image.shape[1:]
    corners = np.asarray(np.meshgrid(*[(0.0, n - 1.0) for n in dims], indexing="ij")).reshape(3, -1)
    corners = np.concatenate([corners, np.ones_like(corners[:1])])
    moved = np.linalg.solve(target, affine) @ corners
    extent = np.ptp(moved[:3] / moved[3], axis=1) + 1.0
    return [max(1, int(np.floor(e + 0.5 + GRID_TOLERANCE))) for e in extent]


def _meta_tensor(array: np.ndarray, affine: np.ndarray):
    from monai.data import MetaTensor

    return MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)[None]),
        affine=torch.as_tensor(affine, dtype=torch.float64),
    )


def preprocess(images: Sequence[Image], spacing: Sequence[float], shape: Sequence[int]) -> Preprocessed:
    """Bring ``images`` (reference first) onto one model grid, z-scored inside the head.

    ``spacing`` in mm and ``shape`` in voxels are the bundle's ``target_spacing`` and
    ``target_shape``. Raises FCDInputError when no head is found or a further image does
    not overlap the reference.

    Example:
        >>> prep = preprocess([flair, t1], (2.0, 2.0, 2.0), (96, 112, 96))  # doctest: +SKIP
        >>> prep.tensor.shape  # doctest: +SKIP
        torch.Size([2, 96, 112, 96])
    """
    from monai.transforms import (
        BorderPad,
        Orientation,
        Spacing,
        SpatialCrop,
        SpatialResample,
    )

    images = list(images)
    if not images:
        raise FCDInputError("images: no input image given")
    sp, sh = _check_grid(spacing, shape)
    reference = images[0]

    orient = Orientation(axcodes=_AXES, labels=_RAS_LABELS)
    space = Spacing(pixdim=sp, mode="bilinear", padding_mode="border")
    with torch.no_grad():
        oriented = orient(_meta_tensor(antialias(reference.array, reference.affine, sp), reference.affine))
        spaced = space(oriented, output_spatial_shape=_spaced_shape(oriented, sp))
        head = head_mask(spaced[0].numpy())
        if not head.any():
            raise FCDInputError("image 1: no head found (no voxel clearly above the background)")
        start, end = mask_bounds(head)
        size = np.array(spaced.shape[1:])
        window = np.floor((start + end - 1) / 2.0 - (np.array(sh) - 1) / 2.0 + 0.5).astype(int)
        before = np.maximum(0, -window)
        after = np.maximum(0, window + np.array(sh) - size)
        pad = BorderPad(
            spatial_border=[int(v) for pair in zip(before, after, strict=True) for v in pair],
            mode="constant",
            value=0,
        )
        crop = SpatialCrop(
            roi_start=(window + before).tolist(), roi_end=(window + before + np.array(sh)).tolist()
        )
        model = crop(pad(spaced))
    model_affine = np.asarray(model.affine, dtype=np.float64)
    faces = [head.take(i, axis=a) for a in range(3) for i in (0, -1)]
    edge_fraction = max(float(face.mean()) for face in faces)
    warnings = [
        f"image 1: head spans {(end - start)[a] * sp[a]:.0f} mm along the {_AXES[a]} axis, more than the "
        f"model field of view ({sh[a] * sp[a]:.0f} mm); cropped equally on both sides"
        for a in range(3)
        if end[a] - start[a] > sh[a]
    ]

    channels = [model[0].numpy().astype(np.float32)]
    resample = SpatialResample(mode="bilinear", padding_mode="zeros")
    for number, image in enumerate(images[1:], start=2):
        with torch.no_grad():
            moved = resample(
                _meta_tensor(antialias(image.array, image.affine, sp), image.affine),
                dst_affine=torch.as_tensor(model_affine),
                spatial_size=sh,
            )
        data = moved[0].numpy().astype(np.float32)
        if not np.any(data != 0):
            raise FCDInputError(
                f"image {number}: does not overlap image 1 in world space (check the file pairing)"
            )
        channels.append(data)

    masks = np.stack([head_mask(c) for c in channels])
    scored = [
        _zscore(c, m, f"image {n}") for n, (c, m) in enumerate(zip(channels, masks, strict=True), start=1)
    ]
    tensor = np.stack([data for data, _ in scored])
    return Preprocessed(
        tensor=torch.from_numpy(tensor),
        reference=reference,
        model_affine=model_affine,
        head_masks=masks,
        spacing=sp,  # type: ignore[arg-type]
        shape=sh,  # type: ignore[arg-type]
        intensity_stats=[stats for _, stats in scored],
        warnings=warnings,
        head_edge_fraction=edge_fraction,
    )


def mask_to_model_grid(mask: Image, prep: Preprocessed, name: str = "ROI") -> np.ndarray:
    """A mask (e.g. a lesion ROI) on the model grid of ``prep``: share of each voxel inside it.

    The mask is resampled through world coordinates (MONAI ``SpatialResample`` with
    ``dst_affine``, linear, zeros outside its field of view), the same way further
    modalities reach the reference's model grid, so it lies exactly where the image's
    voxels went. Linear (not nearest) resampling keeps thin lesions: a lesion thinner
    than a model voxel still leaves partial values instead of vanishing. Values are in
    [0, 1], float32, shape ``prep.shape``.

    Raises:
        FCDInputError: the mask is empty or does not overlap the model grid.

    Example:
        >>> roi_model = mask_to_model_grid(load_mask("sub-01_roi.nii.gz"), prep)  # doctest: +SKIP
        >>> roi_model.shape == tuple(prep.shape)  # doctest: +SKIP
        True
    """
    from monai.transforms import SpatialResample

    array = np.asarray(mask.array)
    if not np.any(array):
        raise FCDInputError(f"{name}: the mask is empty")
    resample = SpatialResample(mode="bilinear", padding_mode="zeros")
    with torch.no_grad():
        moved = resample(
            _meta_tensor((array > 0).astype(np.float32), mask.affine),
            dst_affine=torch.as_tensor(prep.model_affine),
            spatial_size=tuple(prep.shape),
        )
    data = np.clip(moved[0].numpy().astype(np.float32), 0.0, 1.0)
    if not np.any(data > 0):
        raise FCDInputError(f"{name}: does not overlap the image in world space (check the file pairing)")
    return np.ascontiguousarray(data)
