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

# Imported eagerly: these functions share their names with their modules (``detect``,
# ``heat_score``), and a lazy attribute would be shadowed by the submodule once imported.
from .detect import DetectionResult, detect, write_detection  # noqa: E402
from .errors import FCDInputError  # noqa: E402
from .heat_score import HeatScoreResult, heat_score, heat_score_images  # noqa: E402
from .image_io import Image, load_image, load_mask, save_image  # noqa: E402
from .version import __version__  # noqa: E402

_LAZY = {
    "build_resnet": "models",
    "load_medicalnet_weights": "medicalnet",
    "BundleMetadata": "bundle",
    "ModelBundle": "bundle",
    "load_bundle": "bundle",
    "save_bundle": "bundle",
    "read_bundle_metadata": "bundle",
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
