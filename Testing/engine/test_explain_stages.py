"""Stages and LayerCAM: a chosen stage, the fused multi-stage map, and finer maps at shallow stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from FCDDetectLib.choices import CAM_METHODS
from FCDDetectLib.choices import EXPLANATION_LAYERS as LAYERS
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.cams import MULTI_STAGES, explain, minmax_normalise
from FCDDetectLib.networks.bundle_metadata import BundleMetadata
from FCDDetectLib.networks.resnets import build_resnet, feature_stride


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_resnet(18, geometry="paper", widen_factor=0.125)


def test_stage_strides_of_the_paper_geometry(small_model):
    assert feature_stride(small_model, "layer2") == (4, 8, 8)
    assert feature_stride(small_model, "layer3") == (8, 16, 16)
    assert feature_stride(small_model, "layer4") == (16, 32, 32)


@pytest.mark.parametrize("method", CAM_METHODS)
def test_multi_is_the_mean_of_the_normalised_stage_maps(small_model, method):
    x = torch.randn(1, 1, 32, 48, 40, generator=torch.Generator().manual_seed(1))
    stages = [explain(small_model, x, method=method, layer=stage) for stage in MULTI_STAGES]
    fused = explain(small_model, x, method=method, layer="multi")
    assert fused.shape == (32, 48, 40) and fused.dtype == np.float32
    np.testing.assert_allclose(fused, minmax_normalise(np.mean(stages, axis=0)), atol=1e-5)


def test_every_stage_gives_a_map_on_the_input_grid(small_model):
    x = torch.randn(1, 1, 32, 48, 40, generator=torch.Generator().manual_seed(2))
    for layer in LAYERS:
        heat = explain(small_model, x, method="layercam", layer=layer)
        assert heat.shape == (32, 48, 40) and 0.0 <= heat.min() and heat.max() <= 1.0


def test_bad_layer_and_bundle_defaults():
    with pytest.raises(FCDInputError, match="layer"):
        explain(build_resnet(18, widen_factor=0.125), torch.zeros(1, 1, 16, 16, 16), layer="layer1")
    meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[2.0] * 3,
                          target_shape=[32, 32, 32], explain_method="layercam", explain_layer="multi")
    assert BundleMetadata.from_dict(meta.to_dict()) == meta
    data = meta.to_dict()
    data["explain_layer"] = "conv1"
    with pytest.raises(FCDInputError, match="explain_layer"):
        BundleMetadata.from_dict(data)
    del data["explain_layer"], data["explain_method"]  # a bundle written before these fields
    old = BundleMetadata.from_dict(data)
    assert old.explain_method is None and old.explain_layer is None


def _top_centroid_distance(heat: np.ndarray, center) -> float:
    top = heat >= np.quantile(heat, 0.99)  # the top 1% of the voxels
    return float(np.linalg.norm(np.argwhere(top).mean(axis=0) - np.asarray(center)))


@pytest.fixture(scope="module")
def paper_planted():
    """The planted-blob classifier with the paper's geometry: layer4 cells are 16 x 32 x 32 voxels."""
    from Testing.builders.planted_model import train_planted_model

    return train_planted_model(geometry="paper", seed=0)


def test_shallow_stages_localise_planted_evidence_better_than_layer4(paper_planted):
    """Margins measured over model seeds 0-2 (5 random blob positions each, /tmp probe, 2-core CPU):
    mean distance of the top-1% centroid from the blob centre, voxels

        seed   layer4   gradcam layer2   layercam layer2   gradcam multi   layercam multi
        0      11.0     3.1              4.9               2.8             4.4
        1      12.9     7.4              7.0               7.7             7.8
        2      13.5     3.8              5.1               5.0             8.4

    The worst ratio to layer4 was 0.62 (layercam multi, seed 2): the assertion asks for 0.8.
    layer3 was not better than layer4 (10.4-13.8 voxels) and is not asserted.
    """
    from Testing.builders.planted_model import random_center

    planted = paper_planted
    assert planted.accuracy >= 0.9
    rng = np.random.default_rng(100)  # the probe's positions for seed 0
    centers = [random_center(planted.shape, planted.radius, rng) for _ in range(5)]
    distances: dict[tuple[str, str], list[float]] = {}
    for center in centers:
        x = planted.to_input(planted.make_volume(center, seed=sum(center)))
        for method, layer in [("gradcam", "layer4"), ("gradcam", "layer2"), ("layercam", "layer2"),
                              ("gradcam", "multi"), ("layercam", "multi")]:
            heat = explain(planted.model, x, method=method, layer=layer)
            distances.setdefault((method, layer), []).append(_top_centroid_distance(heat, center))
    means = {key: float(np.mean(value)) for key, value in distances.items()}
    coarse = means["gradcam", "layer4"]
    for key in [("gradcam", "layer2"), ("layercam", "layer2"), ("gradcam", "multi"), ("layercam", "multi")]:
        assert means[key] < 0.8 * coarse, f"{key}: {means[key]:.1f} vs layer4 {coarse:.1f} voxels ({means})"
