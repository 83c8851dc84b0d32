"""Slicer-facing helpers that touch neither MRML nor Qt (tested without Slicer).

- :mod:`.dependencies`: which Python requirements of the module are missing, and whether
  installing them needs a restart (the Qt module asks the user, then installs).

Example:
    >>> from FCDDetectLib.slicer_support.dependencies import parse_requirement  # doctest: +SKIP
"""
