"""The run folder on disk, read and written by every stage of training: its layout, the recorded
configuration (:class:`~FCDTrainLib.run_folder.run_config.RunConfig`), the record of the dataset it
was trained on, the writer's lock, the event log, the software environment, and how its files
are read (untrusted: bounded, confined to the folder) and written (a full disk is one error line).

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.run_folder.run_config import RunConfig  # doctest: +SKIP
"""

__all__ = [
    "dataset_record",
    "environment",
    "event_log",
    "layout",
    "run_config",
    "run_files",
    "run_lock",
    "write_guard",
]
