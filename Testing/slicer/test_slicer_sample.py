"""The FCD sample shipped in ``FCDDetect/Resources/Sample``: small, complete, and detected.

``Testing/builders/fcd_sample.py`` wrote it (``make sample``); these checks hold for the files
as shipped. The detection here runs in-process (the self-test's child-process run is
``test_slicer_self_test.py``); a detection whose heatmap is moved off the lesion is caught.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.mrml.detection_logic import DetectionLogic
from FCDDetectLib.mrml.sample_detection import detect_sample
from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata
from FCDDetectLib.slicer_support.sample_data import sample_files

from Testing.builders.fcd_sample import SCAN_SHAPE, lesion_voxel, sample_scan, scan_affine
from Testing.builders.slicer_fixtures import make_slicer_app


def test_the_sample_is_small_and_complete():
    files = sample_files()
    assert files.missing() == []
    weights = (files.bundle / "weights.pt").stat().st_size
    assert weights < 700_000, weights  # "well under 1 MB": a width-1/16 ResNet-18 with a lesion head
    assert files.scan.stat().st_size < 300_000 and files.lesion.stat().st_size < 20_000
    meta = read_bundle_metadata(files.bundle)
    assert meta.has_lesion_head and meta.modalities == ["flair"] and "synthetic" in meta.training["note"]
    scan, lesion = nib.load(files.scan), nib.load(files.lesion)
    assert scan.shape == lesion.shape == SCAN_SHAPE
    np.testing.assert_allclose(scan.affine, scan_affine())
    centre = np.rint(lesion_voxel()).astype(int)
    assert np.asarray(lesion.dataobj)[tuple(centre)] == 1 and int(np.asarray(lesion.dataobj).sum()) > 1000
    # `make sample` writes these very images again (the model's training is not repeated here)
    scan_array, lesion_array = sample_scan()
    np.testing.assert_array_equal(np.asarray(scan.dataobj), scan_array)
    np.testing.assert_array_equal(np.asarray(lesion.dataobj), lesion_array)


@pytest.fixture
def app():
    app = make_slicer_app()
    yield app
    app.scene.Clear(1)


def _load(app):
    return lambda path, name, labelmap: app.load_volume(path, name, labelmap)


def test_a_detection_of_the_sample_finds_the_lesion(app):
    problems, out = detect_sample(_load(app), lambda nodes, bundle: DetectionLogic().process(nodes, bundle, device="cpu"))
    assert problems == []
    assert out.result.probability > 0.9 and out.lesion_map_node is not None


def test_a_detection_that_misses_the_lesion_is_caught(app, monkeypatch):
    import FCDDetectLib.detection.ensemble_detect as detect_module  # where the Slicer logic's detect_any finds it

    real = detect_module.detect

    def shifted(*args, **kwargs):  # the same result with the maps moved half the field of view away
        result = real(*args, **kwargs)
        result.heatmap = np.roll(result.heatmap, 32, axis=0)
        result.lesion_map = np.roll(result.lesion_map, 32, axis=0)
        return result

    monkeypatch.setattr(detect_module, "detect", shifted)
    problems, _ = detect_sample(_load(app), lambda nodes, bundle: DetectionLogic().process(nodes, bundle, device="cpu"))
    assert any("heatmap's maximum" in p for p in problems) and any("lesion map's maximum" in p for p in problems)
