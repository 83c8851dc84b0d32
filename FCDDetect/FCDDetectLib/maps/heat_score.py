"""The Heat-Score (Lasagni et al., section 2.5): how much a heatmap favours a lesion ROI.

    H  = (heatmap - min) / (max - min)              min-max over the heatmap's whole grid
    HS = (mean H in ROI - mean H in background) / std H in background

The background is every voxel of the grid outside the ROI or, when a brain mask is
given, every voxel outside the ROI and inside the brain mask. The ROI itself is not cut
by the brain mask. The standard deviation is the population one (ddof=0, numpy's
default); the paper does not say which, and for the 10^5-10^7 background voxels of a
scan the two differ by less than 10^-5 relative. Note that HS does not change under any
increasing linear rescaling of the heatmap, so the min-max step only matters for what is
shown, not for the score; we do it anyway, as the paper does.

A ROI or brain mask drawn on another grid (ds004199's ROIs live in FLAIR space while a
heatmap may be on the T1 grid) is resampled onto the heatmap's grid with nearest
neighbour through the two affines (``nibabel.processing.resample_from_to``, order 0).

Example:
    >>> import numpy as np
    >>> from FCDDetectLib.maps.heat_score import heat_score
    >>> heat = np.zeros((10, 10, 10)); heat[2:4, 2:4, 2:4] = 1.0; heat[7, 7, 7] = 0.5
    >>> roi = np.zeros((10, 10, 10), bool); roi[2:4, 2:4, 2:4] = True
    >>> round(heat_score(heat, roi), 2)
    62.99
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import mask_onto_grid, same_grid
from FCDDetectLib.io.image_io import Image

__all__ = ["HeatScoreResult", "empty_roi_message", "heat_score", "heat_score_images"]


@dataclass
class HeatScoreResult:
    """Heat-Score with what it was computed from.

    ``roi_voxels`` / ``background_voxels`` are counted on the heatmap's grid;
    ``roi_resampled`` tells whether the ROI came from another grid (a brain mask on another
    grid is resampled the same way). ``heat_score`` is None only when asked to tolerate an
    undefined score (``undefined_ok``), and ``note`` then says why.
    """

    heat_score: float | None
    roi_voxels: int
    roi_resampled: bool
    background_voxels: int
    note: str | None = None


class _UndefinedScore(FCDInputError):
    """Zero background spread: the score is undefined (an input error only where asked for one)."""



def empty_roi_message(roi_name: str) -> str:
    """The one error text for an ROI with no voxel set (Heat-Score, lesion figures, detection).

    Example:
        >>> empty_roi_message("roi.nii.gz")
        'roi.nii.gz: ROI is empty: no voxel above 0.5 (a mask voxel counts as set when its value is > 0.5)'
    """
    return f"{roi_name}: ROI is empty: no voxel above 0.5 (a mask voxel counts as set when its value is > 0.5)"

def _score(
    heatmap: np.ndarray, roi: np.ndarray, brain_mask: np.ndarray | None, roi_name: str,
    mask_name: str = "brain mask",
) -> tuple[float, int, int]:
    heat = np.asarray(heatmap, dtype=np.float64)
    inside = np.asarray(roi) > 0.5
    if heat.shape != inside.shape:
        raise FCDInputError(f"{roi_name}: shape {inside.shape} differs from the heatmap's {heat.shape}")
    if heat.ndim != 3:
        raise FCDInputError(f"heatmap: expected a 3D array, got shape {heat.shape}")
    if not np.all(np.isfinite(heat)):
        raise FCDInputError("heatmap: contains NaN or Inf values")
    n_roi = int(inside.sum())
    if n_roi == 0:
        raise FCDInputError(empty_roi_message(roi_name))
    background = ~inside
    if brain_mask is not None:
        brain = np.asarray(brain_mask) > 0.5
        if brain.shape != heat.shape:
            raise FCDInputError(f"{mask_name}: shape {brain.shape} differs from the heatmap's {heat.shape}")
        if not brain.any():
            raise FCDInputError(f"{mask_name}: brain mask is empty (no voxel above 0.5 on the heatmap's grid)")
        background &= brain
    n_bkg = int(background.sum())
    if n_bkg == 0:
        where = "inside the brain mask" if brain_mask is not None else "on the grid"
        raise FCDInputError(f"{roi_name}: no background voxel left {where} outside the ROI")
    low, high = float(heat.min()), float(heat.max())
    if high == low:
        raise _UndefinedScore(
            f"{roi_name}: heatmap is constant ({low:g}); background has zero spread, Heat-Score undefined"
        )
    normalised = (heat - low) / (high - low)
    values = normalised[background]
    spread = float(values.std())  # population standard deviation (ddof=0)
    if spread == 0.0:
        raise _UndefinedScore(
            f"{roi_name}: heatmap is constant in the background; zero spread, Heat-Score undefined"
        )
    score = (float(normalised[inside].mean()) - float(values.mean())) / spread
    return score, n_roi, n_bkg


def heat_score(heatmap: np.ndarray, roi: np.ndarray, brain_mask: np.ndarray | None = None) -> float:
    """Heat-Score of ``heatmap`` for ``roi`` (voxels > 0.5), arrays on one grid.

    ``brain_mask`` (voxels > 0.5), when given, restricts the background to the brain.
    Raises FCDInputError for an empty ROI, no background left, or a background with
    zero spread (e.g. a constant heatmap).

    Example:
        >>> hs = heat_score(heat, roi, brain_mask=brain)  # doctest: +SKIP
    """
    return _score(heatmap, roi, brain_mask, "ROI")[0]


def heat_score_images(
    heatmap: Image, roi: Image, brain_mask: Image | None = None, roi_name: str = "ROI",
    undefined_ok: bool = False, mask_name: str = "brain mask",
) -> HeatScoreResult:
    """Heat-Score of a heatmap image for a ROI image, each on its own grid.

    The ROI and the brain mask are resampled (nearest neighbour, through the affines) onto
    the heatmap's grid when their grid differs; ``roi_resampled`` reports it. Errors
    (FCDInputError, naming ``roi_name``): empty ROI, ROI outside the heatmap's field of
    view, no background left, zero background spread. With ``undefined_ok`` a zero
    background spread (a constant heatmap: the network found no evidence for the class)
    gives ``heat_score=None`` and a ``note`` instead of an error.

    Example:
        >>> from FCDDetectLib.io.image_io import load_image, load_mask
        >>> result = heat_score_images(load_image("heatmap.nii.gz"),
        ...                            load_mask("sub-00001_FLAIR_roi.nii.gz"),
        ...                            roi_name="sub-00001_FLAIR_roi.nii.gz")  # doctest: +SKIP
        >>> print(f"{result.heat_score:.3f} ({result.roi_voxels} ROI voxels)")  # doctest: +SKIP
    """
    if not np.any(np.asarray(roi.array) > 0.5):
        raise FCDInputError(empty_roi_message(roi_name))
    resampled = False
    roi_array = np.asarray(roi.array)
    if not same_grid(roi, heatmap):
        roi_array = mask_onto_grid(roi, heatmap)
        resampled = True
        if not roi_array.any():
            raise FCDInputError(
                f"{roi_name}: ROI does not overlap the heatmap's grid after resampling "
                "(outside its field of view, or smaller than one heatmap voxel)"
            )
    brain_array = None
    if brain_mask is not None:
        brain_array = np.asarray(brain_mask.array)
        if not same_grid(brain_mask, heatmap):
            brain_array = mask_onto_grid(brain_mask, heatmap)
    try:
        score, n_roi, n_bkg = _score(heatmap.array, roi_array, brain_array, roi_name, mask_name)
    except _UndefinedScore as error:
        if not undefined_ok:
            raise
        inside = roi_array > 0.5
        background = ~inside if brain_array is None else ~inside & (brain_array > 0.5)
        return HeatScoreResult(heat_score=None, roi_voxels=int(inside.sum()), roi_resampled=resampled,
                               background_voxels=int(background.sum()), note=str(error))
    return HeatScoreResult(
        heat_score=score, roi_voxels=n_roi, roi_resampled=resampled, background_voxels=n_bkg
    )
