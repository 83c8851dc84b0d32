"""MRML glue for FCDDetect: MRML nodes <-> engine images, and the detection logic.

Imports only ``slicer``'s VTK classes (no ``slicer.app``, no Qt), so it runs inside the
Slicer application and under the ``slicer-core`` wheel in the tests. Submodules:

- :mod:`.conversion`: the one place converting volume / segmentation nodes to and from
  :class:`~FCDDetectLib.io.image_io.Image` (array (I, J, K), affine RAS).
- :mod:`.detection_logic`: :class:`~.detection_logic.DetectionLogic`, runs the engine on nodes
  and builds the heatmap volume, its display and the results table.

Example:
    >>> from FCDDetectLib.mrml.detection_logic import DetectionLogic  # doctest: +SKIP
    >>> out = DetectionLogic().process([flairNode], "model.fcdbundle")  # doctest: +SKIP
    >>> out.heatmap_node.GetName(), out.probability  # doctest: +SKIP
"""

__all__ = [
    "batch_logic",
    "conversion",
    "detection_logic",
    "detection_nodes",
]
