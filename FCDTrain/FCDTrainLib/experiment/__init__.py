"""Whole runs and experiments: ``fcd train`` (every fold of one configuration), ``fcd evaluate``,
the paper's grid of configurations with its executors and progress, the results report, the
held-out saliency and the demo.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.experiment.train_run import train_run  # doctest: +SKIP
"""

__all__ = [
    "demo",
    "evaluate_run",
    "executors",
    "fold_tasks",
    "heldout_saliency",
    "paper_comparison",
    "progress",
    "results_report",
    "train_run",
]
