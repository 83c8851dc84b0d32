"""Stage 3, the networks: 3D ResNet classifiers, the lesion head, MedicalNet weights, model
bundles (weights + ``bundle.json``) and MONAI's lean import.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.networks.bundle import load_bundle  # doctest: +SKIP
"""

__all__ = [
    "bundle",
    "bundle_metadata",
    "ensemble",
    "lean_monai",
    "lesion_resnet",
    "medicalnet",
    "resnets",
]
