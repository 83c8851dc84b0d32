"""MRML glue for FCDTrain: only code that touches MRML nodes (no Qt, no ``slicer.app``).

- :mod:`.experiment_nodes`: results tables and plots as MRML table / plot nodes.

The Slicer-facing code that touches no MRML lives elsewhere:
:mod:`FCDTrainLib.slicer_support.train_launcher` (settings -> ``fcd train`` command in a
stoppable process), :mod:`FCDDetectLib.slicer_support.tree_process` and :mod:`FCDTrainLib.training.medicalnet_weights`.

Example:
    >>> from FCDTrainLib.mrml.experiment_nodes import table_from_csv  # doctest: +SKIP
"""

__all__ = [
    "experiment_nodes",
]
