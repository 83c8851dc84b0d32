"""FCDTrainLib.training.transfer: which parameters train, frozen BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch
from FCDDetectLib.networks.resnets import build_resnet
from FCDTrainLib.training.transfer import freeze_batchnorm_stats, set_trainable


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        set_trainable(build_resnet(18, widen_factor=0.125), "head")


def test_set_trainable_transfer_freezes_all_but_layer4_and_fc():
    model = build_resnet(18, geometry="medicalnet", widen_factor=0.25)
    names = set_trainable(model, "transfer")
    params = dict(model.named_parameters())
    assert names == [n for n in params if n.startswith(("layer4.", "fc."))]
    assert names and "fc.weight" in names and "layer4.1.bn2.bias" in names
    for name, p in params.items():
        assert p.requires_grad == name.startswith(("layer4.", "fc.")), name
    # BatchNorm affine parameters of frozen stages are frozen too
    assert not model.bn1.weight.requires_grad and not model.layer3[1].bn2.bias.requires_grad
    # a backward pass gives gradients only to the trainable part
    model.train()
    model(torch.randn(2, 1, 32, 32, 32)).sum().backward()
    assert model.conv1.weight.grad is None and model.layer3[0].conv1.weight.grad is None
    assert model.layer4[0].conv1.weight.grad is not None and model.fc.weight.grad is not None
    # back to everything trainable
    assert set_trainable(model, "all") == list(params)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_batchnorm_running_stats_update_unless_frozen_explicitly():
    model = build_resnet(18, widen_factor=0.125)
    set_trainable(model, "transfer")
    x = torch.randn(2, 1, 32, 32, 32) * 3 + 1
    model.train()
    before = model.bn1.running_mean.clone()
    with torch.no_grad():
        model(x)
    # documented behaviour: requires_grad=False does not stop running-stat updates
    assert not torch.equal(before, model.bn1.running_mean)

    model.train()
    frozen = freeze_batchnorm_stats(model)
    assert "bn1" in frozen and "layer3.0.bn1" in frozen and not any(n.startswith("layer4") for n in frozen)
    stats = {n: m.running_mean.clone() for n, m in model.named_modules() if n in frozen}
    layer4_before = model.layer4[0].bn1.running_mean.clone()
    with torch.no_grad():
        model(x)
    for name, module in model.named_modules():
        if name in frozen:
            assert torch.equal(stats[name], module.running_mean), name
    assert not torch.equal(layer4_before, model.layer4[0].bn1.running_mean)  # trainable BN still learns
