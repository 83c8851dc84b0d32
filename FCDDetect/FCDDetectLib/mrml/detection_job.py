"""Detection on MRML nodes in a child process: the nodes stay in the GUI thread, the work does not.

:func:`start_detection` checks the inputs (node count against the model's modalities, one
scene, a bundle that exists, valid options: bad input is an error before anything starts),
converts the nodes to engine images (the one conversion of :mod:`.conversion`), hands them to
a :class:`~FCDDetectLib.slicer_support.background_task.BackgroundTask` running
:func:`~FCDDetectLib.slicer_support.detect_tasks.detect_task`, and returns a
:class:`DetectionJob` at once. The panel polls the job from a timer (progress, Cancel) and
calls :meth:`DetectionJob.finish` on the main thread when it has ended: that adds the heatmap,
tables, lesion map, clusters and markups to the scene through
:meth:`DetectionLogic.create_nodes` (all or nothing, as :meth:`DetectionLogic.process`, which
stays the in-process call for code outside Slicer). A cancelled or failed job adds nothing.
:func:`start_report` does the same for the PDF report of a result.

Example (Slicer Python console)::

    job = start_detection(DetectionLogic(), [getNode("FLAIR")], "/models/flair.fcdbundle", method="gradcam")
    while job.poll().running: slicer.app.processEvents()
    out = job.finish()  # DetectionNodes, in the scene
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.mrml.conversion import image_from_volume_node, mask_from_segment
from FCDDetectLib.mrml.detection_logic import DetectionLogic, DetectionNodes, NodeInputs
from FCDDetectLib.slicer_support.background_task import BackgroundTask, Launcher, TaskJob
from FCDDetectLib.slicer_support.detect_tasks import DETECT_TASK, write_image
from FCDDetectLib.slicer_support.detect_tasks import start_report as start_report_task


def model_path(model: Any) -> str:
    """A bundle path for the child: a path as given, or a loaded bundle's folder."""
    path = getattr(model, "path", model)
    return str(Path(path))


@dataclass
class DetectionJob(TaskJob):
    """A detection running in a child process (``poll``, ``cancel``, ``wait``); :meth:`finish`
    brings its nodes into the scene."""

    task: BackgroundTask
    logic: DetectionLogic
    inputs: NodeInputs
    name: str | None = None
    nodes: DetectionNodes | None = field(default=None, init=False)

    @property
    def input_nodes(self) -> list[Any]:
        return self.inputs.nodes

    def finish(self) -> DetectionNodes:
        """Call on the main thread once the job has ended: the result's nodes, added to the scene.

        Raises ``TaskCancelled``, :class:`~FCDDetectLib.errors.FCDInputError` or RuntimeError
        as :meth:`BackgroundTask.result` does; then nothing is added.
        """
        if self.nodes is None:
            result = self.task.result()
            self.nodes = self.inputs.adopt(self.logic.create_nodes(self.inputs.nodes[0], result, name=self.name))
        return self.nodes


def start_detection(logic: DetectionLogic, input_nodes: Sequence[Any] | Any, model: Any, options: Any = None,
                    segmentation_node: Any = None, segment_id: str | None = None, brain_mask_node: Any = None,
                    name: str | None = None, *, launcher: Launcher | None = None, python: str | None = None,
                    **option_values: Any) -> DetectionJob:
    """Start detecting FCD on ``input_nodes`` with ``model`` in a child process; returns at once.

    The arguments are :meth:`DetectionLogic.process`'s; ``launcher`` and ``python`` are
    :class:`~FCDDetectLib.slicer_support.background_task.BackgroundTask`'s. Raises
    :class:`~FCDDetectLib.errors.FCDInputError` for bad input, before any process starts.
    """
    from FCDDetectLib.detection.options import DetectOptions

    detect_options = (options or DetectOptions()).replace(**option_values)
    inputs = logic.read_inputs(input_nodes, model, segmentation_node, segment_id, brain_mask_node)
    task = BackgroundTask(DETECT_TASK, python=python, launcher=launcher, description="FCD detection")
    try:
        task.arguments = {
            "model": model_path(model), "options": detect_options.to_dict(),
            "images": [write_image(task, f"image-{i}", image) for i, image in enumerate(inputs.images)],
            "roi": write_image(task, "roi", inputs.roi), "brain_mask": write_image(task, "brain-mask", inputs.brain_mask),
        }
        task.start()
    except BaseException:
        task.cleanup()
        raise
    return DetectionJob(task, logic, inputs, name=name)


def start_report(nodes: DetectionNodes, out_dir: str | Path, *, launcher: Launcher | None = None,
                 python: str | None = None) -> BackgroundTask:
    """Start writing the PDF report of a detection (its input volumes and lesion outline read
    from the scene now) into ``out_dir``; the task's result is the PDF's path."""
    inputs = list(getattr(nodes, "input_nodes", None) or [])
    if not inputs:
        from FCDDetectLib.errors import FCDInputError

        raise FCDInputError("the report needs the detection's input volumes (run the detection again)")
    images = [image_from_volume_node(node) for node in inputs]
    roi = None
    if getattr(nodes, "roi_source", None):
        segmentation_node, segment_id = nodes.roi_source
        roi = mask_from_segment(segmentation_node, segment_id, reference=images[0])
    return start_report_task(nodes.result, images, out_dir, roi, launcher=launcher, python=python)
