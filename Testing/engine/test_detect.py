"""End to end: ``detect`` on a model whose evidence is known, through real geometry.

The planted model (Testing/planted_model.py) was trained so that only a bright blob
decides the class. Its training head is stored here LPS, with permuted axes and
anisotropic voxels, so detection has to reorient, resample, crop, z-score, explain and
map the heatmap back. The heatmap must come back on exactly that grid for every
explanation method, and peak on the blob with a Heat-Score above 1 against its outline for
Grad-CAM++ and SmoothGrad (plain Grad-CAM's localisation depends on the training run: see
Testing/engine/test_explain.py). An oblique, anisotropic LPS grid checks that the heatmap
lands on the input's own grid. Margins: measured over seeds 0-4 (1 torch thread) and 0-1 (2 threads)
(benchmarks/numerics_spread.py); ``make test-repeat`` reruns these tests under 5 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import Image
from FCDDetectLib.outputs.detection_files import write_detection

from Testing.builders.geometry_fixtures import oblique_affine
from Testing.builders.planted_cases import CENTER, MODEL_SPACING, grid_case, model_affine
from Testing.builders.planted_model import save_planted_bundle, train_planted_model

pytestmark = pytest.mark.numerics

@pytest.fixture(scope="module")
def planted():
    return train_planted_model()


@pytest.fixture(scope="module")
def bundle(planted, tmp_path_factory):
    return save_planted_bundle(planted, tmp_path_factory.mktemp("planted") / "planted.fcdbundle",
                               target_spacing=(MODEL_SPACING,) * 3)


@pytest.fixture(scope="module")
def lps_case(planted):
    """The planted scan stored LPS, axes permuted (K, I, J) and 2 mm along the new first axis.

    Same field of view as the model's 4 mm grid, so the evidence is intact, but detection
    must reorient, permute, resample and crop, and map the heatmap back.
    """
    n = planted.shape[0]
    index_map = np.eye(4)
    index_map[:3, :3] = [[0, -1, 0], [0, 0, -1], [0.5, 0, 0]]  # new (a, b, c) -> old (i, j, k)
    index_map[:3, 3] = [n - 1, n - 1, 0]
    affine = model_affine(planted.shape) @ index_map
    return grid_case(planted, affine, (2 * n - 1, n, n))


@pytest.fixture(scope="module")
def oblique_case(planted):
    """The planted scan on an oblique (12, -8 deg), 3.1 x 3.6 x 2.7 mm, LPS grid."""
    affine = oblique_affine((3.1, 3.6, 2.7), (12.0, -8.0, 0.0), lps=True)
    shape = (46, 40, 52)
    affine[:3, 3] = -(affine[:3, :3] @ ((np.asarray(shape) - 1) / 2))  # centred on the head
    return grid_case(planted, affine, shape)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "smoothgrad"])
def test_planted_evidence_end_to_end(bundle, lps_case, planted, method):
    image, roi, _, blob_world = lps_case
    result = detect(bundle, [image], roi=roi, method=method, device="cpu")

    assert result.heatmap.shape == image.array.shape
    np.testing.assert_array_equal(result.affine, image.affine)
    assert result.heatmap.dtype == np.float32
    assert result.heatmap.min() == 0.0 and result.heatmap.max() == pytest.approx(1.0)

    assert result.probability > 0.5 and result.prediction == "fcd"  # measured worst: 1.0
    assert result.heat_score is not None and np.isfinite(result.heat_score)
    assert result.heat_score_details.roi_voxels == int(roi.array.sum())
    assert result.heat_score_details.roi_resampled is False
    if method == "gradcam":
        return  # its localisation depends on the training run (seed 4: HS -0.37), see the docstring
    # Measured worst over seeds 0-4 (1 thread) and 0-1 (2 threads) (Grad-CAM++ / SmoothGrad): max inside the blob
    # 1.0 / 1.0, top-1% centroid 12.8 / 11.6 mm from the blob centre, Heat-Score 2.51 / 5.05.
    # The peak value is reached inside the blob (CAM maps are flat beyond the last layer4
    # cell centre, so the maximum can be a plateau reaching past the blob).
    assert result.heatmap[roi.array].max() >= 0.9, f"{method}: peak not in the blob"
    top = result.heatmap >= np.quantile(result.heatmap, 0.99)
    centroid = image.affine[:3, :3] @ np.argwhere(top).mean(0) + image.affine[:3, 3]
    distance = np.linalg.norm(centroid - blob_world)
    assert distance < planted.radius * MODEL_SPACING, f"{method}: top-1% centroid {distance:.1f} mm from blob"
    assert result.heat_score > 1.0, f"{method}: HS {result.heat_score}"


def test_oblique_input_gets_heatmap_on_its_own_grid(bundle, oblique_case):
    image, roi, _, _ = oblique_case
    result = detect(bundle, [image], roi=roi, device="cpu")
    assert result.heatmap.shape == image.array.shape
    np.testing.assert_array_equal(result.affine, image.affine)
    assert np.isfinite(result.heat_score)


def test_control_scan_is_called_control(bundle, lps_case):
    _, _, control, _ = lps_case
    result = detect(bundle, [control], device="cpu")
    assert result.probability < 0.5 and result.prediction == "control"
    assert result.heat_score is None


def test_roi_on_another_grid_is_resampled_and_scores_alike(bundle, lps_case, planted):
    image, roi, _, _ = lps_case
    source_affine = model_affine(planted.shape)
    coarse = Image(planted.blob_mask(CENTER), source_affine)  # the blob on the model's own 4 mm grid
    # Grad-CAM++: deterministic and localised on every measured training seed (HS >= 2.5), so the
    # two Heat-Scores differ only by the ROI's resampling.
    same_grid = detect(bundle, [image], roi=roi, method="gradcam++", device="cpu")
    other_grid = detect(bundle, [image], roi=coarse, method="gradcam++", device="cpu")
    assert other_grid.heat_score_details.roi_resampled is True
    assert other_grid.heat_score == pytest.approx(same_grid.heat_score, rel=0.15)


def test_write_detection_round_trip(bundle, oblique_case, tmp_path):
    import json

    import nibabel as nib

    image, roi, _, _ = oblique_case
    result = detect(bundle, [image], roi=roi, device="cpu")
    write_detection(result, tmp_path / "out")
    saved = nib.load(tmp_path / "out" / "heatmap.nii.gz")
    np.testing.assert_allclose(saved.affine, image.affine, atol=1e-5)
    np.testing.assert_allclose(saved.get_fdata(), result.heatmap, atol=1e-6)
    stored = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert stored["heat_score"] == pytest.approx(result.heat_score)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "clusters.csv", "clusters.json", "clusters.nii.gz", "heatmap.nii.gz", "result.json"]
    labels = nib.load(tmp_path / "out" / "clusters.nii.gz")
    assert labels.get_data_dtype() == np.int16
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(labels.dataobj), result.clusters.labels)
    listing = json.loads((tmp_path / "out" / "clusters.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in listing["clusters"]] == [c.id for c in result.clusters.clusters]
    rows = (tmp_path / "out" / "clusters.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + len(result.clusters.clusters)
    assert stored["top_cluster"] == (listing["clusters"][0] if listing["clusters"] else None)
    assert stored["detected"] == result.lesion["detected"] and stored["dice"] == pytest.approx(result.lesion["dice"])


def test_bad_method_and_target_class(bundle, oblique_case):
    image = oblique_case[0]
    with pytest.raises(FCDInputError, match="method"):
        detect(bundle, [image], method="occlusion", device="cpu")
    with pytest.raises(FCDInputError, match="target class"):
        detect(bundle, [image], target_class="tumour", device="cpu")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "smoothgrad"])
def test_probability_equals_a_plain_forward_pass(bundle, lps_case, method):
    """detect reuses the CAM's own forward pass for the probability: it must equal a separate one."""
    import torch
    from FCDDetectLib.grid.preprocess import preprocess
    from FCDDetectLib.networks.bundle import load_bundle

    image = lps_case[0]
    loaded = load_bundle(bundle)
    prep = preprocess([image], loaded.metadata.target_spacing, loaded.metadata.target_shape)
    with torch.no_grad():
        expected = float(torch.softmax(loaded.model(prep.tensor.unsqueeze(0)), 1)[0, 1])
    assert detect(loaded, [image], method=method, device="cpu").probability == pytest.approx(expected, abs=1e-5)


def test_cluster_settings_layer_and_far_roi_are_input_errors(bundle, oblique_case):
    image, roi, _, _ = oblique_case
    for kwargs, message in [({"cluster_threshold": 1.2}, "outside \\[0, 1\\]"),
                            ({"min_cluster_mm3": -5.0}, "negative"), ({"layer": "layer9"}, "layer")]:
        with pytest.raises(FCDInputError, match=message):
            detect(bundle, [image], roi=roi, device="cpu", **kwargs)
    far = roi.affine.copy()
    far[:3, 3] += 1000.0
    with pytest.raises(FCDInputError, match="does not overlap"):
        detect(bundle, [image], roi=Image(roi.array, far), device="cpu")


def test_lesion_figures_and_bundle_default_method(bundle, lps_case, tmp_path):
    import json
    import shutil

    from FCDDetectLib.networks.bundle import load_bundle, save_bundle
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

    image, roi, control, _ = lps_case
    result = detect(bundle, [image], roi=roi, device="cpu")
    # The figures agree with the map, checked by hand on the input grid. Whether plain Grad-CAM
    # finds the blob depends on the trained floats (under FCD_TEST_SEED=4 its maximum lies
    # outside the blob: see test_explain), so only the bookkeeping is asserted here.
    labels, inside = result.clusters.labels, np.asarray(roi.array, bool)
    assert result.lesion["detected"] is bool((labels[inside] > 0).any())
    assert result.lesion["peak_in_roi"] is bool(result.heatmap[inside].max() >= result.heatmap.max() - 1e-4)
    assert result.clusters.clusters[0].peak == pytest.approx(1.0)
    assert result.to_json()["top_cluster"]["overlaps_roi"] is bool((labels[inside] == 1).any())
    no_roi = detect(bundle, [control], device="cpu")
    assert no_roi.lesion["has_roi"] is False and no_roi.to_json()["detected"] is None
    # the bundle's default explanation is used when none is asked for; an older bundle.json loads
    meta = read_bundle_metadata(bundle)
    meta.explain_method, meta.explain_layer = "layercam", "layer3"
    copy = save_bundle(tmp_path / "layercam.fcdbundle", load_bundle(bundle).model, meta)
    chosen = detect(copy, [image], device="cpu")
    assert (chosen.method, chosen.layer) == ("layercam", "layer3")
    assert detect(copy, [image], method="gradcam", layer="layer4", device="cpu").layer == "layer4"
    old = tmp_path / "old.fcdbundle"
    shutil.copytree(bundle, old)
    data = json.loads((old / "bundle.json").read_text(encoding="utf-8"))
    data.pop("explain_method", None)
    data.pop("explain_layer", None)
    data.pop("content_sha256", None)  # as written before bundles had checksums
    data.pop("weights_sha256", None)
    (old / "bundle.json").write_text(json.dumps(data))
    assert read_bundle_metadata(old).explain_method is None
    assert detect(old, [image], device="cpu").method == "gradcam"
