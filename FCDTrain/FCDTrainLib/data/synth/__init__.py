"""Synthetic FCD-II cohorts with real anatomy (nilearn's MNI152 2009 template), offline.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.data.synth.write_cohort import synth_cohort  # doctest: +SKIP
"""

__all__ = [
    "contrast",
    "deform",
    "lesion",
    "protocols",
    "randomize",
    "scan_files",
    "scan_style",
    "scanner_effects",
    "subject",
    "template",
    "variants",
    "write_cohort",
]
