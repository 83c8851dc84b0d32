"""Datasets: discovery (ds004199 BIDS layout or CSV manifest), image headers, labels, the
protocol audit, and synthetic cohorts (:mod:`FCDTrainLib.data.synth`, needs nilearn).

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.data.dataset_loader import load_dataset  # doctest: +SKIP
"""

__all__ = [
    "audit",
    "bids_loader",
    "dataset_loader",
    "image_headers",
    "labels",
    "manifest_loader",
    "records",
    "seeds",
    "synth",
]
