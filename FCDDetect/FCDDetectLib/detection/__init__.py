"""Stage 5, one detection end to end: classify a scan, explain it, restrict and cluster its
maps, score them, and the :class:`~FCDDetectLib.detection.result.DetectionResult` it returns.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.detection.detect import detect  # doctest: +SKIP
"""

__all__ = [
    "decision",
    "detect",
    "ensemble_detect",
    "lesion_map",
    "result",
]
