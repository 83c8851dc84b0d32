"""MRML glue for FCDTrain: only code that touches MRML nodes (no Qt, no ``slicer.app``).

- :mod:`.results_nodes`: results tables and plots as MRML table / plot nodes.

The Slicer-facing code that touches no MRML lives elsewhere:
:mod:`FCDTrainLib.slicer_support.train_logic` (settings -> ``fcd train`` command in a
stoppable process), :mod:`FCDTrainLib.process` and :mod:`FCDTrainLib.medicalnet_weights`.

Example:
    >>> from FCDTrainLib.mrml.results_nodes import table_from_csv  # doctest: +SKIP
"""
