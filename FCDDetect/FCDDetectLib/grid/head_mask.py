"""The head mask of an intensity volume: where the z-score statistics and the heatmaps are taken.

Head mask (our choice; the paper does not say): threshold at 10 % of the robust range,
``p2 + 0.10 * (p99.5 - p2)``, fill holes in 3D, keep the largest connected component, then
fill holes in every axial slice (skull, CSF and ventricles are dark but inside the head; the
slice-wise fill also closes cavities that the 3D fill misses where the field of view cuts
the neck). Air in magnitude MRI sits near p2 and scalp/brain far above 10 % of p99.5.

:func:`FCDDetectLib.grid.preprocess.preprocess` masks every channel on the model grid with it;
detection restricts heatmaps and lesion maps to :func:`head_mask` of the first image.
Both names are also importable from :mod:`FCDDetectLib.grid.preprocess`.

Example:
    >>> import numpy as np
    >>> vol = np.zeros((20, 20, 20), np.float32); vol[5:15, 5:15, 5:15] = 50
    >>> int(head_mask(vol).sum())
    1000
"""

from __future__ import annotations

import numpy as np

from FCDDetectLib.grid.geometry import mask_bounds

HEAD_FRACTION = 0.10
"""Head threshold as a fraction of the robust intensity range (p2 .. p99.5)."""


def head_mask(array: np.ndarray) -> np.ndarray:
    """Bool head mask of a 3D intensity volume (threshold, largest component, hole filling).

    Example:
        >>> import numpy as np
        >>> vol = np.zeros((20, 20, 20), np.float32); vol[5:15, 5:15, 5:15] = 50; vol[9:11, 9:11, 9:11] = 0
        >>> int(head_mask(vol).sum())  # the dark core is filled
        1000
    """
    from scipy import ndimage

    data = np.asarray(array, dtype=np.float32)
    lo, hi = np.percentile(data, [2.0, 99.5])
    if hi <= lo:
        hi = float(data.max())
    above = data > lo + HEAD_FRACTION * (hi - lo)
    bounds = mask_bounds(above)
    if bounds is None:
        return above
    # The rest works inside the box of supra-threshold voxels widened by one voxel (clipped
    # to the volume): the same result as on the whole grid, since outside the box there is
    # background only, connected to the border through the widened rim or the border itself
    # (on a 1 mm scan, half the voxels are skipped).
    box = tuple(slice(max(int(a) - 1, 0), min(int(b) + 1, n)) for a, b, n in zip(*bounds, data.shape, strict=True))
    mask = above[box]
    # Fill first, then keep the largest component: with the skull on, the scalp can be a
    # closed shell that the dark bone and CSF separate from the brain; filling first puts
    # the brain inside the scalp's component instead of discarding the scalp (or the brain).
    mask = fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    # No second 3D fill: the mask had no holes, and dropping the other components cannot make
    # one (a component enclosed by the largest would sit in a hole of it, filled and joined
    # already); test_fill_holes checks it against the rule with the fill, on noisy heads too.
    head = np.zeros(data.shape, dtype=bool)
    head[box] = fill_holes(mask, in_plane_axis=2)  # and every axial slice
    return head


def fill_holes(mask: np.ndarray, in_plane_axis: int | None = None) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` of a 3D mask, or of each of its slices along ``in_plane_axis``.

    Same result (tested against scipy) at a third of the time on a 1 mm head: scipy fills by
    dilating the background from the border until it stops (one pass per voxel of depth);
    here the background's 6-connected components are labelled once (``ndimage.label``) and
    those that touch no border become foreground. With ``in_plane_axis`` the components are
    connected only within slices (one label call for all slices).

    Example:
        >>> cube = np.ones((5, 5, 5), bool); cube[2, 2, 2] = False
        >>> bool(fill_holes(cube)[2, 2, 2])
        True
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if in_plane_axis is None:
        structure, faces = ndimage.generate_binary_structure(mask.ndim, 1), range(mask.ndim)
    else:
        structure = np.zeros((3,) * mask.ndim, dtype=bool)
        plane = [slice(None)] * mask.ndim
        plane[in_plane_axis] = 1
        structure[tuple(plane)] = ndimage.generate_binary_structure(mask.ndim - 1, 1)
        faces = [axis for axis in range(mask.ndim) if axis != in_plane_axis]
    labels, count = ndimage.label(~mask, structure=structure)
    if count == 0:
        return mask.copy()
    open_to_border = np.zeros(count + 1, dtype=bool)
    open_to_border[0] = True  # label 0 is the mask itself
    for axis in faces:
        for end in (0, -1):
            open_to_border[np.take(labels, end, axis=axis)] = True
    return mask | ~open_to_border[labels]
