"""The project's version, declared once: ``pyproject.toml`` and both packages read it here.

Example:
    >>> from FCDDetectLib.version import __version__
    >>> __version__.count(".") >= 2
    True
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
