"""Stage 1, files in and out: every image format read into (array, affine), DICOM series,
LPS <-> RAS, the voxel bounds, atomic writes and the JSON policy, output sets committed as one
unit (also under SIGINT/SIGTERM), safe tensor loading, subject tables and the ds004199 file names.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.io.image_io import load_image  # doctest: +SKIP
"""

__all__ = [
    "atomic_files",
    "byte_sizes",
    "dicom_series",
    "ds004199_names",
    "image_io",
    "interrupts",
    "manifest_table",
    "orientation",
    "output_set",
    "readers",
    "safe_load",
    "voxel_limits",
]
