"""Engine-wide defaults: the model grid a new bundle gets unless told otherwise.

2 mm isotropic, 96 x 112 x 96 voxels (192 x 224 x 192 mm) holds an adult head in RAS
after cropping around it, and keeps a ResNet-18 Grad-CAM under a few seconds on a
2-core CPU. FCD-II lesions of 0.5-5 cm3 still span 4-8 voxels a side at 2 mm.

Example:
    >>> from FCDDetectLib.defaults import DEFAULT_SPACING, DEFAULT_SHAPE
    >>> DEFAULT_SPACING, DEFAULT_SHAPE
    ((2.0, 2.0, 2.0), (96, 112, 96))
"""

from __future__ import annotations

DEFAULT_SPACING: tuple[float, float, float] = (2.0, 2.0, 2.0)
DEFAULT_SHAPE: tuple[int, int, int] = (96, 112, 96)
DEFAULT_THRESHOLD: float = 0.5
DEFAULT_METHOD: str = "gradcam"
CLASS_NAMES: tuple[str, str] = ("control", "fcd")

MAX_VOXELS: int = 512**3
"""Largest input volume any reader accepts (134 M voxels, 512 MiB as float32), checked from the header
before the voxels are read: a 0.4 mm isotropic scan of a 20 cm head is 500^3. A decompression bomb
(a small .nii.gz that expands to 1200^3) or a header that claims 2000^3 is refused with one line."""
