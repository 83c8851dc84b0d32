"""Stage 1, files in and out: every image format read into (array, affine), DICOM series,
LPS <-> RAS, the voxel bounds, atomic writes and the JSON policy, output folders checked before
the work, output sets committed as one unit (also under SIGINT/SIGTERM) through a commit journal,
killed writers' leftovers removed, file checksums, safe tensor loading, subject tables and the
ds004199 file names.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.io.image_io import load_image  # doctest: +SKIP
"""

__all__ = [
    "atomic_files",
    "byte_sizes",
    "checksums",
    "commit_journal",
    "commit_points",
    "dicom_series",
    "ds004199_names",
    "durable_files",
    "folder_entries",
    "image_io",
    "interrupts",
    "manifest_table",
    "orientation",
    "output_folder",
    "output_set",
    "readers",
    "safe_load",
    "stale_files",
    "temp_names",
    "voxel_limits",
]
