"""FCDDetectLib: the FCD-II detection engine (no Qt, no slicer.app).

Public API (see README "Python API")::

    from FCDDetectLib import detect, heat_score_images, load_image
    result = detect("model.fcdbundle", ["sub-01_FLAIR.nii.gz"], roi="sub-01_FLAIR_roi.nii.gz")
    print(result.probability, result.heat_score)

The detection, Heat-Score and image functions need only numpy at import; the network
pieces (bundles, models, MedicalNet) are imported on first use, so reading a bundle's
metadata or importing this package needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# The public API: each name imported from the module that defines it. The network pieces are
# resolved on first use (``__getattr__``) so that importing the package needs no torch.
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image, load_image, load_mask, save_image
from FCDDetectLib.maps.heat_score import HeatScoreResult, heat_score, heat_score_images
from FCDDetectLib.outputs.detection_files import write_detection
from FCDDetectLib.version import __version__

_LAZY = {
    "build_resnet": "networks.resnets",
    "load_medicalnet_weights": "networks.medicalnet",
    "BundleMetadata": "networks.bundle_metadata",
    "ModelBundle": "networks.bundle",
    "load_bundle": "networks.bundle",
    "save_bundle": "networks.bundle",
    "read_bundle_metadata": "networks.bundle_metadata",
}

__all__ = [
    "DetectionResult",
    "FCDInputError",
    "HeatScoreResult",
    "Image",
    "__version__",
    "detect",
    "heat_score",
    "heat_score_images",
    "load_image",
    "load_mask",
    "save_image",
    "write_detection",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
