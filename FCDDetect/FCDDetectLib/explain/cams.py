"""Heatmaps: where a 3D ResNet found evidence for a class.

Methods (all return an (X, Y, Z) float32 map on the input grid, min-max normalised to
[0, 1], high = evidence for ``target_class``; a map without any spread, e.g. a Grad-CAM
whose ReLU removed everything, comes back as all zeros):

- ``gradcam``: Grad-CAM on the chosen stage (``layer``, default ``layer4``), what captum's
  ``LayerGradCam`` with ``relu_attributions=True`` computes (Grad-CAM's ReLU; captum's
  default is off), the method of the paper (on layer4); hand-written so that ``fcd detect``
  never imports captum.
- ``gradcam++``: ``monai.visualize.GradCAMpp`` on the chosen stage with *our own* min-max
  (MONAI's default post-processing maps the maximum to 0, i.e. inverts the map).
- ``layercam``: LayerCAM (Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring
  Hierarchical Class Activation Maps for Localization", IEEE TIP 30, 2021):
  ``ReLU(sum_k ReLU(dY/dA_k) * A_k)``, each activation weighted by its *own* positive
  gradient instead of one channel-wide average. Grad-CAM's channel average is what
  makes shallow stages useless (their gradients change sign within a channel and the
  average cancels); the element-wise weights keep them, so layer2/layer3 maps are
  sharper (finer cells, smaller receptive fields). We chose it over Grad-CAM++ (also
  channel-wide weights) and over XGrad-CAM (channel-wide too) for this reason.

Stages (``layer``): ``layer2``, ``layer3``, ``layer4`` or ``multi``, one map fused from
the three: each stage's map is upsampled to the input grid and min-max normalised, and
``multi`` is their element-wise mean (our choice; LayerCAM's paper also fuses stages of
one network into one map). The coarse layer4 map says *where in the head*, the shallow
stages sharpen it; the mean keeps a peak where the stages agree. SmoothGrad works on the
input and ignores ``layer``.

Every CAM map lives on its stage's grid and is upsampled trilinearly. ``upsampling="aligned"``
(default) puts each cell's value on the centre of its receptive field (voxel k * stride);
``upsampling="captum"`` uses captum's ``LayerAttribution.interpolate(...,
interpolate_mode="trilinear")`` as the paper did, which places cell k at
(k + 0.5) * stride - 0.5, i.e. (stride - 1) / 2 voxels off (3.5 voxels per axis for the
``medicalnet`` geometry's layer4, 7.5 / 15.5 / 15.5 for ``paper``).

- ``smoothgrad``: captum ``NoiseTunnel`` over ``Saliency`` (absolute input gradients),
  ``nt_samples`` noisy copies with noise sd = ``noise_level`` x (max - min) of the input;
  channels (modalities) are merged by the maximum of the absolute gradients. No other
  smoothing is applied, so this map is voxel-fine but grainy.

The model runs in eval mode (each module's mode is restored afterwards), parameters'
``requires_grad`` and ``.grad`` are left as they were and no hook stays registered.

Example:
    >>> import torch
    >>> from FCDDetectLib.networks.resnets import build_resnet
    >>> from FCDDetectLib.explain.cams import explain
    >>> model = build_resnet(18, geometry="medicalnet")
    >>> heat = explain(model, torch.randn(1, 1, 32, 32, 32), method="gradcam")
    >>> heat.shape, heat.dtype
    ((32, 32, 32), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from FCDDetectLib.choices import CAM_METHODS, DEFAULT_LAYER
from FCDDetectLib.choices import EXPLANATION_LAYERS as LAYERS
from FCDDetectLib.choices import EXPLANATION_METHODS as METHODS
from FCDDetectLib.errors import FCDInputError

__all__ = ["MULTI_STAGES", "explain", "minmax_normalise"]

MULTI_STAGES = ("layer2", "layer3", "layer4")
"""The stages fused by ``layer="multi"``."""
UPSAMPLING = ("aligned", "captum")
DEFAULT_UPSAMPLING = "aligned"  # "captum" reproduces the paper's interpolation (half a cell off)
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def explain(
    model: torch.nn.Module,
    x: torch.Tensor,
    method: str = "gradcam",
    target_class: int = 1,
    *,
    nt_samples: int = 8,
    noise_level: float = 0.15,
    upsampling: str = DEFAULT_UPSAMPLING,
    layer: str = DEFAULT_LAYER,
) -> np.ndarray:
    """Heatmap of the evidence for ``target_class`` in ``x`` (shape (1, C, X, Y, Z)).

    Args:
        model: a ResNet from :func:`FCDDetectLib.networks.resnets.build_resnet` (needs ``layer4``).
        x: preprocessed input on the model grid; moved to the model's device.
        method: one of :data:`METHODS`.
        target_class: class index (1 = fcd).
        nt_samples: SmoothGrad only: number of noisy samples.
        noise_level: SmoothGrad only: noise sd as a fraction of the input's value range.
        upsampling: CAM methods only: ``"aligned"`` (default) puts each layer4 cell's value
            at the centre of its receptive field; ``"captum"`` uses captum's
            ``LayerAttribution.interpolate`` as the paper did (shifted by (stride - 1) / 2
            voxels, see the module docstring).
        layer: CAM methods only: the stage explained, one of :data:`LAYERS`
            (``multi``: the mean of the layer2-4 maps).

    Returns:
        (X, Y, Z) float32 array in [0, 1] (all zeros when the raw map is constant).

    Example:
        >>> heat = explain(model, x, method="smoothgrad", nt_samples=4)  # doctest: +SKIP
    """
    if method not in METHODS:
        raise FCDInputError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise FCDInputError(f"input tensor has shape {shape}; expected (1, C, X, Y, Z)")
    conv1 = getattr(model, "conv1", None)
    if conv1 is not None and x.shape[1] != conv1.in_channels:
        raise FCDInputError(f"input has {x.shape[1]} channel(s); the model expects {conv1.in_channels}")
    fc = getattr(model, "fc", None)
    if isinstance(fc, torch.nn.Linear) and not 0 <= target_class < fc.out_features:
        raise FCDInputError(f"target class {target_class} out of range for a {fc.out_features}-class model")
    if nt_samples < 1 or noise_level < 0:
        raise FCDInputError("nt_samples must be >= 1 and noise_level >= 0")
    if upsampling not in UPSAMPLING:
        raise FCDInputError(f"unknown upsampling {upsampling!r}; choose one of {', '.join(UPSAMPLING)}")
    if layer not in LAYERS:
        raise FCDInputError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")

    parameter = next(model.parameters())
    inputs = x.detach().to(device=parameter.device, dtype=parameter.dtype).clone().requires_grad_(True)
    compute: Callable[[torch.nn.Module, torch.Tensor, int], torch.Tensor]
    if method in CAM_METHODS:
        raw_cam = _CAMS[method]
        stages = MULTI_STAGES if layer == "multi" else (layer,)

        def compute(m: torch.nn.Module, t: torch.Tensor, c: int) -> torch.Tensor:
            maps = [_upsample(m, raw_cam(m, t, c, stage), t.shape[2:], upsampling, stage) for stage in stages]
            if len(maps) == 1:
                return maps[0]
            return torch.stack([_minmax_tensor(a) for a in maps]).mean(dim=0)

    else:

        def compute(m: torch.nn.Module, t: torch.Tensor, c: int) -> torch.Tensor:
            return _smoothgrad(m, t, c, nt_samples, noise_level)

    with clean_model(model), torch.enable_grad():
        raw = compute(model, inputs, target_class)
    return minmax_normalise(raw.detach().float().cpu().numpy().reshape(x.shape[2:]))


def _gradcam(model: torch.nn.Module, x: torch.Tensor, target_class: int, stage: str = "layer4") -> torch.Tensor:
    """Raw Grad-CAM on the grid of ``stage``, (1, 1, x, y, z): ReLU(sum_k mean(dY/dA_k) * A_k).

    Hand-written (a forward hook and one ``torch.autograd.grad``) instead of captum's
    ``LayerGradCam`` because ``import captum`` costs about 2.6 s on a 2-core CPU and imports
    matplotlib (captum.attr loads its visualisation module), which ``fcd detect`` pays on
    every call. It computes what ``LayerGradCam(model, model.layer4).attribute(x, target,
    relu_attributions=True)`` computes (on any stage): Testing/engine/test_explain_speed.py checks the two
    agree. The hook sits on the whole stage and is removed before returning.
    """
    captured: list[torch.Tensor] = []
    handle = getattr(model, stage).register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        score = model(x)[:, target_class].sum()
    finally:
        handle.remove()
    activations = captured[0]
    (gradients,) = torch.autograd.grad(score, activations)
    weights = gradients.mean(dim=tuple(range(2, gradients.ndim)), keepdim=True)
    return F.relu((weights * activations).sum(dim=1, keepdim=True))



def _gradcam_pp(model: torch.nn.Module, x: torch.Tensor, target_class: int, stage: str = "layer4") -> torch.Tensor:
    """Raw Grad-CAM++ on the grid of ``stage``, (1, 1, x, y, z)."""
    from monai.visualize import GradCAMpp

    # No upsampling here (done by _upsample, like Grad-CAM) and identity post-processing:
    # MONAI's default_normalizer maps max -> 0, i.e. inverts the map.
    cam = GradCAMpp(
        nn_module=model, target_layers=stage, upsampler=lambda _size: lambda a: a, postprocessing=lambda a: a
    )
    return cam(x, class_idx=target_class)


def _layercam(model: torch.nn.Module, x: torch.Tensor, target_class: int, stage: str = "layer4") -> torch.Tensor:
    """Raw LayerCAM (Jiang et al. 2021) on the grid of ``stage``, (1, 1, x, y, z).

    Hand-written on a forward hook because neither captum nor MONAI has LayerCAM:
    captum's ``LayerGradientXActivation`` multiplies by the raw (signed) gradient and has
    no switch for LayerCAM's ReLU on the gradient, so it would be the same few lines
    plus a second pass. The hook sits on a whole stage (never on a ReLU module that a
    block calls twice) and is removed before returning.
    """
    captured: list[torch.Tensor] = []
    handle = getattr(model, stage).register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        logits = model(x)
    finally:
        handle.remove()
    activation = captured[0]
    (gradient,) = torch.autograd.grad(logits[:, target_class].sum(), activation)
    return torch.relu((torch.relu(gradient) * activation).sum(dim=1, keepdim=True))


_CAMS: dict[str, Callable[[torch.nn.Module, torch.Tensor, int, str], torch.Tensor]] = {
    "gradcam": _gradcam,
    "gradcam++": _gradcam_pp,
    "layercam": _layercam,
}


def _minmax_tensor(a: torch.Tensor) -> torch.Tensor:
    """Min-max to [0, 1]; a constant map becomes zeros (as :func:`minmax_normalise`)."""
    low, high = a.min(), a.max()
    if not bool(high > low):
        return torch.zeros_like(a)
    return (a - low) / (high - low)


def _upsample(
    model: torch.nn.Module, cam: torch.Tensor, size: tuple[int, ...], upsampling: str, stage: str = "layer4"
) -> torch.Tensor:
    """Trilinear upsampling of a map on the grid of ``stage`` to the input grid.

    With ``"captum"``, captum's ``LayerAttribution.interpolate`` (``F.interpolate``,
    align_corners=False) places cell k at voxel (k + 0.5) * stride - 0.5. The receptive field
    of cell k of these ResNets is centred on voxel k * stride (every convolution and pooling
    is padded "same"), so ``"aligned"`` samples the map at voxel / stride instead
    (``grid_sample`` with align_corners=True, edge values beyond the last cell centre).
    """
    size = tuple(int(n) for n in size)
    if upsampling == "captum":
        from captum.attr import LayerAttribution

        return LayerAttribution.interpolate(cam, size, interpolate_mode="trilinear")
    from FCDDetectLib.networks.resnets import feature_stride

    stride = feature_stride(model, stage)
    axes = []
    for n_in, n_cells, s in zip(size, cam.shape[2:], stride, strict=True):
        coord = torch.arange(n_in, dtype=cam.dtype, device=cam.device) / s
        axes.append(2 * coord / (n_cells - 1) - 1 if n_cells > 1 else torch.zeros_like(coord))
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    # grid_sample's last grid axis is (x=W, y=H, z=D): reverse ours (D, H, W).
    grid = torch.stack((gz, gy, gx), dim=-1)[None]
    return F.grid_sample(cam, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _smoothgrad(
    model: torch.nn.Module, x: torch.Tensor, target_class: int, nt_samples: int, noise_level: float
) -> torch.Tensor:
    from captum.attr import NoiseTunnel, Saliency

    spread = float((x.max() - x.min()).detach())
    stdev = noise_level * spread if spread > 0 else noise_level
    attributions = NoiseTunnel(Saliency(model)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=nt_samples,
        nt_samples_batch_size=1,
        stdevs=stdev,
        target=target_class,
        abs=True,
    )
    return attributions.abs().amax(dim=1, keepdim=True)  # channels -> max |gradient|


def minmax_normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] as float32; a constant (or non-finite) map becomes zeros.

    Example:
        >>> minmax_normalise(np.array([2.0, 4.0, 3.0])).tolist()
        [0.0, 1.0, 0.5]
    """
    heat = np.asarray(heat, dtype=np.float32)
    if not np.isfinite(heat).all():
        return np.zeros_like(heat)
    low, high = float(heat.min()), float(heat.max())
    if not high > low:
        return np.zeros_like(heat)
    scaled = np.subtract(heat, np.float32(low), dtype=np.float32)
    scaled /= np.float32(high - low)  # in place: the same float32 values as (heat - low) / (high - low)
    return scaled


@contextmanager
def clean_model(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards every module's mode, the parameters' requires_grad and
    .grad, and the set of registered hooks are exactly as before (MONAI's CAM classes
    register hooks they never remove, and zero the model's gradients)."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    hooks = [{name: dict(getattr(m, name, {})) for name in _HOOK_DICTS} for m in modules]
    full_backward = [getattr(m, "_is_full_backward_hook", None) for m in modules]
    inplace = [m.__dict__.get("inplace") for m in modules]
    params = list(model.parameters())
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    try:
        yield
    finally:
        for m, mode, saved, full, flag in zip(modules, modes, hooks, full_backward, inplace, strict=True):
            m.training = mode
            for name, before in saved.items():
                current = getattr(m, name, None)
                if current is not None:
                    for key in [k for k in current if k not in before]:
                        del current[key]
            if hasattr(m, "_is_full_backward_hook"):
                m._is_full_backward_hook = full
            if flag is not None:
                m.__dict__["inplace"] = flag
        for p, flag, grad in zip(params, requires, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
