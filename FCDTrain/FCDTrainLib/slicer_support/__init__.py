"""Slicer-facing helpers of FCDTrain that touch neither MRML nor Qt (tested without Slicer).

- :mod:`.train_launcher`: settings -> ``fcd train`` / ``fcd experiment`` command, run in a
  separate process, progress from ``events.jsonl``, stop (process tree) and resume.
- :mod:`.train_presenter`: FCDTrain's panel decisions, against a logic Protocol.
- :mod:`.train_tasks`: the dataset audit and the MedicalNet requests, in a child process.

Example:
    >>> from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings  # doctest: +SKIP
    >>> TrainLogic().train(TrainSettings(data="cohort/", out="run/"), wait=True)  # doctest: +SKIP
"""

__all__ = [
    "train_launcher",
    "train_presenter",
    "train_tasks",
]
