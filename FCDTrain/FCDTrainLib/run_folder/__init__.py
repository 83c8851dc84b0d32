"""The run folder on disk, read and written by every stage of training: its layout, the recorded
configuration (:class:`~FCDTrainLib.run_folder.run_config.RunConfig`), the writer's lock, the
event log and the software environment.

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDTrainLib.run_folder.run_config import RunConfig  # doctest: +SKIP
"""

__all__ = [
    "environment",
    "event_log",
    "layout",
    "run_config",
    "run_lock",
]
