"""Import MONAI without the optional packages it reaches for and the engine never uses through it.

``import monai`` (any submodule, e.g. ``monai.networks.nets``) runs MONAI's package
``__init__``, which imports *every* MONAI submodule (``load_submodules``), and those
import, through ``monai.utils.optional_import``, matplotlib, pandas, scikit-learn,
scikit-image, pydicom, PIL and scipy.signal/stats: several seconds of a 2-core CPU
before ``fcd detect`` does any work (measured in ``benchmarks/bench_process.py``; the
figures are in docs/speed.md). MONAI's submodules import each other in a circle through
``monai.networks`` -> ``monai.apps`` -> ``monai.data`` -> ``monai.transforms``, so the
package-wide import itself cannot be skipped; what can be skipped is what MONAI imports
*optionally*.

:func:`import_monai_lean` imports MONAI once with those optional packages reported as
missing, for the duration of that one import only. MONAI then marks the features that
need them (CSV datasets, PIL/pydicom readers, matplotlib plots, scikit-learn metrics) as
unavailable in this process; the engine uses none of them (ResNet, Orientation,
Spacing, BorderPad, SpatialCrop, SpatialResample, MetaTensor, GradCAMpp), and our own
code can still import the packages afterwards (the finder is removed at once). Only the
``fcd detect`` command calls it (a process of its own); library use (Slicer, notebooks)
imports MONAI the usual way. If MONAI is already imported, or the lean import fails
(a MONAI version that needs one of them), MONAI is imported the usual way.

Example:
    >>> from FCDDetectLib.networks.lean_monai import import_monai_lean
    >>> import_monai_lean()  # doctest: +SKIP
    >>> import sys; "matplotlib" in sys.modules  # doctest: +SKIP
    False
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence

MONAI_OPTIONAL_SKIPPED = (
    "matplotlib",
    "pandas",
    "sklearn",
    "skimage",
    "pydicom",
    "PIL",
    "scipy.signal",
    "scipy.stats",
    "nilearn",
    "SimpleITK",
    "itk",
    "highdicom",
)
"""Top-level packages (or subpackages) MONAI imports optionally and ``fcd detect`` never uses through it."""


class _RefuseImports(importlib.abc.MetaPathFinder):
    """A meta-path finder that answers ImportError for ``names`` (and their submodules)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            raise ImportError(f"{fullname} is not imported with MONAI by fcd detect (FCDDetectLib.networks.lean_monai)")
        return None


def import_monai_lean(skipped: Sequence[str] = MONAI_OPTIONAL_SKIPPED) -> bool:
    """Import MONAI with ``skipped`` refused during that import; True when the lean import was used.

    Packages of ``skipped`` that are already imported stay as they are (MONAI gets them).
    """
    if "monai" in sys.modules:
        return False
    finder = _RefuseImports([name for name in skipped if name not in sys.modules])
    sys.meta_path.insert(0, finder)
    try:
        import monai  # noqa: F401
    except ImportError:
        for name in [n for n in sys.modules if n == "monai" or n.startswith("monai.")]:
            del sys.modules[name]
        sys.meta_path.remove(finder)
        import monai  # noqa: F401  (the usual way)

        return False
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    return True
