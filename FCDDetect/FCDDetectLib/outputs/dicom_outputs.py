"""Detection outputs a PACS can show: an RGB secondary-capture series and a DICOM Parametric Map.

Only for a scan read from a DICOM series (:class:`~FCDDetectLib.io.dicom_series.DicomSeries`):
both objects reuse the source's patient, study and Frame of Reference and point back at it
slice by slice, so a PACS files them under the same study and can link them to the scan.

- ``overlay/`` (Secondary Capture, one file per source slice, highdicom ``SCImage``): the scan
  (greyscale, 1st-99th percentile window) with the heatmap blended in (``inferno`` colours
  where the heatmap exceeds 0.2), "RESEARCH USE - NOT FOR DIAGNOSIS" burned into the pixels.
  Each file carries its slice's ImagePositionPatient / ImageOrientationPatient / PixelSpacing
  and FrameOfReferenceUID (Secondary Capture does not require them; PACS viewers use them to
  synchronise with the source), a SourceImageSequence naming its source slice and
  BurnedInAnnotation YES.
- ``heatmap-pm.dcm`` (Parametric Map, one multi-frame file, highdicom ``ParametricMap``): the
  heatmap's float values in [0, 1] frame by frame on the source slices' positions, content
  qualification RESEARCH. Text is not burned into it: that would change the map's values.

Both carry the note in the header: SeriesDescription, ImageComments and (for the map)
ContentDescription. The folder is written beside the target and renamed into place.

Example:
    >>> series = find_series("DICOM/", None, "scan")  # doctest: +SKIP
    >>> scan = load_image("DICOM/")  # doctest: +SKIP
    >>> write_dicom_outputs(result, scan, series, "pacs/")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.dicom_series import DicomSeries
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.version import __version__

RESEARCH_NOTE = "RESEARCH USE - NOT FOR DIAGNOSIS"
MANUFACTURER = "fcd-detect (open-source research software)"
_HEAT_FLOOR = 0.2  # heatmap below this shows the scan only
_OPACITY = 0.6


def _orientation_letter(vector: np.ndarray) -> str:
    """DICOM PatientOrientation letter of an LPS direction's dominant axis (highdicom takes one)."""
    axis = int(np.argmax(np.abs(vector)))
    return ("L", "P", "H")[axis] if vector[axis] > 0 else ("R", "A", "F")[axis]


def _burn_in(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` (rows, cols, 3) uint8 with ``text`` drawn in the top-left corner (white on black)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    picture = PILImage.fromarray(rgb)
    size = max(8, rgb.shape[1] // 32)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=size)
    box = draw.textbbox((2, 2), text, font=font)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


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


def write_dicom_outputs(
    heatmap: np.ndarray,
    scan: Image,
    series: DicomSeries,
    out_dir: str | Path,
    *,
    description: str = "FCD heatmap",
    model_name: str = "fcd model",
) -> dict[str, Path]:
    """Write ``out_dir/overlay/*.dcm`` (RGB secondary capture) and ``out_dir/heatmap-pm.dcm``.

    ``heatmap`` and ``scan.array`` lie on the series' own grid ((I, J, K) = columns, rows,
    slices in ``series.files`` order), as :func:`~FCDDetectLib.detection.detect.detect` returns them for
    a DICOM input. An existing ``out_dir`` is replaced as a whole. Returns the paths written.

    Example:
        >>> write_dicom_outputs(result.heatmap, scan, series, "pacs/", description="gradcam")  # doctest: +SKIP
    """
    try:
        import highdicom as hd
        import pydicom
        from pydicom.sr.codedict import codes
        from pydicom.uid import generate_uid
    except ImportError as error:
        raise FCDInputError(
            f"--dicom-out needs highdicom and pydicom ({error}); install them: pip install 'fcd-detect[pacs]'"
        ) from None
    _check_grid(heatmap, scan, series)
    sources = [pydicom.dcmread(path) for path in series.files]
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        overlay = work / "overlay"
        overlay.mkdir()
        rgb = blend_slices(scan.array, heatmap)
        sc_series_uid = generate_uid()
        series_number = int(getattr(sources[0], "SeriesNumber", 0) or 0) + 9000
        note = f"{description} ({RESEARCH_NOTE.lower()})"
        for k, source in enumerate(sources):
            row, column = np.asarray(source.ImageOrientationPatient[:3], float), np.asarray(source.ImageOrientationPatient[3:], float)
            image = hd.sc.SCImage.from_ref_dataset(
                ref_dataset=source,
                pixel_array=_burn_in(rgb[k], RESEARCH_NOTE),
                photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
                bits_allocated=8,
                coordinate_system=hd.CoordinateSystemNames.PATIENT,
                series_instance_uid=sc_series_uid,
                series_number=series_number,
                sop_instance_uid=generate_uid(),
                instance_number=k + 1,
                manufacturer=MANUFACTURER,
                pixel_spacing=tuple(float(v) for v in source.PixelSpacing),
                patient_orientation=(_orientation_letter(row), _orientation_letter(column)),
            )
            image.FrameOfReferenceUID = source.FrameOfReferenceUID
            image.ImagePositionPatient = source.ImagePositionPatient
            image.ImageOrientationPatient = source.ImageOrientationPatient
            if "SliceThickness" in source:
                image.SliceThickness = source.SliceThickness
            image.BurnedInAnnotation = "YES"
            image.SeriesDescription = f"{description} overlay ({RESEARCH_NOTE.lower()})"[:64]
            image.ImageComments = note
            reference = pydicom.Dataset()
            reference.ReferencedSOPClassUID = source.SOPClassUID
            reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
            image.SourceImageSequence = [reference]
            referenced_series = pydicom.Dataset()
            referenced_series.SeriesInstanceUID = source.SeriesInstanceUID
            referenced_series.ReferencedInstanceSequence = [reference]
            image.ReferencedSeriesSequence = [referenced_series]
            image.save_as(overlay / f"IM{k + 1:04d}.dcm", enforce_file_format=True)

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
            series_number=series_number + 1,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=model_name[:64] or "fcd model",
            software_versions=__version__,
            device_serial_number="none",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            content_label="HEATMAP",
            content_description=note[:64],
        )
        parametric.SeriesDescription = f"{description} map ({RESEARCH_NOTE.lower()})"[:64]
        parametric.ImageComments = note
        parametric.save_as(work / "heatmap-pm.dcm", enforce_file_format=True)
        _replace_folder(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"overlay": target / "overlay", "parametric_map": target / "heatmap-pm.dcm"}


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
