"""DICOM outputs for PACS: read back with pydicom and highdicom, geometry checked against the source series.

The SEG, the Parametric Map and the overlay series of a real detection; the SEG of planted
clusters (heatmap, lesion map, none); the burned-in note on a 69-column matrix; an input
without patient or study identity. The third-party validator and PACS are in
``test_dicom_clients.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.io.dicom_series import find_series
from FCDDetectLib.io.image_io import load_image
from FCDDetectLib.io.orientation import LPS_TO_RAS
from FCDDetectLib.maps.clusters import find_clusters
from FCDDetectLib.outputs.burned_note import MARGIN_PX, burn_note, fit_note
from FCDDetectLib.outputs.dicom_outputs import RESEARCH_NOTE, blend_slices, write_dicom_outputs

from Testing.builders.format_fixtures import write_dicom_series
from Testing.builders.geometry_fixtures import centred_affine, gaussian_blob, head_phantom
from Testing.builders.sitk_dicom_series import write_sitk_series

SHAPE = (40, 36, 12)  # columns, rows, slices
AFFINE = centred_affine((1.5, 1.5, 3.0), SHAPE, angles_deg=(0.0, 10.0, 0.0), lps=True).astype(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    folder = tmp_path_factory.mktemp("pacs")
    scan = np.round(head_phantom(AFFINE, SHAPE, radii_mm=(25.0, 22.0, 16.0))).astype(np.int16)
    write_dicom_series(folder / "dicom", scan, AFFINE, series_uid="1.2.826.0.1.3680043.8.498.1",
                       study_uid="1.2.826.0.1.3680043.8.498.2", frame_uid="1.2.826.0.1.3680043.8.498.3")
    torch.manual_seed(3)
    meta = BundleMetadata(name="tiny", depth=18, geometry="medicalnet", modalities=["flair"],
                          target_spacing=[4.0, 4.0, 4.0], target_shape=[16, 16, 16])
    bundle = save_bundle(folder / "tiny.fcdbundle", build_resnet(18, 1, widen_factor=0.125), meta)
    series = find_series(folder / "dicom", None, "scan")
    image = load_image(folder / "dicom")
    result = detect(bundle, [image], device="cpu")
    written = write_dicom_outputs(result, image, series, folder / "out", description="gradcam heatmap")
    return series, image, result, written, bundle, folder


def test_secondary_capture_follows_the_source_series(pacs):
    series, image, result, written, *_ = pacs
    files = sorted(written.overlay.glob("*.dcm"))
    assert len(files) == len(series.files)
    by_source = {}
    uids = set()
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.2"
        assert ds.FrameOfReferenceUID == "1.2.826.0.1.3680043.8.498.3"
        assert ds.SeriesInstanceUID != series.series_uid
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
        assert ds.BurnedInAnnotation == "YES"
        assert "not for diagnosis" in ds.SeriesDescription.lower() and "not for diagnosis" in ds.ImageComments.lower()
        assert ds.PhotometricInterpretation == "RGB" and ds.pixel_array.shape == (SHAPE[1], SHAPE[0], 3)
        uids.add(ds.SeriesInstanceUID)
        by_source[ds.SourceImageSequence[0].ReferencedSOPInstanceUID] = ds
    assert len(uids) == 1
    for k, (uid, position) in enumerate(zip(series.sop_instance_uids, series.positions, strict=True)):
        ds = by_source[uid]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], position, atol=1e-4)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], series.orientation, atol=1e-6)
        assert int(ds.InstanceNumber) == k + 1
    # pixels: the blend of scan and heatmap, with the note burned in (a 40-column matrix: scaled, whole)
    blended = blend_slices(image.array, result.heatmap)
    for k, uid in enumerate(series.sop_instance_uids):
        np.testing.assert_array_equal(by_source[uid].pixel_array, burn_note(blended[k], RESEARCH_NOTE))
        changed = (by_source[uid].pixel_array != blended[k]).any(axis=-1)
        assert changed.sum() > 50 and not changed[-MARGIN_PX:].any() and not changed[:, -MARGIN_PX:].any()
    assert RESEARCH_NOTE == "RESEARCH USE - NOT FOR DIAGNOSIS"
    # patient, study and series context copied from the source
    source = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    for keyword in ("PatientName", "PatientID", "StudyID", "StudyDate"):
        assert getattr(ds, keyword) == getattr(source, keyword)


def test_parametric_map_holds_the_heatmap_on_the_source_planes(pacs):
    import highdicom as hd

    series, image, result, written, *_ = pacs
    ds = pydicom.dcmread(written.parametric_map)
    pm = hd.pm.ParametricMap.from_dataset(ds)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    assert ds.FrameOfReferenceUID == series.frame_of_reference_uid
    assert ds.StudyInstanceUID == series.study_uid
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert ds.ContentQualification == "RESEARCH"
    assert "not for diagnosis" in ds.SeriesDescription.lower() and "not for diagnosis" in ds.ContentDescription.lower()
    assert int(ds.NumberOfFrames) == len(series.files)
    positions = np.array([
        [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] for frame in ds.PerFrameFunctionalGroupsSequence
    ])
    # highdicom may order the frames its own way: match each frame to its source slice by position
    slice_of_frame = [int(np.argmin(np.abs(series.positions - p).sum(1))) for p in positions]
    assert sorted(slice_of_frame) == list(range(len(series.files)))
    np.testing.assert_allclose(positions, series.positions[slice_of_frame], atol=1e-4)
    shared = ds.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                               series.orientation, atol=1e-6)
    # values: frame k is heatmap[:, :, k] as (rows, columns), exactly (float32 both ways)
    np.testing.assert_array_equal(pm.pixel_array, result.heatmap.transpose(2, 1, 0)[slice_of_frame])
    # highdicom's own geometry of the map (LPS, (slice, row, column) indices) is the scan's
    # (highdicom stacks the slices in the opposite direction: flip its slice index back)
    volume = pm.get_volume()
    n = len(series.files)
    kji_from_ijk = np.eye(4)[[2, 1, 0, 3]]
    flip_k = np.array([[-1.0, 0, 0, n - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    flipped = volume.affine @ flip_k @ kji_from_ijk
    if not np.allclose(LPS_TO_RAS @ flipped, image.affine, atol=1e-4):
        flipped = volume.affine @ kji_from_ijk
    np.testing.assert_allclose(LPS_TO_RAS @ flipped, image.affine, atol=1e-4)


def _planted(image, centres_and_peaks):
    """A map of Gaussian blobs (centre RAS mm, peak) on the scan's grid, and its clusters (real find_clusters)."""
    heat = np.zeros(image.array.shape, np.float32)
    for centre, peak in centres_and_peaks:
        heat = np.maximum(heat, peak * gaussian_blob(image.affine, image.array.shape, centre, 5.0))
    return heat, find_clusters(heat, image.affine, threshold=0.5, min_size_mm3=20.0)


def _read_seg(path):
    import highdicom as hd

    return hd.seg.segread(path)


def test_segmentation_has_one_segment_per_cluster_on_the_source_grid(pacs, tmp_path):
    series, image, result, _, _, _ = pacs
    heat, clusters = _planted(image, [((-12.0, 4.0, 0.0), 0.95), ((12.0, -6.0, 3.0), 0.7)])
    assert len(clusters.clusters) == 2
    planted = dataclasses.replace(result, heatmap=heat, clusters=clusters, lesion_map=None, lesion_clusters=None)
    written = write_dicom_outputs(planted, image, series, tmp_path / "pacs")
    assert written.warnings == [] and written.segmentation == tmp_path / "pacs" / "clusters-seg.dcm"
    ds = pydicom.dcmread(written.segmentation)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert ds.StudyInstanceUID == series.study_uid and ds.FrameOfReferenceUID == series.frame_of_reference_uid
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert ds.PatientID == "PHANTOM01" and "not for diagnosis" in ds.SeriesDescription.lower()
    seg = _read_seg(written.segmentation)
    labels = [item.SegmentLabel for item in seg.SegmentSequence]
    assert labels == [f"cluster {c.id} mean {c.mean:.2f}" for c in clusters.clusters]
    assert all("heatmap" in item.SegmentDescription for item in seg.SegmentSequence)
    # the label volume, slice by source slice, is the clusters' label map on the input grid
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=series.sop_instance_uids, combine_segments=True)
    np.testing.assert_array_equal(pixels, clusters.labels.transpose(2, 1, 0))


def test_segmentation_of_a_lesion_model_holds_the_lesion_map_clusters(pacs, tmp_path):
    series, image, result, _, _, _ = pacs
    lesion_map, lesion_clusters = _planted(image, [((0.0, 8.0, 2.0), 0.9)])
    heat, clusters = _planted(image, [((-12.0, 4.0, 0.0), 0.95), ((12.0, -6.0, 3.0), 0.7)])
    planted = dataclasses.replace(result, heatmap=heat, clusters=clusters, lesion_map=lesion_map,
                                  lesion_clusters=lesion_clusters)
    written = write_dicom_outputs(planted, image, series, tmp_path / "pacs")
    seg = _read_seg(written.segmentation)
    assert len(seg.SegmentSequence) == 1 and "lesion probability map" in seg.SegmentSequence[0].SegmentDescription
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=series.sop_instance_uids, combine_segments=True)
    np.testing.assert_array_equal(pixels, lesion_clusters.labels.transpose(2, 1, 0))


def test_no_cluster_writes_no_segmentation_and_says_so(pacs, tmp_path):
    series, image, result, _, _, _ = pacs
    flat = np.full(image.array.shape, 0.1, np.float32)
    planted = dataclasses.replace(result, heatmap=flat, clusters=find_clusters(flat, image.affine), lesion_map=None)
    written = write_dicom_outputs(planted, image, series, tmp_path / "pacs")
    assert written.segmentation is None and not (tmp_path / "pacs" / "clusters-seg.dcm").exists()
    assert len(written.warnings) == 1 and "no cluster at or above 0.5" in written.warnings[0]
    assert written.parametric_map.is_file() and len(list(written.overlay.glob("*.dcm"))) == len(series.files)


def _bright_pixels_of_lines(lines, size):
    """Bright pixels of each line drawn alone on a canvas far wider than the text (nothing can be cut there)."""
    from PIL import Image, ImageDraw, ImageFont

    total = 0
    for line in lines:
        canvas = Image.new("RGB", (1000, 100), (0, 0, 0))
        ImageDraw.Draw(canvas).text((10, 10), line, fill=(255, 255, 255), font=ImageFont.load_default(size=size))
        total += int((np.asarray(canvas)[..., 0] > 127).sum())
    return total


def test_note_is_wrapped_whole_on_a_69_column_image():
    layout = fit_note(RESEARCH_NOTE, columns=69, rows=64)
    assert " ".join(layout.lines) == RESEARCH_NOTE and len(layout.lines) > 1 and layout.scale == 1.0
    assert MARGIN_PX + layout.width <= 69 - MARGIN_PX
    grey = np.full((64, 69, 3), 90, np.uint8)
    burned = burn_note(grey, RESEARCH_NOTE)
    changed = (burned != grey).any(axis=-1)
    assert not changed[:, 69 - MARGIN_PX:].any()  # nothing runs into the right edge
    # every glyph pixel of every line is there: as many bright pixels as the lines drawn with room to spare
    assert int((burned[..., 0] > 127).sum()) == _bright_pixels_of_lines(layout.lines, layout.font_px)
    # a wide matrix keeps one line; a tiny one scales the whole note down rather than cut it
    assert fit_note(RESEARCH_NOTE, 512, 512).lines == [RESEARCH_NOTE]
    tiny = fit_note(RESEARCH_NOTE, 24, 24)
    assert tiny.scale < 1.0 and " ".join(tiny.lines) == RESEARCH_NOTE
    assert MARGIN_PX + int(tiny.width * tiny.scale) <= 24 - MARGIN_PX


def test_series_without_patient_or_study_identity_warns_once(pacs, tmp_path, capsys):
    *_, bundle, _ = pacs
    affine = centred_affine((1.5, 1.5, 3.0), SHAPE, lps=True)
    scan = np.round(head_phantom(affine, SHAPE, radii_mm=(25.0, 22.0, 16.0))).astype(np.int16)
    write_sitk_series(tmp_path / "bare", scan, affine, identity=False)  # SimpleITK's recipe alone
    code = main(["detect", "--model", str(bundle), "--image", str(tmp_path / "bare"), "--out", str(tmp_path / "o"),
                 "--dicom-out", str(tmp_path / "pacs"), "--cluster-threshold", "0.3"])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "lacks" in line]
    assert len(warnings) == 1
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID", "not invented"):
        assert keyword in warnings[0]
    sources = {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in (tmp_path / "bare").iterdir()}
    outputs = [pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "pacs").rglob("*.dcm")]
    assert len(outputs) == SHAPE[2] + 1 + int((tmp_path / "pacs" / "clusters-seg.dcm").exists())
    assert len({ds.StudyInstanceUID for ds in outputs}) == 1 and not {ds.StudyInstanceUID for ds in outputs} & sources
    assert len({ds.FrameOfReferenceUID for ds in outputs}) == 1
    assert all(ds.PatientID == "" and str(ds.PatientName) == "" for ds in outputs)  # empty, never invented


def test_source_file_without_pixel_spacing_is_refused_before_detection(pacs, tmp_path, capsys):
    *_, bundle, folder = pacs
    files = write_dicom_series(tmp_path / "dicom", np.ones(SHAPE, np.int16), AFFINE)
    broken = pydicom.dcmread(files[3])
    del broken.PixelSpacing
    broken.save_as(files[3])
    code = main(["detect", "--model", str(bundle), "--image", str(tmp_path / "dicom"), "--out", str(tmp_path / "o"),
                 "--dicom-out", str(tmp_path / "pacs")])
    err = capsys.readouterr().err
    assert code == 2 and "error: --dicom-out:" in err and "PixelSpacing" in err and "Traceback" not in err
    assert not (tmp_path / "pacs").exists() and not (tmp_path / "o" / "result.json").exists()
