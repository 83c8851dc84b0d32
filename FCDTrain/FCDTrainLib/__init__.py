"""FCDTrainLib: data (synthetic cohort, ds004199 discovery, audit) and fold-based training.

No Qt, no slicer.app: runs headless through the ``fcd`` command and inside Slicer.
"""

from FCDDetectLib.version import __version__

__all__ = ["__version__"]
