"""Stage 7, many subjects: discovery (BIDS, manifest, folder), the cohort runner and its
summary, and the same on a Ray cluster.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.cohort.runner import run_cohort  # doctest: +SKIP
"""

__all__ = [
    "discovery",
    "ray_connection",
    "ray_runner",
    "runner",
    "summary",
]
