"""Reload that reloads: the module's packages are imported again, not only its module file.

Slicer's *Reload* (``slicer.util.reloadScriptedModule``) executes the module file again, but
``FCDDetectWidgets.*`` and ``FCDDetectLib.*`` stay in ``sys.modules``, so the old code keeps
running. Like Slicer's own scripted modules that ship packages, the widget's ``onReload``
first forgets the package modules (:func:`forget_packages`), then calls Slicer's reload: the
module file's imports load every package module afresh from disk.

Plain Python that parses on Python 3.9 and imports nothing of the project (it runs before
the version check would matter, and is tested without Slicer).

Example:
    >>> stale_modules(["FCDDetectLib", "FCDDetectLib.io.readers", "FCDDetectLibX", "numpy"], ["FCDDetectLib"])
    ['FCDDetectLib', 'FCDDetectLib.io.readers']
"""

import importlib
import sys

DETECT_PACKAGES = ("FCDDetectLib", "FCDDetectWidgets")
"""What FCD Detect's Reload imports again."""
TRAIN_PACKAGES = ("FCDTrainLib", "FCDTrainWidgets")
"""What FCD Train's Reload imports again (it uses FCD Detect's packages as they are loaded)."""


def stale_modules(loaded, packages):
    """The names among ``loaded`` that are one of ``packages`` or inside one (sorted)."""
    wanted = tuple(packages)
    return sorted(name for name in loaded
                  if name in wanted or any(name.startswith(package + ".") for package in wanted))


def forget_packages(packages, modules=None):
    """Remove ``packages`` and their submodules from ``modules`` (``sys.modules``), so the next
    import reads them from disk again; returns the names removed."""
    modules = sys.modules if modules is None else modules
    names = stale_modules(list(modules), packages)
    for name in names:
        modules.pop(name, None)
    importlib.invalidate_caches()  # files added since the last import are found too
    return names
