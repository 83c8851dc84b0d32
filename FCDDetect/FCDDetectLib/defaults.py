"""Engine-wide limits and the heatmap defaults (the training defaults, the model grid included, are RunConfig's).

Example:
    >>> from FCDDetectLib.defaults import MAX_VOXELS
    >>> MAX_VOXELS == 512**3
    True
"""

from __future__ import annotations

DEFAULT_METHOD: str = "gradcam"
"""Heatmap method of ``fcd detect`` when neither the caller nor the bundle names one."""
DEFAULT_LAYER: str = "layer4"  # the paper's stage
"""Network stage a CAM method reads when neither the caller nor the bundle names one."""

MAX_VOXELS: int = 512**3
"""Largest input volume any reader accepts (134 M voxels, 512 MiB as float32), checked from the header
before the voxels are read: a 0.4 mm isotropic scan of a 20 cm head is 500^3. A decompression bomb
(a small .nii.gz that expands to 1200^3) or a header that claims 2000^3 is refused with one line."""
