"""Detection outputs a PACS can show: a DICOM SEG of the clusters, a Parametric Map, an RGB secondary-capture series.

Only for a scan read from a DICOM series (:class:`~FCDDetectLib.io.dicom_series.DicomSeries`):
every object keeps the source's patient and study, lies in its Frame of Reference and points
back at it slice by slice, so a PACS files them under the scan's study, as separate series,
and viewers can link them to the scan (:mod:`FCDDetectLib.outputs.dicom_identity` says what is
copied, and what happens when the source lacks a patient or study identity).

- ``clusters-seg.dcm`` (DICOM Segmentation, :mod:`FCDDetectLib.outputs.dicom_seg`): one
  segment per cluster, what most PACS viewers draw over the scan. Not written when there is
  no cluster (a warning says so).
- ``heatmap-pm.dcm`` (Parametric Map, one multi-frame file, highdicom ``ParametricMap``): the
  heatmap's float values in [0, 1] frame by frame on the source slices' positions, content
  qualification RESEARCH. Text is not burned into it: that would change the map's values.
- ``overlay/`` (Secondary Capture, one file per source slice, highdicom ``SCImage``): the scan
  (greyscale, 1st-99th percentile window) with the heatmap blended in (``inferno`` colours
  where the heatmap exceeds 0.2), "RESEARCH USE - NOT FOR DIAGNOSIS" burned into the pixels
  (:mod:`FCDDetectLib.outputs.burned_note`: wrapped or scaled to the matrix, never cut).
  Each file carries its slice's ImagePositionPatient / ImageOrientationPatient / PixelSpacing
  and FrameOfReferenceUID (not part of the Secondary Capture IOD: dciodvfy reports a
  "standard extended SOP class", a warning; viewers use them to synchronise with the source),
  a SourceImageSequence naming its source slice and BurnedInAnnotation YES.

All carry the note in the header: SeriesDescription, ImageComments or ContentDescription.
The folder is written beside the target and renamed into place.

Example:
    >>> series = find_series("DICOM/", None, "scan")  # doctest: +SKIP
    >>> scan = load_image("DICOM/")  # doctest: +SKIP
    >>> written = write_dicom_outputs(result, scan, series, "pacs/")  # doctest: +SKIP
    >>> written.segmentation, written.warnings  # doctest: +SKIP
    (PosixPath('pacs/clusters-seg.dcm'), [])
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.dicom_series import DicomSeries
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.outputs.burned_note import burn_note
from FCDDetectLib.outputs.dicom_identity import (
    MANUFACTURER,
    apply_identity,
    copy_context,
    scanner_equipment,
    source_identity,
)
from FCDDetectLib.outputs.dicom_seg import cluster_segmentation, segmented_clusters
from FCDDetectLib.version import __version__

RESEARCH_NOTE = "RESEARCH USE - NOT FOR DIAGNOSIS"
SEG_NAME = "clusters-seg.dcm"
PM_NAME = "heatmap-pm.dcm"
OVERLAY_NAME = "overlay"
_HEAT_FLOOR = 0.2  # heatmap below this shows the scan only
_OPACITY = 0.6


@dataclass
class DicomOutputs:
    """What :func:`write_dicom_outputs` wrote (``segmentation`` None without a cluster) and its warnings."""

    overlay: Path
    parametric_map: Path
    segmentation: Path | None
    warnings: list[str] = field(default_factory=list)


def _orientation_letter(vector: np.ndarray) -> str:
    """DICOM PatientOrientation letter of an LPS direction's dominant axis (highdicom takes one)."""
    axis = int(np.argmax(np.abs(vector)))
    return ("L", "P", "H")[axis] if vector[axis] > 0 else ("R", "A", "F")[axis]


def blend_slices(scan: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """(slices, rows, cols, 3) uint8: scan (I, J, K) in grey with the heatmap (same grid) blended in."""
    from matplotlib import colormaps

    low, high = np.percentile(scan, [1.0, 99.0])
    grey = np.clip((scan - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    heat = np.clip(heatmap, 0.0, 1.0)
    colours = colormaps["inferno"](heat)[..., :3]
    alpha = (_OPACITY * np.clip((heat - _HEAT_FLOOR) / (1.0 - _HEAT_FLOOR), 0.0, 1.0))[..., None]
    rgb = grey[..., None] * (1.0 - alpha) + colours * alpha
    # (I, J, K, 3) -> (K, J, I, 3): slices, rows (J), columns (I)
    return np.round(rgb.transpose(2, 1, 0, 3) * 255.0).astype(np.uint8)


def _check_grid(heatmap: np.ndarray, scan: Image, series: DicomSeries) -> None:
    import pydicom

    first = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    expected = (int(first.Columns), int(first.Rows), len(series.files))
    if heatmap.shape != expected or scan.array.shape != expected:
        raise FCDInputError(
            f"{series.folder}: heatmap grid {heatmap.shape} is not the DICOM series grid {expected}; "
            "DICOM outputs need the heatmap on the source series"
        )


def _overlay_image(hd, source, pixels: np.ndarray, *, series_uid: str, series_number: int, index: int,
                   description: str, note: str):
    """The Secondary Capture of source slice ``index``: ``pixels`` (rows, columns, 3) on the source's plane."""
    import pydicom
    from pydicom.uid import generate_uid

    row, column = np.asarray(source.ImageOrientationPatient[:3], float), np.asarray(source.ImageOrientationPatient[3:], float)
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in source.PixelSpacing),
        patient_orientation=(_orientation_letter(row), _orientation_letter(column)),
    )
    image.copy_patient_and_study_information(source)  # the modules highdicom's SEG and Parametric Map copy
    copy_context(image, source)
    image.FrameOfReferenceUID = source.FrameOfReferenceUID
    image.ImagePositionPatient = source.ImagePositionPatient
    image.ImageOrientationPatient = source.ImageOrientationPatient
    if "SliceThickness" in source:
        image.SliceThickness = source.SliceThickness
    image.BurnedInAnnotation = "YES"
    image.SeriesDescription = f"{description} overlay ({note})"[:64]
    image.ImageComments = f"{description} ({note})"
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image.SourceImageSequence = [reference]
    referenced_series = pydicom.Dataset()
    referenced_series.SeriesInstanceUID = source.SeriesInstanceUID
    referenced_series.ReferencedInstanceSequence = [reference]
    image.ReferencedSeriesSequence = [referenced_series]
    return image


def _pixel_measures(hd, series: DicomSeries, sources: list):
    """Pixel spacing, slice thickness and spacing of the series (thickness: the source's, else the spacing).

    The spacing is measured from the slice positions: converters' SpacingBetweenSlices can be
    wrong (SimpleITK's series recipe writes 1 whatever the spacing) and SliceThickness absent
    (then the in-memory sources get the spacing as their thickness: highdicom reads it there).
    """
    normal = np.cross(series.orientation[:3], series.orientation[3:])
    step = float(np.median(np.diff(series.positions @ normal)))
    for source in sources:
        if not str(getattr(source, "SliceThickness", "") or ""):
            source.SliceThickness = round(step, 6)
    return hd.PixelMeasuresSequence(
        pixel_spacing=[float(v) for v in sources[0].PixelSpacing], slice_thickness=float(sources[0].SliceThickness),
        spacing_between_slices=step,
    )


def _parametric_map(hd, heatmap: np.ndarray, sources: list, *, series_number: int, description: str,
                    model_name: str, note: str, pixel_measures):
    """The heatmap as a highdicom Parametric Map on the source planes (values exact, float32)."""
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    mapping = hd.pm.RealWorldValueMapping(
        lut_label="HEAT",
        lut_explanation=f"{description}: heatmap in [0, 1], high = evidence for FCD",
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1,
        intercept=0,
    )
    frames = np.ascontiguousarray(heatmap.transpose(2, 1, 0).astype(np.float32))  # (slices, rows, cols)
    parametric = hd.pm.ParametricMap(
        source_images=sources,
        pixel_array=frames,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model_name[:64] or "fcd model",
        software_versions=__version__,
        device_serial_number="none",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        pixel_measures=pixel_measures,
        content_label="HEATMAP",
        content_description=f"{description} ({note})"[:64],
        contributing_equipment=scanner_equipment(sources[0]),
    )
    copy_context(parametric, sources[0])
    parametric.SeriesDescription = f"{description} map ({note})"[:64]
    parametric.ImageComments = f"{description} ({note})"
    return parametric


def write_dicom_outputs(
    result: DetectionResult,
    scan: Image,
    series: DicomSeries,
    out_dir: str | Path,
    *,
    description: str | None = None,
) -> DicomOutputs:
    """Write ``out_dir/clusters-seg.dcm``, ``out_dir/heatmap-pm.dcm`` and ``out_dir/overlay/*.dcm``.

    ``result`` (its heatmap, clusters, lesion map) and ``scan.array`` lie on the series' own
    grid ((I, J, K) = columns, rows, slices in ``series.files`` order), as
    :func:`~FCDDetectLib.detection.detect.detect` returns them for a DICOM input. An existing
    ``out_dir`` is replaced as a whole. ``description`` (default ``FCD <method> heatmap``)
    starts each SeriesDescription. Returns the paths written and the warnings for the user
    (missing patient or study identity, no cluster): each once.

    Example:
        >>> written = write_dicom_outputs(result, scan, series, "pacs/")  # doctest: +SKIP
        >>> for warning in written.warnings: print(f"warning: {warning}")  # doctest: +SKIP
    """
    try:
        import highdicom as hd
        import pydicom
        from pydicom.uid import generate_uid
    except ImportError as error:
        raise FCDInputError(
            f"--dicom-out needs highdicom and pydicom ({error}); install them: pip install 'fcd-detect[pacs]'"
        ) from None
    heatmap = result.heatmap
    description = description or f"FCD {result.method} heatmap"
    note = RESEARCH_NOTE.lower()
    _check_grid(heatmap, scan, series)
    sources = [pydicom.dcmread(path) for path in series.files]
    identity = source_identity(sources, series.folder, series.series_uid)
    apply_identity(sources, identity)
    warnings = [identity.warning] if identity.warning else []
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    segmentation = None
    try:
        series_number = int(getattr(sources[0], "SeriesNumber", 0) or 0) + 9000
        measures = _pixel_measures(hd, series, sources)
        clusters, map_name = segmented_clusters(result)
        seg = cluster_segmentation(result, sources, series_number=series_number + 2, note=note,
                                   software_version=__version__, pixel_measures=measures)
        if seg is None:
            threshold = f" at or above {clusters.threshold:g}" if clusters is not None else ""
            warnings.append(f"--dicom-out: no cluster{threshold} in the {map_name}: no DICOM SEG written "
                            f"(the Parametric Map and the overlay are)")
        else:
            seg.SeriesDescription = f"FCD clusters ({note})"[:64]
            copy_context(seg, sources[0], laterality=False)
            seg.save_as(work / SEG_NAME, enforce_file_format=True)
            segmentation = target / SEG_NAME
        parametric = _parametric_map(hd, heatmap, sources, series_number=series_number + 1, description=description,
                                     model_name=result.model, note=note, pixel_measures=measures)
        parametric.save_as(work / PM_NAME, enforce_file_format=True)
        overlay = work / OVERLAY_NAME
        overlay.mkdir()
        rgb = blend_slices(scan.array, heatmap)
        sc_series_uid = generate_uid()
        for k, source in enumerate(sources):
            image = _overlay_image(hd, source, burn_note(rgb[k], RESEARCH_NOTE), series_uid=sc_series_uid,
                                   series_number=series_number, index=k, description=description, note=note)
            image.save_as(overlay / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
        _replace_folder(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return DicomOutputs(target / OVERLAY_NAME, target / PM_NAME, segmentation, warnings)


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an old ``target`` folder is moved aside first, then removed."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)
    if target.exists():
        if not target.is_dir():
            raise FCDInputError(f"{target}: exists and is not a folder (--dicom-out needs a folder)")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)
