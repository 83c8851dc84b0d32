"""Training one fold: subject splits, the input cache, augmentation, the fold's network and
transfer learning, the :class:`~FCDTrainLib.training.trainer.Trainer` with its hooks, its
variants through :mod:`~FCDTrainLib.training.trainer_registry`, checkpoints, MedicalNet files.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.training.trainer_registry import train_fold  # doctest: +SKIP
"""

__all__ = [
    "augment",
    "checkpoint",
    "fold_data",
    "fold_model",
    "folds",
    "input_cache",
    "lesion_trainer",
    "medicalnet_weights",
    "scanner_augment",
    "patches",
    "schedules",
    "trainer",
    "trainer_registry",
    "transfer",
]
