"""MRML / process glue for FCDTrain (no Qt, no ``slicer.app``).

- :mod:`.train_logic`: settings -> ``fcd train`` / ``fcd experiment`` command, run in a
  separate process, progress from ``events.jsonl``, stop (process tree) and resume.
- :mod:`.process`: the stoppable child process.
- :mod:`.results_nodes`: results tables and plots as MRML table / plot nodes.
- :mod:`.weights_cache`: MedicalNet weights cache folder (list, delete, download on request).

Example:
    >>> from FCDTrainLib.mrml.train_logic import TrainLogic, TrainSettings  # doctest: +SKIP
    >>> TrainLogic().train(TrainSettings(data="cohort/", out="run/"), wait=True)  # doctest: +SKIP
"""
