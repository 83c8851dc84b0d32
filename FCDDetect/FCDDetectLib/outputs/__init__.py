"""Stage 6, what a detection hands over: its files (heatmap, clusters, ``result.json``), PNG
overlays, the PDF report and its pages, and the DICOM outputs for a PACS (SEG, Parametric Map, overlay).

The package imports nothing: import each module by its full name.

Example:
    >>> from FCDDetectLib.outputs.detection_files import write_detection  # doctest: +SKIP
"""

__all__ = [
    "burned_note",
    "cluster_files",
    "detection_files",
    "dicom_identity",
    "dicom_outputs",
    "dicom_seg",
    "overlay",
    "pdf_report",
    "report_pages",
    "report_set",
    "report_slices",
]
