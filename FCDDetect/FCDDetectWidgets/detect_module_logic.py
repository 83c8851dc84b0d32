"""FCDDetect's Slicer logic: detection on nodes of ``slicer.mrmlScene``, for the panel and the console.

It satisfies :class:`FCDDetectLib.slicer_support.detect_presenter.DetectPanelLogic`. Nothing long
runs in Slicer's GUI thread: detection (any method, SmoothGrad included), the batch, the report
and the installation check run in a child process (:mod:`FCDDetectLib.mrml.detection_job`,
:mod:`FCDDetectLib.slicer_support.detect_tasks`). Each entry point returns the started job with
``wait=False`` (the panel polls it from a timer and takes the result on the main thread) and
blocks with ``wait=True`` (scripts; a progress dialog with Cancel keeps the GUI repainting).

Example (Slicer Python console)::

    import FCDDetect
    logic = FCDDetect.FCDDetectLogic()
    print(logic.checkInstallation(["/models"]).text())
    out = logic.process([getNode("FLAIR")], "/models/flair.fcdbundle")          # blocks
    job = logic.process([getNode("FLAIR")], "/models/flair.fcdbundle", wait=False)
    out = logic.finishDetection(job)  # once job.poll().running is False
"""

import logging

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from FCDDetectWidgets.installer import ensureDependencies, versionProblem
from FCDDetectWidgets.task_runner import waitWithProgress

NOT_READY = "The Python packages are not usable yet: restart Slicer (or install them)."


class FCDDetectLogic(ScriptedLoadableModuleLogic):
    """Detection from Slicer and the console; the work runs in child processes."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        from FCDDetectWidgets.parameters import FCDDetectParameterNode

        return FCDDetectParameterNode(super().getParameterNode())

    def ensureDependencies(self, askConfirmation: bool = True) -> bool:
        return ensureDependencies(askConfirmation)

    # -- DetectPanelLogic ---------------------------------------------------------------------
    def listBundles(self, folder: str):
        from FCDDetectLib.slicer_support.models_folder import list_bundles

        return list_bundles(folder)

    def process(self, inputVolumes, model, options=None, segmentationNode=None,
                segmentId=None, brainMaskNode=None, lowerThreshold=0.2, opacity=0.5, showResult=True,
                wait=True, showProgress=True, **optionValues):
        """Run detection on ``inputVolumes`` (model modality order) in a child process.

        ``model``: a .fcdbundle path (or a loaded ModelBundle: its folder is used). ``options``: a
        ``FCDDetectLib.detection.options.DetectOptions`` (keyword values such as ``method="gradcam"``,
        ``device="cpu"`` or ``cluster_threshold=0.4`` replace its fields). With ``wait=True``
        (default) it blocks, with a progress dialog and Cancel unless ``showProgress=False``, and
        returns the DetectionNodes: ``probability``, ``prediction``, ``heat_score``, ``heatmap_node``,
        ``table_node``, the lesion-level nodes when the model gives them (``lesion_map_node``,
        ``clusters_table_node``, ``clusters_markups_node``, ``lesion_clusters_table_node``,
        ``lesion_clusters_markups_node``, ``contributions_chart_node``) and ``result`` (the
        engine's DetectionResult). With ``wait=False`` it returns the running ``DetectionJob``
        (``poll()``, ``cancel()``); pass it to :meth:`finishDetection` once it has ended.
        With ``showResult`` the heatmap becomes the slice views' foreground over the first input.
        """
        if not self.ensureDependencies():
            raise RuntimeError(NOT_READY)
        from FCDDetectLib.mrml.detection_job import start_detection
        from FCDDetectLib.mrml.detection_logic import DetectionLogic

        logic = DetectionLogic(lower_threshold=lowerThreshold, opacity=opacity)
        job = start_detection(logic, inputVolumes, model, options, segmentation_node=segmentationNode,
                              segment_id=segmentId, brain_mask_node=brainMaskNode, **optionValues)
        if not wait:
            return job
        waitWithProgress(job, "FCD detection...", showProgress)
        return self.finishDetection(job, showResult)

    def finishDetection(self, job, showResult=True):
        """On the main thread, once ``job`` has ended: its nodes in the scene, with ``showResult``
        the heatmap shown over the first input."""
        out = job.finish()
        if showResult:
            job.logic.show_in_slice_views(job.input_nodes[0], out.heatmap_node)
        logging.info(f"FCDDetect: {out.summary()}")
        return out

    def showOverlay(self, out, node, opacity: float) -> None:
        """Show ``node`` (the heatmap, the lesion map...) as the foreground over the first input."""
        from FCDDetectLib.mrml.detection_logic import DetectionLogic

        inputs = getattr(out, "input_nodes", None) or []
        background = inputs[0] if inputs else None
        if background is None:
            slicer.util.setSliceViewerLayers(foreground=node, foregroundOpacity=opacity)
            return
        DetectionLogic(opacity=opacity).show_in_slice_views(background, node)

    def clusterJumpPoint(self, clustersTable, row: int):
        from FCDDetectLib.mrml.detection_nodes import cluster_jump_point

        return cluster_jump_point(clustersTable, row)

    def jumpToCluster(self, clustersTable, row: int):
        """Centre the slice views on the cluster of ``row``; returns its RAS (None: no such row)."""
        from FCDDetectLib.mrml.detection_nodes import jump_slices_to

        ras = self.clusterJumpPoint(clustersTable, row)
        if ras is not None:
            jump_slices_to(clustersTable.GetScene(), ras)
        return ras

    def checkInstallation(self, folders=(), wait=True):
        """Slicer, Python, torch / CUDA / device, MONAI, captum, and whether each bundle loads,
        checked in a child process (it imports torch and loads every bundle). ``wait=False``
        returns the running task; its ``result()`` is the report (see :meth:`installationReport`)."""
        from FCDDetectLib.slicer_support.detect_tasks import start_installation_check

        task = start_installation_check(list(folders), slicer_version=slicer.app.applicationVersion)
        return self.installationReport(waitWithProgress(task, "Checking the installation...")) if wait else task

    @staticmethod
    def installationReport(report):
        """The child's report, with this Slicer's version problem first (if any)."""
        problem = versionProblem()
        if problem:
            report.problems.insert(0, problem)
        return report

    def startReport(self, nodes, folder):
        """Start writing the PDF report of ``nodes`` into ``folder`` (a task; result: the PDF path)."""
        from FCDDetectLib.mrml.detection_job import start_report

        return start_report(nodes, folder)

    def writeReport(self, nodes, folder):
        """The report of ``nodes`` into ``folder``, blocking (progress dialog); returns the PDF path."""
        return waitWithProgress(self.startReport(nodes, folder), "Writing the report...")

    # -- batch --------------------------------------------------------------------------------
    def processFolder(self, data, model, outDir, modalities=None, options=None, workers=1,
                      wait=True, showProgress=True, **optionValues):
        """Detect every subject of a folder or BIDS dataset (the CLI's outputs per subject in
        ``outDir``) in a child process and add a summary table node; returns ``BatchNodes``
        (``rows``, ``table_node``), or with ``wait=False`` the running ``BatchJob`` (``poll()``,
        ``cancel()``, ``finish()`` on the main thread once it has ended).

        With ``wait=True`` a progress dialog shows the subjects done and its Cancel stops the
        batch (finished subjects are kept; run again to resume).
        """
        if not self.ensureDependencies():
            raise RuntimeError(NOT_READY)
        from FCDDetectLib.mrml.batch_logic import start_batch

        job = start_batch(slicer.mrmlScene, data, model, outDir, modalities=modalities, options=options,
                          workers=workers, **optionValues)
        if not wait:
            return job
        out = waitWithProgress(job, "FCD batch detection...", showProgress)
        logging.info(f"FCDDetect batch: {len(out.rows)} subjects, summary in {outDir}")
        return out
