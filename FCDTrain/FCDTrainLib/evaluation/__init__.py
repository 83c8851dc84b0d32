"""Evaluating trained folds: classification and Heat-Score figures, a fold's test subjects
(probabilities, lesion-level figures) and the statistics across folds.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.evaluation.metrics import classification_metrics  # doctest: +SKIP
"""

__all__ = [
    "calibration",
    "fold_eval",
    "metrics",
    "stats",
]
