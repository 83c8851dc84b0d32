"""FCDDetect's Slicer logic: detection on nodes of ``slicer.mrmlScene``, for the panel and the console.

It satisfies :class:`FCDDetectLib.slicer_support.detect_presenter.DetectPanelLogic`; the MRML work
is :class:`FCDDetectLib.mrml.detection_logic.DetectionLogic` (tested on slicer-core).

Example (Slicer Python console)::

    import FCDDetect
    logic = FCDDetect.FCDDetectLogic()
    print(logic.checkInstallation(["/models"]).text())
    out = logic.process([getNode("FLAIR")], "/models/flair.fcdbundle")
"""

import logging

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from FCDDetectWidgets.installer import ensureDependencies, versionProblem


class FCDDetectLogic(ScriptedLoadableModuleLogic):
    """Detection from Slicer and the console; delegates to FCDDetectLib.mrml.detection_logic."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        from FCDDetectWidgets.parameters import FCDDetectParameterNode

        return FCDDetectParameterNode(super().getParameterNode())

    # -- DetectPanelLogic ---------------------------------------------------------------------
    def listBundles(self, folder: str):
        from FCDDetectLib.slicer_support.models_folder import list_bundles

        return list_bundles(folder)

    def process(self, inputVolumes, model, options=None, segmentationNode=None,
                segmentId=None, brainMaskNode=None, lowerThreshold=0.2, opacity=0.5, showResult=True,
                **optionValues):
        """Run detection on ``inputVolumes`` (model modality order); returns DetectionNodes.

        ``model``: a .fcdbundle path or a loaded ModelBundle. ``options``: a
        ``FCDDetectLib.detection.options.DetectOptions`` (keyword values such as ``method="gradcam"``,
        ``device="cpu"`` or ``cluster_threshold=0.4`` replace its fields). The result has ``probability``,
        ``prediction``, ``heat_score``, ``heatmap_node``, ``table_node``, the lesion-level
        nodes when the model gives them (``lesion_map_node``, ``clusters_table_node``,
        ``clusters_markups_node``, the lesion map's ``lesion_clusters_table_node`` and
        ``lesion_clusters_markups_node``, ``contributions_chart_node``) and ``result`` (the
        engine's DetectionResult). With ``showResult`` the heatmap becomes the slice views'
        foreground over the first input.
        """
        if not ensureDependencies():
            raise RuntimeError("The Python packages are not usable yet: restart Slicer (or install them).")
        from FCDDetectLib.mrml.detection_logic import DetectionLogic

        logic = DetectionLogic(lower_threshold=lowerThreshold, opacity=opacity)
        out = logic.process(inputVolumes, model, options, segmentation_node=segmentationNode,
                            segment_id=segmentId, brain_mask_node=brainMaskNode, **optionValues)
        if showResult:
            first = inputVolumes[0] if isinstance(inputVolumes, (list, tuple)) else inputVolumes
            slicer.util.setSliceViewerLayers(background=first, foreground=out.heatmap_node,
                                             foregroundOpacity=opacity)
        logging.info(f"FCDDetect: {out.summary()}")
        return out

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

    def checkInstallation(self, folders=()):
        """Slicer, Python, torch / CUDA / device, MONAI, captum, and whether each bundle loads."""
        from FCDDetectLib.slicer_support.install_check import check_installation

        report = check_installation(list(folders), slicer_version=slicer.app.applicationVersion)
        problem = versionProblem()
        if problem:
            report.problems.insert(0, problem)
        return report

    def reportWriter(self):
        """A ``(result, folder) -> path`` writer built on FCDDetectLib.outputs.pdf_report.write_report, or None."""
        from FCDDetectLib.slicer_support.detect_presenter import report_writer

        return report_writer()

    # -- batch --------------------------------------------------------------------------------
    def processFolder(self, data, model, outDir, modalities=None, options=None, workers=1,
                      progress=None, shouldStop=None, showProgress=True, **optionValues):
        """Detect every subject of a folder or BIDS dataset (the CLI's outputs per subject in
        ``outDir``) and add a summary table node; returns ``BatchNodes`` (``rows``, ``table_node``).

        ``progress(done, total, row)`` and ``shouldStop()`` as in FCDDetectLib.cohort.runner.run_cohort;
        with ``showProgress`` a progress dialog shows the subjects done and its Cancel stops
        the batch after the current subject (run again to resume).
        """
        if not ensureDependencies():
            raise RuntimeError("The Python packages are not usable yet: restart Slicer (or install them).")
        from FCDDetectLib.mrml.batch_logic import process_folder

        dialog = slicer.util.createProgressDialog(labelText="FCD batch detection...", maximum=100) \
            if showProgress else None

        def report(done, total, row):
            if dialog is not None:
                dialog.value = int(100 * done / total) if total else 100
                dialog.labelText = f"{done} of {total} subjects ({row.get('subject')}: {row.get('status')})"
            slicer.app.processEvents()
            if progress is not None:
                progress(done, total, row)

        def stop():
            slicer.app.processEvents()
            return bool((dialog is not None and dialog.wasCanceled) or (shouldStop is not None and shouldStop()))

        try:
            out = process_folder(slicer.mrmlScene, data, model, outDir, modalities=modalities, options=options,
                                 workers=workers, progress=report, should_stop=stop, **optionValues)
        finally:
            if dialog is not None:
                dialog.close()
        logging.info(f"FCDDetect batch: {len(out.rows)} subjects, summary in {outDir}")
        return out
