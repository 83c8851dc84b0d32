"""FCDTrainLib: data (synthetic cohort, ds004199 discovery, audit) and fold-based training.

No Qt, no slicer.app: runs headless through the ``fcd`` command and inside Slicer.
"""

__version__ = "0.1.0"
