"""The report saved on its own (the Slicer panel's *Save report*) as one committed output set.

The command line's ``--report`` pages are part of the detection's set (``result.json``). A
report saved later into a folder of the user's choice gets its own set, ``report.json``: the
PDF and every page land together, and the pages of a previous report in that folder that the
new one lacks (a scan with fewer clusters) are removed with it, so no stale page of another
scan stays beside the new report. An interruption leaves the previous report as it was.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.io.output_set import OutputSet
from FCDDetectLib.outputs.pdf_report import write_report

REPORT_MANIFEST = "report.json"
"""The manifest of a report saved on its own (its files and their SHA-256)."""


def write_report_set(result: Any, images: Sequence[Any] | None, out_dir: str | os.PathLike,
                     roi: Any = None) -> Path:
    """:func:`~FCDDetectLib.outputs.pdf_report.write_report` into ``out_dir`` as one set; the PDF's path.

    Example:
        >>> write_report_set(result, [flair], "reports/sub-01")  # doctest: +SKIP
        PosixPath('reports/sub-01/report.pdf')
    """
    with OutputSet(out_dir, manifest_name=REPORT_MANIFEST) as staged:
        files = write_report(result, images, staged.folder, roi=roi)
        staged.manifest = {"report": files.pdf.name, "pages": [page.png.name for page in files.pages],
                           "probability": getattr(result, "probability", None)}
    return Path(out_dir) / files.pdf.name
