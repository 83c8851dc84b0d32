"""Stage 4, where the network looked: Grad-CAM and its variants on any stage, and localized,
signed SmoothGrad per region and per modality (its targets and regions).

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.explain.cams import explain  # doctest: +SKIP
"""

__all__ = [
    "cams",
    "localized_smoothgrad",
    "saliency_regions",
    "saliency_targets",
]
