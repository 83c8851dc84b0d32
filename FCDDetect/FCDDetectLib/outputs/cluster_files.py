"""The cluster files of a detection: label maps, ``clusters.json`` and ``clusters.csv``.

``fcd detect`` writes ``clusters.*`` for the heatmap's clusters and, with a lesion head,
``lesion_clusters.nii.gz`` / ``.json`` for the lesion map's (:func:`FCDDetectLib.detection.detect.write_detection`).

Example:
    >>> from FCDDetectLib.outputs.cluster_files import CLUSTER_FILES
    >>> CLUSTER_FILES
    ('clusters.nii.gz', 'clusters.json', 'clusters.csv')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from FCDDetectLib.io.atomic_files import csv_text, write_json_atomic, write_text_atomic
from FCDDetectLib.io.image_io import save_image
from FCDDetectLib.maps.clusters import ClusterSet

CLUSTER_FILES = ("clusters.nii.gz", "clusters.json", "clusters.csv")
"""The files a detection with clusters adds (:func:`write_clusters`)."""


CLUSTER_COLUMNS = [
    "id", "voxels", "volume_mm3", "peak", "mean", "confidence", "hemisphere", "overlaps_roi",
    "peak_x", "peak_y", "peak_z", "centroid_x", "centroid_y", "centroid_z", "folds_found", "mean_uncertainty",
]
"""Columns of ``clusters.csv`` (positions in RAS mm; the last two filled by fold ensembles only)."""


def clusters_csv(clusters: ClusterSet, overlaps: dict[int, bool] | None = None) -> str:
    """``clusters.csv`` text: one row per cluster, RAS mm positions; ``overlaps_roi`` empty without ROI.

    Example:
        >>> print(clusters_csv(ClusterSet([], np.zeros((1, 1, 1), np.int16), 0.5, 50.0)), end="")
        id,voxels,volume_mm3,peak,mean,confidence,hemisphere,overlaps_roi,peak_x,peak_y,peak_z,centroid_x,centroid_y,centroid_z,folds_found,mean_uncertainty
    """
    rows = []
    for cluster in clusters.clusters:
        row = cluster.to_json()
        peak, centre = row.pop("peak_ras"), row.pop("centroid_ras")
        row.update(zip(("peak_x", "peak_y", "peak_z"), peak, strict=True))
        row.update(zip(("centroid_x", "centroid_y", "centroid_z"), centre, strict=True))
        row["overlaps_roi"] = "" if not overlaps else overlaps.get(cluster.id, False)
        rows.append(row)
    return csv_text(rows, CLUSTER_COLUMNS)


def write_clusters(result: Any, folder: Path) -> None:
    """The cluster writer: ``clusters.nii.gz``, ``clusters.json`` and ``clusters.csv`` into ``folder``.

    ``clusters.nii.gz`` is an int16 label map on the input grid (0 none, k = cluster k),
    ``clusters.json`` the settings and ranked clusters, ``clusters.csv`` one row per
    cluster (:data:`CLUSTER_COLUMNS`). :func:`write_detection` calls it inside the output
    set when the result has clusters; it writes nothing otherwise.

    Example:
        >>> write_clusters(result, staged.folder)  # doctest: +SKIP
    """
    if result.clusters is None:
        return
    overlaps = (result.lesion or {}).get("cluster_overlaps") or None
    write_cluster_listing(folder, "clusters", result.clusters, result.affine, overlaps)
    write_text_atomic(folder / "clusters.csv", clusters_csv(result.clusters, overlaps))


def write_cluster_listing(folder: Path, stem: str, clusters: ClusterSet, affine: np.ndarray,
                          overlaps: dict[int, bool] | None = None) -> None:
    """``STEM.nii.gz`` (int16 labels on the map's grid) and ``STEM.json`` (settings and ranked clusters).

    With ``overlaps`` (cluster id -> touches the ROI) each listed cluster gets ``overlaps_roi``.

    Example:
        >>> write_cluster_listing(staged.folder, "lesion_clusters", result.lesion_clusters, result.affine)  # doctest: +SKIP
    """
    save_image(folder / f"{stem}.nii.gz", clusters.labels, affine, dtype=np.int16)
    listing = clusters.to_json()
    if overlaps:
        for entry in listing["clusters"]:
            entry["overlaps_roi"] = overlaps.get(entry["id"], False)
    write_json_atomic(folder / f"{stem}.json", listing)
