"""The files of one detection: ``heatmap.nii.gz``, ``result.json``, the cluster and lesion-map files.

:func:`write_detection` writes a :class:`~FCDDetectLib.detection.result.DetectionResult`
into a folder, every file committed as one unit (:class:`~FCDDetectLib.io.output_set.OutputSet`);
:data:`DETECTION_FILES` names the fixed files, which ``fcd detect`` checks before computing;
a :data:`DetectionWriter` adds more files to the same unit (``fcd detect --png``'s overlay).

Example:
    >>> from FCDDetectLib.outputs.detection_files import DETECTION_FILES
    >>> DETECTION_FILES
    ('heatmap.nii.gz', 'result.json', 'clusters.nii.gz', 'clusters.json', 'clusters.csv')
    >>> write_detection(result, "out/")  # doctest: +SKIP
    PosixPath('out')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.io.image_io import save_image
from FCDDetectLib.outputs.cluster_files import CLUSTER_FILES, write_cluster_listing, write_clusters

DetectionWriter = Callable[["DetectionResult", Path], None]
"""Writes more files of one detection into the (staging) folder it is given, e.g. clusters.json."""

DETECTION_FILES = ("heatmap.nii.gz", "result.json", *CLUSTER_FILES)
UNCERTAINTY_FILE = "uncertainty.nii.gz"
"""A fold ensemble's voxel-wise spread across its folds (input grid, float32)."""
"""The files a detection writes (more may come from writers); checked before computing."""


def write_detection(result: DetectionResult, out_dir: str | Path,
                    extra_writers: Sequence[DetectionWriter] = ()) -> Path:
    """Write ``heatmap.nii.gz`` (input grid, float32), ``result.json``, cluster and writers' files into ``out_dir``.

    ``heatmap.nii.gz`` is restricted to the head; when the result has clusters,
    :func:`write_clusters` adds ``clusters.nii.gz``, ``clusters.json`` and ``clusters.csv``.
    With a lesion head also ``lesion_map.nii.gz`` (voxel probability, input grid),
    ``lesion_clusters.nii.gz`` (its cluster labels, int16) and ``lesion_clusters.json``. A fold
    ensemble's result adds ``uncertainty.nii.gz`` (the spread across its folds).

    All files of one detection are committed as one unit (:class:`~FCDDetectLib.io.output_set.OutputSet`):
    a kill at any point leaves the previous detection's set or this one (after the
    recovery the next writer or :func:`~FCDDetectLib.io.output_set.read_output_set` does),
    and ``result.json`` lists every other file's SHA-256 under ``"files"``. Each writer
    in ``extra_writers`` is called as ``writer(result, folder)`` and writes plain files
    into ``folder``. Returns the output folder.

    Example:
        >>> write_detection(result, "out/")  # doctest: +SKIP
        PosixPath('out')
    """
    from FCDDetectLib.io.output_set import OutputSet

    out = Path(out_dir)
    with OutputSet(out) as staged:
        save_image(staged.folder / "heatmap.nii.gz", result.heatmap, result.affine)
        if result.saliency is not None:
            for modality, signed in result.saliency.maps.items():
                save_image(staged.folder / f"smoothgrad_{modality}.nii.gz", signed, result.saliency.affine)
        if result.lesion_map is not None:
            save_image(staged.folder / "lesion_map.nii.gz", result.lesion_map, result.affine)
            if result.lesion_clusters is not None:
                write_cluster_listing(staged.folder, "lesion_clusters", result.lesion_clusters, result.affine)
        if result.uncertainty is not None:
            save_image(staged.folder / UNCERTAINTY_FILE, result.uncertainty, result.affine)
        for writer in (write_clusters, *extra_writers):
            writer(result, staged.folder)
        staged.manifest = result.to_json()
    return out
