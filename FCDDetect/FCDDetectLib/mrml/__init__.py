"""MRML glue for FCDDetect: MRML nodes <-> engine images, and the detection logic.

Imports only ``slicer``'s VTK classes (no ``slicer.app``, no Qt), so it runs inside the
Slicer application and under the ``slicer-core`` wheel in the tests. Submodules:

- :mod:`.conversion`: the one place converting volume / segmentation nodes to and from
  :class:`~FCDDetectLib.io.image_io.Image` (array (I, J, K), affine RAS).
- :mod:`.detection_logic`: :class:`~.detection_logic.DetectionLogic`, runs the engine on nodes
  and builds the heatmap volume, its display and the results table.
- :mod:`.detection_job`: the same detection in a child process (the panel's way), nodes back
  on the main thread; :mod:`.batch_logic`: a folder of subjects.
- :mod:`.offscreen_scene` and :mod:`.slice_views`: a scene set up like Slicer's application, and
  Slicer's Red, Yellow and Green slice views rendered offscreen (tests, ``make screenshots``).
- :mod:`.sample_detection`: a detection of the FCD sample, judged (the self-test).

Example:
    >>> from FCDDetectLib.mrml.detection_logic import DetectionLogic  # doctest: +SKIP
    >>> out = DetectionLogic().process([flairNode], "model.fcdbundle")  # doctest: +SKIP
    >>> out.heatmap_node.GetName(), out.probability  # doctest: +SKIP
"""

__all__ = [
    "batch_logic",
    "conversion",
    "detection_job",
    "detection_logic",
    "detection_nodes",
    "offscreen_scene",
    "sample_detection",
    "slice_views",
]
