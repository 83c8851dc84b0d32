"""The Qt side of FCDTrain: widget and Slicer logic (imported only by ``FCDTrain.py``).

Decisions live in the Qt-free :mod:`FCDTrainLib.slicer_support.train_presenter`.
"""

__all__ = [
    "parameters",
    "self_test",
    "train_module_logic",
    "train_widget",
]
