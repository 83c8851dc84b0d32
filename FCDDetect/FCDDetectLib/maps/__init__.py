"""Stage 3 (beside the networks, independent of them), what a map says: clusters above a
threshold, the Heat-Score against an ROI, and the lesion-level figures. Every function takes a
map (an array on a grid with its affine), whichever method made it.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.maps.clusters import find_clusters  # doctest: +SKIP
"""

__all__ = [
    "clusters",
    "heat_score",
    "lesion_evidence",
    "lesion_metrics",
    "operating_scale",
]
