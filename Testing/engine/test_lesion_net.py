"""FCDDetectLib.networks.lesion_resnet: the lesion head on the classifier's encoder, its bundle and detection."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.cams import explain
from FCDDetectLib.networks.bundle import load_bundle, save_bundle
from FCDDetectLib.networks.bundle_metadata import BundleMetadata, read_bundle_metadata
from FCDDetectLib.networks.lesion_resnet import LesionResNet, build_lesion_resnet, has_lesion_head
from FCDDetectLib.networks.medicalnet import load_medicalnet_weights
from FCDDetectLib.networks.resnets import build_resnet, feature_stride
from FCDDetectLib.outputs.detection_files import write_detection

from Testing.builders.lesion_models import head_scan
from Testing.builders.medicalnet_checkpoints import WIDTH, medicalnet_source, released_format


@pytest.mark.parametrize("geometry", ["paper", "medicalnet"])
def test_head_output_is_one_channel_at_input_resolution_and_classifier_unchanged(geometry):
    torch.manual_seed(0)
    net = build_lesion_resnet(18, in_channels=2, geometry=geometry, widen_factor=WIDTH, decoder_width=8).eval()
    x = torch.randn(2, 2, 26, 34, 22)  # odd, non-cubic: the decoder resizes to every skip's own shape
    with torch.no_grad():
        logits, lesion = net.forward_with_lesion(x)
        plain = net(x)
        probability = net.lesion_probability(x)
    assert tuple(lesion.shape) == (2, 1, 26, 34, 22)
    assert tuple(logits.shape) == (2, 2)
    torch.testing.assert_close(plain, logits)  # forward() is still the classifier
    assert float(probability.min()) >= 0.0 and float(probability.max()) <= 1.0
    # the encoder is the plain ResNet: same parameter names and shapes, same geometry
    reference = build_resnet(18, in_channels=2, geometry=geometry, widen_factor=WIDTH).state_dict()
    state = net.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if not k.startswith("decoder.")} == \
        {k: tuple(v.shape) for k, v in reference.items()}
    assert feature_stride(net) == feature_stride(build_resnet(18, geometry=geometry))
    assert has_lesion_head(net) and not has_lesion_head(build_resnet(18, widen_factor=WIDTH))


@pytest.mark.parametrize(("depth", "geometry"), [(18, "medicalnet"), (50, "paper")])
def test_medicalnet_weights_load_into_the_encoder_and_leave_the_decoder(tmp_path, depth, geometry):
    source = medicalnet_source(depth)
    path = tmp_path / f"resnet_{depth}.pth"
    released_format(source, path)
    net = build_lesion_resnet(depth, geometry=geometry, widen_factor=WIDTH)
    decoder_before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    report = load_medicalnet_weights(net, path, depth)
    state = net.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(state[key], value), key
    assert all(k.startswith(("fc.", "decoder.")) or k.endswith("num_batches_tracked") for k in report.missing)
    assert any(k.startswith("decoder.") for k in report.missing)
    for key, value in net.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key]), f"decoder.{key} starts from scratch"


def test_gradcam_on_layer4_still_works_on_the_lesion_model():
    torch.manual_seed(2)
    net = build_lesion_resnet(18, geometry="medicalnet", widen_factor=WIDTH, decoder_width=8).eval()
    x = torch.randn(1, 1, 32, 32, 32)
    heat = np.asarray(explain(net, x, method="gradcam", target_class=1))
    assert heat.shape[-3:] == (32, 32, 32) and np.isfinite(heat).all()


def _meta(**kw) -> BundleMetadata:
    values = dict(depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[4.0, 4.0, 4.0],
                  target_shape=[24, 28, 24], head="lesion")
    values.update(kw)
    return BundleMetadata(**values)


@pytest.fixture(scope="module")
def lesion_net():
    torch.manual_seed(3)
    return build_lesion_resnet(18, geometry="medicalnet", widen_factor=WIDTH, decoder_width=8).eval()


def test_bundle_round_trip_keeps_the_head(tmp_path, lesion_net):
    path = save_bundle(tmp_path / "lesion", lesion_net, _meta())
    meta = read_bundle_metadata(path)
    assert meta.head == "lesion" and meta.has_lesion_head and meta.format_version == 2
    loaded = load_bundle(path)
    assert isinstance(loaded.model, LesionResNet) and not loaded.model.training
    x = torch.randn(1, 1, 24, 28, 24)
    with torch.no_grad():
        for got, want in zip(loaded.model.forward_with_lesion(x), lesion_net.forward_with_lesion(x), strict=True):
            torch.testing.assert_close(got, want)
    # a head the metadata does not announce is refused (weights do not fit a plain ResNet)
    with pytest.raises(Exception, match="do not match"):
        save_bundle(tmp_path / "mislabelled", lesion_net, _meta(head="none"))


def test_first_version_lesion_bundle_with_a_narrow_last_step_still_loads(tmp_path):
    # The first version's full-resolution step had max(4, width // 4) channels; today's has
    # ``width``. Such a bundle's weights give their own width back (bundle._build).
    torch.manual_seed(4)
    old = build_lesion_resnet(18, geometry="medicalnet", widen_factor=WIDTH, decoder_width=16, fine_width=4).eval()
    assert build_lesion_resnet(18, geometry="medicalnet", widen_factor=WIDTH).decoder.out.in_channels == 16
    loaded = load_bundle(save_bundle(tmp_path / "v1-lesion", old, _meta()))
    assert loaded.model.decoder.out.in_channels == 4
    x = torch.randn(1, 1, 24, 28, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.lesion_probability(x), old.lesion_probability(x))


def test_bundle_written_the_old_way_still_loads(tmp_path):
    """A bundle as written before heads existed: format 1, no ``head`` field in bundle.json."""
    torch.manual_seed(4)
    plain = build_resnet(18, geometry="medicalnet", widen_factor=WIDTH).eval()
    folder = tmp_path / "old.fcdbundle"
    folder.mkdir()
    torch.save({k: v.clone() for k, v in plain.state_dict().items()}, folder / "weights.pt")
    old = {"depth": 18, "geometry": "medicalnet", "modalities": ["flair"], "target_spacing": [4.0, 4.0, 4.0],
           "target_shape": [24, 28, 24], "architecture": "resnet", "normalisation": "zscore-head",
           "class_names": ["control", "fcd"], "threshold": 0.5, "engine_version": "0.1.0", "format_version": 1,
           "name": "old", "training": {}, "metrics": {}}
    (folder / "bundle.json").write_text(json.dumps(old))
    loaded = load_bundle(folder)
    assert loaded.metadata.head == "none" and not loaded.metadata.has_lesion_head
    assert not has_lesion_head(loaded.model)
    x = torch.randn(1, 1, 24, 28, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), plain(x))


def test_detect_on_a_lesion_bundle_writes_the_lesion_map_and_both_heat_scores(tmp_path, lesion_net):
    bundle = save_bundle(tmp_path / "lesion", lesion_net, _meta())
    image, roi, shape = head_scan(tmp_path)
    result = detect(bundle, [image], roi=roi, device="cpu")
    assert result.lesion_map is not None and result.lesion_map.shape == shape == result.heatmap.shape
    assert 0.0 <= float(result.lesion_map.min()) and float(result.lesion_map.max()) <= 1.0
    assert result.lesion_heat_score_details is not None
    out = write_detection(result, tmp_path / "out")
    saved = nib.load(out / "lesion_map.nii.gz")
    assert saved.shape == shape
    np.testing.assert_allclose(saved.affine, nib.load(image).affine, atol=1e-5)
    assert (out / "lesion_clusters.nii.gz").is_file() and (out / "lesion_clusters.json").is_file()
    summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert "heat_score" in summary and summary["lesion_map"]["heat_score"] == result.lesion_heat_score
    assert summary["lesion_map"]["n_clusters"] == len(result.lesion_clusters.clusters)


@pytest.mark.parametrize("method", ["gradcam", "smoothgrad"])
def test_detect_reuses_the_explanations_encoder_pass_for_the_same_lesion_map(tmp_path, lesion_net, method):
    # Grad-CAM's forward pass lends its encoder features to the decoder; SmoothGrad (noisy copies
    # only) cannot, and the encoder runs again. Both must give the map of a pass of its own.
    from FCDDetectLib.detection.lesion_map import lesion_map_of
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.grid.preprocess import preprocess
    from FCDDetectLib.io.image_io import load_image

    bundle = load_bundle(save_bundle(tmp_path / "lesion", lesion_net, _meta()))
    image, _, _ = head_scan(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        if method == "gradcam":  # no second encoder pass
            patch.setattr(bundle.model, "lesion_probability", lambda x: pytest.fail("the encoder ran again"))
        result = detect(bundle, [image], device="cpu", method=method, nt_samples=2)
    scan = load_image(image)
    prep = preprocess([scan], bundle.metadata.target_spacing, bundle.metadata.target_shape)
    own_pass = lesion_map_of(bundle.model, prep.tensor.unsqueeze(0), prep, head_mask(scan.array))
    assert float(own_pass.max()) > 0.0
    # measured: identical (difference 0.0) for 4 weight seeds on this CPU; 1e-6 leaves room for another
    # CPU's kernel choice, while a wrong or shifted feature map changes the map by far more
    np.testing.assert_allclose(result.lesion_map, own_pass, atol=1e-6)


def test_detect_on_a_plain_bundle_writes_no_lesion_map(tmp_path):
    torch.manual_seed(5)
    plain = build_resnet(18, geometry="medicalnet", widen_factor=WIDTH)
    bundle = save_bundle(tmp_path / "plain", plain, _meta(head="none"))
    image, _, _ = head_scan(tmp_path)
    result = detect(bundle, [image], device="cpu")
    out = write_detection(result, tmp_path / "out")
    assert result.lesion_map is None and not (out / "lesion_map.nii.gz").exists()
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["lesion_map"] is None


def test_a_mirrored_lesion_map_is_the_mean_of_the_scan_and_its_mirror(lesion_net):
    from FCDDetectLib.detection.lesion_map import mirrored_lesion_probability

    x = torch.randn(1, 1, 24, 28, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = lesion_net.lesion_probability(x)
        mirror_of_mirror = torch.flip(lesion_net.lesion_probability(torch.flip(x, (2,))), (2,))
    mirrored = mirrored_lesion_probability(lesion_net, x, mirror_axes=[0])
    torch.testing.assert_close(mirrored, (plain + mirror_of_mirror) / 2)
    # The untrained network is not mirror-symmetric (else nothing below could fail) ...
    assert float((mirror_of_mirror - plain).abs().max()) > 1e-3
    # ... but the mirrored map is: the mirror of a scan gets the mirror of its map. The two sums hold
    # the same terms (measured: difference 0.0); 1e-6 leaves room for another CPU's kernels.
    torch.testing.assert_close(mirrored_lesion_probability(lesion_net, torch.flip(x, (2,)), mirror_axes=[0]),
                               torch.flip(mirrored, (2,)), atol=1e-6, rtol=0)
    # no axes: the one pass; the features of a pass already made serve the unmirrored pass
    torch.testing.assert_close(mirrored_lesion_probability(lesion_net, x), plain)
    with torch.no_grad():
        _, features = lesion_net.encode(x)
    torch.testing.assert_close(mirrored_lesion_probability(lesion_net, x, features, [0]), mirrored)
    calls = []
    original = lesion_net.lesion_probability
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lesion_net, "lesion_probability", lambda v: calls.append(1) or original(v))
        mirrored_lesion_probability(lesion_net, x, mirror_axes=[0, 1])
    assert len(calls) == 4  # two axes: the scan and its three mirrors


def test_mirror_axes_are_kept_in_a_format_3_bundle_and_checked(tmp_path, lesion_net):
    path = save_bundle(tmp_path / "mirrored", lesion_net, _meta(lesion_mirror_axes=[0]))
    meta = read_bundle_metadata(path)
    assert meta.lesion_mirror_axes == [0] and meta.format_version == 3  # older engines refuse it
    late = _meta()
    late.lesion_mirror_axes = [0]  # set after construction, as fcd train does before calibrating
    assert late.to_dict()["format_version"] == 3
    assert read_bundle_metadata(save_bundle(tmp_path / "plain", lesion_net, _meta())).format_version == 2
    for bad in ([3], [0, 0], "0", [True], 0):
        data = _meta().to_dict()
        data["lesion_mirror_axes"] = bad
        with pytest.raises(FCDInputError, match="field 'lesion_mirror_axes' must be null or a list of distinct"):
            BundleMetadata.from_dict(data, source="bundle.json")


def test_detect_on_a_mirroring_bundle_gives_the_mirrored_map_and_says_so(tmp_path, lesion_net):
    from FCDDetectLib.detection.lesion_map import lesion_map_of
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.grid.preprocess import preprocess
    from FCDDetectLib.io.image_io import load_image
    from FCDDetectLib.outputs.report_pages import decision_lines

    image, _, _ = head_scan(tmp_path)
    mirrored = detect(load_bundle(save_bundle(tmp_path / "m", lesion_net, _meta(lesion_mirror_axes=[0]))), [image],
                      device="cpu")
    plain = detect(load_bundle(save_bundle(tmp_path / "p", lesion_net, _meta())), [image], device="cpu")
    scan = load_image(image)
    prep = preprocess([scan], [4.0, 4.0, 4.0], [24, 28, 24])
    expected = lesion_map_of(lesion_net, prep.tensor.unsqueeze(0), prep, head_mask(scan.array), mirror_axes=[0])
    # the same passes as above (measured: identical); 1e-6 for another CPU's kernels
    np.testing.assert_allclose(mirrored.lesion_map, expected, atol=1e-6)
    assert float(np.abs(mirrored.lesion_map - plain.lesion_map).max()) > 1e-3
    assert mirrored.lesion_json()["mirror_axes"] == [0] and plain.lesion_json()["mirror_axes"] == []
    write_detection(mirrored, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert summary["lesion_map"]["mirror_axes"] == [0]
    said = [text for _, text in decision_lines(mirrored)]
    assert any("mirrored copies" in text and "0 = left-right" in text for text in said), said
    assert not any("mirrored" in text for _, text in decision_lines(plain))  # said only where it happens
