"""FCDDetectLib: the FCD-II detection engine (no Qt, no slicer.app).

Public API (see README "Python API")::

    from FCDDetectLib import detect, heat_score_images, load_image
    result = detect("model.fcdbundle", ["sub-01_FLAIR.nii.gz"], roi="sub-01_FLAIR_roi.nii.gz")
    print(result.probability, result.heat_score)

Submodules are imported lazily so that reading a bundle's metadata needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "FCDInputError": "errors",
    "Image": "image_io",
    "load_image": "image_io",
    "load_mask": "image_io",
    "save_image": "image_io",
    "build_resnet": "models",
    "load_medicalnet_weights": "medicalnet",
    "BundleMetadata": "bundle",
    "ModelBundle": "bundle",
    "load_bundle": "bundle",
    "save_bundle": "bundle",
    "read_bundle_metadata": "bundle",
    "preprocess": "preprocess",
    "explain": "explain",
    "heat_score": "heat_score",
    "heat_score_images": "heat_score",
    "DetectionResult": "detect",
    "detect": "detect",
    "write_detection": "detect",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
