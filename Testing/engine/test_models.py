"""FCDDetectLib.networks.resnets: geometry, shortcut types, feature-map sizes."""

from __future__ import annotations

import pytest
import torch
from FCDDetectLib.choices import DEPTHS, GEOMETRIES
from FCDDetectLib.networks.resnets import build_resnet, feature_stride, layer4_shape


@pytest.fixture(scope="module")
def r18():
    return {g: build_resnet(18, geometry=g) for g in GEOMETRIES}


def test_paper_geometry_conv1_and_strided_stages(r18):
    model = r18["paper"]
    assert model.conv1.kernel_size == (7, 7, 7)
    assert model.conv1.stride == (1, 2, 2)
    assert model.conv1.padding == (3, 3, 3)
    assert isinstance(model.maxpool, torch.nn.MaxPool3d)
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].conv1.stride == (2, 2, 2)
        assert stage[0].conv1.dilation == (1, 1, 1)
    assert model.fc.out_features == 2 and model.fc.in_features == 512


def test_medicalnet_geometry_dilated_unstrided_late_stages(r18):
    model = r18["medicalnet"]
    assert model.conv1.stride == (2, 2, 2)
    assert model.layer2[0].conv1.stride == (2, 2, 2)
    for stage, dilation in ((model.layer3, 2), (model.layer4, 4)):
        for block in stage:
            for conv in (block.conv1, block.conv2):
                assert conv.stride == (1, 1, 1)
                assert conv.dilation == (dilation,) * 3
                assert conv.padding == (dilation,) * 3
        # shortcut A: the zero-padding shortcut no longer subsamples
        assert stage[0].downsample.keywords["stride"] == 1


@pytest.mark.parametrize("depth", DEPTHS)
def test_layer4_output_size_both_geometries(depth):
    # (X, Y, Z) = (32, 48, 64): paper divides by (16, 32, 32), medicalnet by 8 everywhere
    # the width does not change the geometry: narrow networks keep the test cheap
    paper = build_resnet(depth, geometry="paper", widen_factor=0.125)
    medicalnet = build_resnet(depth, geometry="medicalnet", widen_factor=0.125)
    assert layer4_shape(paper, (32, 48, 64)) == (2, 2, 2)
    assert layer4_shape(medicalnet, (32, 48, 64)) == (4, 6, 8)
    assert feature_stride(paper) == (16, 32, 32)
    assert feature_stride(medicalnet) == (8, 8, 8)


def test_forward_two_channels_and_output_shape():
    model = build_resnet(18, in_channels=2, geometry="medicalnet", widen_factor=0.25).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 24, 28, 24))
    assert out.shape == (2, 2)
    assert model.conv1.weight.shape == (16, 2, 7, 7, 7)


def test_shortcut_types_match_medicalnet():
    r18, r34, r50 = (build_resnet(d) for d in DEPTHS)
    # type A: parameter-free shortcut; no downsample tensors at all
    for model in (r18, r34):
        assert not any("downsample" in k for k in model.state_dict())
    # type B: 1x1x1 conv without bias + BatchNorm, in the first block of every stage
    keys = r50.state_dict()
    for stage in (1, 2, 3, 4):
        assert f"layer{stage}.0.downsample.0.weight" in keys
        assert f"layer{stage}.0.downsample.0.bias" not in keys
        assert f"layer{stage}.0.downsample.1.running_mean" in keys
    assert r50.fc.in_features == 2048
    assert len(r34.layer3) == 6 and len(r50.layer3) == 6 and len(r18.layer3) == 2
    assert "layer1.0.conv3.weight" in keys and "layer1.0.conv3.weight" not in r34.state_dict()


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        build_resnet(101)
    with pytest.raises(ValueError, match="geometry"):
        build_resnet(18, geometry="wide")
