"""Slicer-facing helpers that touch neither MRML nor Qt (tested without Slicer).

- :mod:`.dependencies`: which Python requirements of the module are missing, the install
  order (torch first, pip under a torch constraint) and whether a restart is needed.
- :mod:`.paths`: path fields ("" and "." mean *unset*), folders that are safe to scan.
- :mod:`.models_registry`: the models folders both modules share (one settings key each).
- :mod:`.models_folder`: the ``*.fcdbundle`` folders of a models folder (the panels' model list).
- :mod:`.tree_process`: a child process stopped with its whole tree (Stop in the panels).
- :mod:`.detect_presenter`: FCDDetect's panel decisions ("presenter"), against a logic Protocol.
- :mod:`.install_check`: the first-run "Check installation" report.
- :mod:`.background_task` and :mod:`.task_child`: long work in a child process (progress,
  Cancel, the result back in the caller); :mod:`.detect_tasks`: FCD Detect's tasks.
- :mod:`.sample_data`: the FCD sample (files, names, the self-test's verdict).

The Qt widgets (``FCDDetectWidgets``, ``FCDTrainWidgets``) only read widgets, call these
and apply what they return. Nothing here imports ``qt``, ``ctk`` or ``slicer``.

Example:
    >>> from FCDDetectLib.slicer_support.dependencies import parse_requirement  # doctest: +SKIP
"""

__all__ = [
    "background_task",
    "dependencies",
    "detect_presenter",
    "detect_tasks",
    "install_check",
    "models_folder",
    "models_registry",
    "paths",
    "sample_data",
    "task_child",
    "tree_process",
]
