"""DICOM outputs for PACS: read back with pydicom and highdicom, geometry checked against the source series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.io.dicom_series import find_series
from FCDDetectLib.io.image_io import load_image
from FCDDetectLib.io.orientation import LPS_TO_RAS
from FCDDetectLib.outputs.dicom_outputs import RESEARCH_NOTE, blend_slices, write_dicom_outputs

from Testing.builders.format_fixtures import write_dicom_series
from Testing.builders.geometry_fixtures import centred_affine, head_phantom

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
    written = write_dicom_outputs(result.heatmap, image, series, folder / "out", description="gradcam heatmap")
    return series, image, result, written


def test_secondary_capture_follows_the_source_series(pacs):
    series, image, result, written = pacs
    files = sorted(written["overlay"].glob("*.dcm"))
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
    # pixels: the blend of scan and heatmap, except the burned-in note's box in the top-left corner
    blended = blend_slices(image.array, result.heatmap)
    for k, uid in enumerate(series.sop_instance_uids):
        pixels = by_source[uid].pixel_array
        np.testing.assert_array_equal(pixels[16:], blended[k][16:])
        corner = pixels[:14] != blended[k][:14]
        assert corner.any(axis=-1).sum() > 50  # the text and its black box
    assert RESEARCH_NOTE == "RESEARCH USE - NOT FOR DIAGNOSIS"


def test_parametric_map_holds_the_heatmap_on_the_source_planes(pacs):
    import highdicom as hd

    series, image, result, written = pacs
    ds = pydicom.dcmread(written["parametric_map"])
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
    # values: frame k is heatmap[:, :, k] as (rows, columns)
    np.testing.assert_allclose(pm.pixel_array, result.heatmap.transpose(2, 1, 0)[slice_of_frame], atol=1e-6)
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
