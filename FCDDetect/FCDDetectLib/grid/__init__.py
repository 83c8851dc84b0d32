"""Stage 2, from the scan's grid to the model's and back: voxel geometry, the head mask,
preprocessing onto the model grid, mapping a model-grid map back to the input grid, and the
input statistics of the out-of-distribution check.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.grid.preprocess import preprocess  # doctest: +SKIP
"""

__all__ = [
    "antialias",
    "geometry",
    "head_mask",
    "input_grid",
    "ood",
    "preprocess",
]
