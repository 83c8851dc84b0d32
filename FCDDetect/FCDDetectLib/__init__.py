"""FCDDetectLib: the FCD-II detection engine (no Qt, no slicer.app).

Public API (see README "Python API")::

    from FCDDetectLib import detect, heat_score_images, load_image
    result = detect("model.fcdbundle", ["sub-01_FLAIR.nii.gz"], roi="sub-01_FLAIR_roi.nii.gz")
    print(result.probability, result.heat_score)

Every public name but ``FCDInputError`` and ``__version__`` is imported on first use
(``__getattr__``): importing the package needs neither numpy nor torch, and reading a bundle's
metadata needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# The public API: each name from the module that defines it.
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.version import __version__

# Every public name but these two is imported on first use: `fcd` (the console script and
# `python -m FCDDetectLib.cli`) imports this package before its Ctrl-C handler exists, so the
# package imports next to nothing (no numpy) and a Ctrl-C then is handled by the command line.
_LAZY = {
    "detect": "detection.detect",
    "DetectionResult": "detection.result",
    "Image": "io.image_io",
    "load_image": "io.image_io",
    "load_mask": "io.image_io",
    "save_image": "io.image_io",
    "HeatScoreResult": "maps.heat_score",
    "heat_score": "maps.heat_score",
    "heat_score_images": "maps.heat_score",
    "write_detection": "outputs.detection_files",
    "build_resnet": "networks.resnets",
    "load_medicalnet_weights": "networks.medicalnet",
    "BundleMetadata": "networks.bundle_metadata",
    "ModelBundle": "networks.bundle",
    "load_bundle": "networks.bundle",
    "save_bundle": "networks.bundle",
    "read_bundle_metadata": "networks.bundle_metadata",
}

__all__ = [
    "FCDInputError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
