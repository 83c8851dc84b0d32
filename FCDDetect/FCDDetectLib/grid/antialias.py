"""Anti-aliasing before a volume is resampled onto a coarser model grid.

MONAI's ``Spacing`` and ``SpatialResample`` interpolate (linear) at the new voxel centres and
average nothing: a 1 mm scan brought onto a 4 mm grid keeps one sample in 64, with the noise
and the aliased edges of a 1 mm voxel, and looks sharper and noisier to the network than a
scan acquired at 3-4 mm (measured on ``fcd synth`` subjects, the same anatomy at ``--size
full`` and ``small``: the high-frequency residual of the z-scored model-grid volume, x minus
its 1-voxel Gaussian blur, had a standard deviation of 0.47-0.49 from 1 mm inputs against
0.35-0.38 from 3 mm inputs; with this filter 0.39-0.40). So every input axis whose voxels are
finer than the model grid's is first smoothed with a Gaussian of
``sigma = (target / voxel - 1) / 2`` voxels, the rule of scikit-image's
``rescale(anti_aliasing=True)`` (and TorchIO's ``Resample(antialias=True)``); axes that are
already as coarse as the target are left alone. Written with ``scipy.ndimage.gaussian_filter``
because MONAI's resampling transforms have no anti-aliasing option and ``Resize``'s works on
array shapes, not on voxel sizes in mm.

Example:
    >>> import numpy as np
    >>> smooth = antialias(np.eye(8, dtype=np.float32)[None].repeat(8, 0), np.eye(4), (4.0, 4.0, 4.0))
    >>> round(float(smooth.max()), 2) < 1.0
    True
    >>> antialias_sigmas(np.diag([1.0, 1.0, 4.0, 1.0]), (4.0, 4.0, 4.0))
    (1.5, 1.5, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from FCDDetectLib.grid.geometry import voxel_sizes

__all__ = ["antialias", "antialias_sigmas"]


def antialias_sigmas(affine: np.ndarray, spacing: Sequence[float]) -> tuple[float, ...]:
    """Gaussian sigma (voxels) per array axis of an image with ``affine`` before resampling to ``spacing``.

    Each array axis is matched to the model axis it runs along most (its largest RAS
    component, as ``Orientation("RAS")`` permutes it), whose spacing is its target.
    """
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    sizes = voxel_sizes(matrix)
    targets = [float(spacing[int(np.argmax(np.abs(matrix[:, k])))]) for k in range(3)]
    return tuple(round(max(0.0, (t / z - 1.0) / 2.0), 6) if z > 0 else 0.0 for t, z in zip(targets, sizes, strict=True))


def antialias(array: np.ndarray, affine: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """``array`` smoothed along its finer-than-target axes (float32); unchanged when none is finer."""
    sigmas = antialias_sigmas(affine, spacing)
    if not any(s > 0.0 for s in sigmas):
        return array
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(array, dtype=np.float32), sigmas, mode="nearest").astype(np.float32)
