"""FCDDetectLib.explain.cams: planted evidence, orientation, no side effects, bad input.

The planted model (Testing/builders/planted_model.py) is a real MONAI ResNet-18 trained so
that only a bright blob decides class 1. Its floats depend on the training seed, the CPU,
the BLAS build and the thread count, so every verdict here that reads them has a margin
measured over training seeds 0-4 with 1 torch thread and seeds 0-1 with 2 threads
(``benchmarks/numerics_spread.py``,
figures in ``benchmarks/results-numerics.json``); ``make test-repeat`` reruns these tests
(marker ``numerics``) under ``FCD_TEST_SEED=0..4``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from FCDDetectLib.choices import EXPLANATION_METHODS as METHODS
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.cams import _upsample, explain
from FCDDetectLib.networks.resnets import build_resnet

from Testing.builders.planted_cases import CENTERS, local_heat_score
from Testing.builders.planted_model import train_planted_model

pytestmark = pytest.mark.numerics

@pytest.fixture(scope="module")
def planted():
    return train_planted_model()


@pytest.fixture(scope="module")
def heatmaps(planted):
    """{(method, center): heatmap} for the positive test volumes."""
    maps = {}
    for center in CENTERS:
        x = planted.to_input(planted.make_volume(center, seed=sum(center)))
        for method in METHODS:
            maps[method, center] = explain(planted.model, x, method=method)
    return maps


def test_planted_model_learned_the_blob(planted):
    # Measured worst over seeds 0-4 (1 thread) and 0-1 (2 threads): accuracy 1.0, blob p >= 0.73, control p <= 0.002.
    assert planted.accuracy >= 0.9
    for center in CENTERS:
        assert planted.probability(planted.make_volume(center, seed=sum(center))) > 0.5
    assert planted.probability(planted.make_volume(None, seed=5)) < 0.1


# Localisation thresholds per method, about half the worst case measured over training seeds 0-4
# with 1 torch thread and 0-1 with 2 (3 blob positions each; benchmarks/results-numerics.json;
# 2 threads moved a Heat-Score by 0.15 at most):
#   gradcam++:  max of the map inside the blob >= 0.975, Heat-Score >= 1.25, mean in/out >= 1.32
#   smoothgrad: max inside the blob >= 0.944, Heat-Score >= 2.79, mean in/out >= 3.69
# The top-1% centroid is not judged: CAM maps are flat beyond the last layer4 cell centre, so the
# top voxels can be a plateau reaching past the blob (centroids up to 10.6 voxels with the peak
# inside it). Plain Grad-CAM is left out: on this model its localisation is a property of the
# training run, not of the code. With seed 4 it points away from the blob (Heat-Score -0.78 to
# -0.36, inside max 0.62) while Grad-CAM++ and SmoothGrad find it (mean-gradient channel
# weights can be negative for the very channels that see the blob); on another CPU seed 0
# gave a top-1% centroid 5.1 voxels away. Its computation is checked against a manual
# one (test_gradcam_matches_manual_computation).
LOCALISATION = {
    "gradcam++": {"inside_max": 0.8, "heat_score": 0.6, "in_out": 1.15},
    "smoothgrad": {"inside_max": 0.8, "heat_score": 1.4, "in_out": 1.8},
}


@pytest.mark.parametrize("method", sorted(LOCALISATION))
def test_planted_evidence_peaks_on_blob_with_heat_score_above_threshold(planted, heatmaps, method):
    limits = LOCALISATION[method]
    figures = []
    for center in CENTERS:
        heat = heatmaps[method, center]
        roi = planted.blob_mask(center)
        inside_max, hs = float(heat[roi].max()), local_heat_score(heat, roi)
        in_out = float(heat[roi].mean() / heat[~roi].mean())
        figures.append(f"{center}: max inside {inside_max:.3f}, HS {hs:.2f}, in/out {in_out:.2f}")
        assert inside_max >= limits["inside_max"], f"{method} {figures[-1]}"
        assert hs > limits["heat_score"], f"{method} {figures[-1]}"
        # the pitfall of MONAI's inverted post-processing: high, not low, on the blob
        assert in_out > limits["in_out"], f"{method} {figures[-1]}"
    print(method, "; ".join(figures))


def test_heat_score_module_agrees_when_present(planted, heatmaps):
    heat_score = pytest.importorskip("FCDDetectLib.maps.heat_score").heat_score
    roi = planted.blob_mask(CENTERS[0])
    heat = heatmaps["gradcam", CENTERS[0]]
    assert heat_score(heat, roi) == pytest.approx(local_heat_score(heat, roi), rel=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_output_contract(heatmaps, method):
    heat = heatmaps[method, CENTERS[0]]
    assert heat.shape == (32, 32, 32) and heat.dtype == np.float32
    assert heat.min() == 0.0 and heat.max() == 1.0


def test_gradcam_matches_manual_computation(planted):
    """Grad-CAM by hand (hooks, mean gradients, ReLU) equals explain at the cell centres."""
    model = copy.deepcopy(planted.model).eval()
    x = planted.to_input(planted.make_volume((16, 8, 24), seed=3))
    store = {}

    def keep(_module, _inputs, output):
        store["acts"] = output
        output.register_hook(lambda grad: store.__setitem__("grads", grad))

    handle = model.layer4.register_forward_hook(keep)
    model(x)[0, 1].backward()
    handle.remove()
    weights = store["grads"].mean(dim=(2, 3, 4), keepdim=True)
    cam = torch.relu((weights * store["acts"]).sum(1))[0].detach().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    heat = explain(planted.model, x, "gradcam")
    np.testing.assert_allclose(heat[::8, ::8, ::8], cam, atol=1e-5)


def test_gradcam_pp_undoes_monai_inversion(planted):
    """MONAI's default post-processing gives 1 - (our map): ours is the non-inverted one."""
    from monai.visualize import GradCAMpp

    x = planted.to_input(planted.make_volume((16, 16, 16), seed=4))
    ours = explain(planted.model, x, "gradcam++", upsampling="captum")  # MONAI's own interpolation
    monai_default = GradCAMpp(copy.deepcopy(planted.model), target_layers="layer4")(x, class_idx=1)
    monai_default = monai_default[0, 0].detach().numpy()
    np.testing.assert_allclose(ours, 1.0 - monai_default, atol=1e-5)
    roi = planted.blob_mask((16, 16, 16))
    assert monai_default[roi].mean() < monai_default[~roi].mean()  # MONAI's default: low on the blob
    assert ours[roi].mean() > ours[~roi].mean()  # ours: high on the blob


def test_aligned_upsampling_puts_cells_on_their_receptive_field_centres():
    model = build_resnet(18, geometry="paper", widen_factor=0.125)  # strides (16, 32, 32)
    cam = torch.rand(1, 1, 3, 2, 2)
    up = _upsample(model, cam, (48, 64, 64), "aligned")[0, 0]
    torch.testing.assert_close(up[::16, ::32, ::32], cam[0, 0])
    torch.testing.assert_close(up[8, 0, 0], (cam[0, 0, 0, 0, 0] + cam[0, 0, 1, 0, 0]) / 2)  # trilinear between
    torch.testing.assert_close(up[47, 63, 63], cam[0, 0, 2, 1, 1])  # edge value beyond the last centre
    captum = _upsample(model, cam, (48, 64, 64), "captum")[0, 0]
    # captum's interpolate centres cell 0 of the first axis on voxel 7.5: flat up to voxel 7,
    # i.e. shifted by (16 - 1) / 2 voxels against the receptive field
    torch.testing.assert_close(captum[:8, 0, 0], cam[0, 0, 0, 0, 0].expand(8))
    assert not torch.allclose(up[1:8, 0, 0], cam[0, 0, 0, 0, 0].expand(7))


def test_zero_range_map_returns_zeros():
    model = build_resnet(18, geometry="medicalnet", widen_factor=0.125)
    with torch.no_grad():
        model.fc.weight.zero_()  # no evidence anywhere: Grad-CAM is constant 0
    heat = explain(model, torch.randn(1, 1, 32, 32, 32), "gradcam")
    assert heat.dtype == np.float32 and heat.shape == (32, 32, 32) and not heat.any()


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(getattr(m, name))
        for m in model.modules()
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


@pytest.mark.parametrize("method", METHODS)
def test_no_side_effects_on_the_model(method):
    torch.manual_seed(0)
    model = build_resnet(18, in_channels=2, geometry="medicalnet", widen_factor=0.125)
    for name, parameter in model.named_parameters():  # frozen stages, as transfer learning leaves them
        parameter.requires_grad_(name.startswith(("layer4.", "fc.")))
    model.train()
    model.bn1.eval()  # a mixed state must come back exactly
    grad = torch.full_like(model.fc.weight, 7.0)
    model.fc.weight.grad = grad
    state = {k: v.clone() for k, v in model.state_dict().items()}
    requires = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    hooks = _hook_count(model)
    x = torch.randn(1, 2, 24, 32, 24)
    x_before = x.clone()

    heat = explain(model, x, method, nt_samples=2)

    assert heat.shape == (24, 32, 24)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == requires
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert _hook_count(model) == hooks
    assert model.fc.weight.grad is grad and torch.all(grad == 7.0)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "fc.weight")
    for key, value in model.state_dict().items():  # eval inside: BN statistics untouched
        assert torch.equal(value, state[key]), key
    assert torch.equal(x, x_before) and not x.requires_grad


def test_target_class_changes_the_evidence(planted, heatmaps):
    center = CENTERS[2]
    x = planted.to_input(planted.make_volume(center, seed=sum(center)))
    control_evidence = explain(planted.model, x, "smoothgrad", target_class=0)
    assert not np.allclose(control_evidence, heatmaps["smoothgrad", center])


def test_bad_input():
    model = build_resnet(18, geometry="medicalnet", widen_factor=0.125)
    x = torch.zeros(1, 1, 16, 16, 16)
    with pytest.raises(FCDInputError, match="unknown explanation method 'occlusion'"):
        explain(model, x, "occlusion")
    with pytest.raises(FCDInputError, match=r"expected \(1, C, X, Y, Z\)"):
        explain(model, torch.zeros(1, 16, 16, 16))
    with pytest.raises(FCDInputError, match=r"expected \(1, C, X, Y, Z\)"):
        explain(model, torch.zeros(2, 1, 16, 16, 16))
    with pytest.raises(FCDInputError, match="2 channel.*expects 1"):
        explain(model, torch.zeros(1, 2, 16, 16, 16))
    with pytest.raises(FCDInputError, match="target class 2"):
        explain(model, x, target_class=2)
    with pytest.raises(FCDInputError, match="nt_samples"):
        explain(model, x, "smoothgrad", nt_samples=0)
    with pytest.raises(FCDInputError, match="upsampling"):
        explain(model, x, upsampling="nearest")
