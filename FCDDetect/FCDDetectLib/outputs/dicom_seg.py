"""A DICOM Segmentation (highdicom ``Segmentation``) of a detection's clusters, on the source series.

PACS viewers draw a DICOM SEG over the scan it refers to (OHIF, Weasis, 3D Slicer, most
commercial viewers), where they show neither a float Parametric Map nor an RGB Secondary
Capture as an overlay. One **segment per cluster**, in rank order (segment 1 = cluster 1,
the highest-ranked; see :mod:`FCDDetectLib.maps.clusters`):

- SegmentLabel ``cluster <rank> mean <mean value>`` (e.g. ``cluster 1 mean 0.72``);
  SegmentDescription says which map (heatmap or lesion probability), the rank among how
  many, mean, peak, volume and hemisphere, and "research use - not for diagnosis";
- category "Morphologically abnormal structure", type "Lesion" (SNOMED CT), algorithm type
  AUTOMATIC, algorithm "fcd-detect <method>" of the family "Artificial Intelligence";
- a display colour per rank (red, yellow, cyan, magenta, green, then repeating);
- BINARY, frames on the source slices' planes (highdicom leaves out frames without any
  cluster voxel), referencing each source slice, in the source's study and Frame of Reference.

Which clusters: a bundle with a lesion head (``result.lesion_map``) segments the lesion map's
clusters (``result.lesion_clusters``); any other bundle the heatmap's (``result.clusters``).

**No cluster** (nothing at or above the cluster threshold, or every component below the
minimum size): no SEG is written (a SEG without segments is not valid DICOM, and an empty
segment would be listed in viewers as a finding); the caller reports a warning.

Example:
    >>> seg = cluster_segmentation(result, sources, series_number=9003)  # doctest: +SKIP
    >>> [item.SegmentLabel for item in seg.SegmentSequence]  # doctest: +SKIP
    ['cluster 1 mean 0.72', 'cluster 2 mean 0.61']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.maps.clusters import ClusterSet
from FCDDetectLib.outputs.dicom_identity import MANUFACTURER, scanner_equipment

_COLOURS = ((255, 0, 0), (255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0))


def segmented_clusters(result: DetectionResult) -> tuple[ClusterSet | None, str]:
    """(the clusters the SEG holds, the name of their map): the lesion map's for a lesion head, else the heatmap's."""
    if result.lesion_map is not None:
        return result.lesion_clusters, "lesion probability map"
    return result.clusters, f"{result.method} heatmap"


def segment_label(rank: int, mean: float) -> str:
    """SegmentLabel of the cluster of ``rank`` (LO: at most 64 characters).

    Example:
        >>> segment_label(1, 0.7234)
        'cluster 1 mean 0.72'
    """
    return f"cluster {rank} mean {mean:.2f}"


def cluster_segmentation(
    result: DetectionResult,
    sources: Sequence,
    *,
    series_number: int,
    note: str,
    software_version: str,
    pixel_measures=None,
):
    """The highdicom ``Segmentation`` of the clusters (see the module docstring), or None without a cluster.

    ``sources``: the source series' datasets in slice order (``series.files`` order), the
    clusters' label volume on their grid ((I, J, K) = columns, rows, slices).
    ``pixel_measures``: a highdicom ``PixelMeasuresSequence`` (default: the sources' own).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    clusters, map_name = segmented_clusters(result)
    if clusters is None or not clusters.clusters:
        return None
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"fcd-detect {result.method}", family=codes.cid7162.ArtificialIntelligence, version=software_version,
    )
    count = len(clusters.clusters)
    descriptions = []
    for cluster in clusters.clusters:
        item = hd.seg.SegmentDescription(
            segment_number=cluster.id,
            segment_label=segment_label(cluster.id, cluster.mean),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=f"FCD cluster {cluster.id}",
            display_color=hd.color.CIELabColor.from_rgb(*_COLOURS[(cluster.id - 1) % len(_COLOURS)]),
        )
        item.SegmentDescription = (
            f"rank {cluster.id} of {count} in the {map_name}: mean {cluster.mean:.3f}, peak {cluster.peak:.3f}, "
            f"{cluster.volume_mm3:.0f} mm3, {cluster.hemisphere} hemisphere ({note})"
        )
        descriptions.append(item)
    labels = np.ascontiguousarray(clusters.labels.transpose(2, 1, 0).astype(np.uint16))  # (slices, rows, columns)
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=(result.model or "fcd model")[:64],
        software_versions=software_version,
        device_serial_number="none",
        pixel_measures=pixel_measures,
        content_label="CLUSTERS",
        content_description=f"FCD clusters ({note})"[:64],
        contributing_equipment=scanner_equipment(sources[0]),
    )
