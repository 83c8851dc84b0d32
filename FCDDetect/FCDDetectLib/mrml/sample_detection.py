"""A detection of the "FCD sample" on a scene, judged: what the module's self-test (and ctest) runs.

:func:`detect_sample` loads the sample scan and its lesion outline into the scene, runs the
given detection (inside Slicer: the module logic, which runs it in a child process; in the
tests: the same, or :meth:`DetectionLogic.process` in-process) and returns what is wrong
(:func:`FCDDetectLib.slicer_support.sample_data.sample_problems`: p(FCD), the heatmap's and the
lesion map's maxima and cluster 1's peak must lie in the lesion). An empty list means the
detection found the planted lesion. Files missing from the sample are an error, not a skip.

Example (Slicer Python console)::

    import FCDDetect
    problems, out = detect_sample(load, lambda nodes, bundle: FCDDetect.FCDDetectLogic().process(nodes, bundle))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.mrml.conversion import mask_from_volume_node
from FCDDetectLib.mrml.detection_nodes import cluster_jump_point
from FCDDetectLib.slicer_support.sample_data import (
    LESION_NODE_NAME,
    SCAN_NODE_NAME,
    SampleFiles,
    sample_files,
    sample_problems,
)

LoadVolume = Callable[[Path, str, bool], Any]
"""``load(path, name, labelmap) -> volume node`` (Slicer: ``slicer.util.loadVolume``)."""


def detect_sample(load_volume: LoadVolume, process: Callable[[list[Any], str], Any],
                  files: SampleFiles | None = None) -> tuple[list[str], Any]:
    """Load the sample, detect with ``process(input_nodes, bundle_path)`` (returns
    ``DetectionNodes``); returns (problems, the DetectionNodes)."""
    files = files or sample_files()
    missing = files.missing()
    if missing:
        raise FCDInputError(f"the FCD sample is incomplete: {', '.join(missing)} missing")
    scan = load_volume(files.scan, SCAN_NODE_NAME, False)
    lesion_node = load_volume(files.lesion, LESION_NODE_NAME, True)
    lesion = mask_from_volume_node(lesion_node)
    out = process([scan], str(files.bundle))
    table = getattr(out, "clusters_table_node", None)
    peak = cluster_jump_point(table, 0) if table is not None else None
    return sample_problems(out.result, lesion.array, lesion.affine, peak), out
