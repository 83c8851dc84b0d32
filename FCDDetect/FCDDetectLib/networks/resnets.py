"""3D ResNet-18/34/50 classifiers built from MONAI's ``ResNet``.

Two geometries share one parameter layout (so MedicalNet weights load into either):

- ``paper``: conv1 7x7x7 with stride (1, 2, 2), max pool, strided layer2-layer4
  (section 2.2 of Lasagni et al.). The output of ``layer4`` is 1/16 of the input along
  the first axis and 1/32 along the other two.
- ``medicalnet``: conv1 stride 2, max pool, strided layer2, then layer3 and layer4 with
  stride 1 and dilation 2 and 4 (the geometry MedicalNet was pre-trained with). The output
  of ``layer4`` is 1/8 of the input along every axis: a finer Grad-CAM, more memory.

Shortcut type A (parameter-free zero-padding) for ResNet-18/34 and B (1x1x1 convolution
+ BatchNorm, no bias) for ResNet-50, as MedicalNet
(``monai.networks.nets.resnet.get_medicalnet_pretrained_resnet_args``).

Example:
    >>> import torch
    >>> from FCDDetectLib.networks.resnets import build_resnet
    >>> model = build_resnet(18, in_channels=1, geometry="medicalnet")
    >>> model(torch.zeros(1, 1, 32, 32, 32)).shape
    torch.Size([1, 2])

Which layers train (transfer learning) is the trainer's business (its ``transfer`` module).
"""

from __future__ import annotations

from functools import partial

import torch
from monai.networks.nets import ResNet
from monai.networks.nets.resnet import get_inplanes, get_medicalnet_pretrained_resnet_args

from FCDDetectLib.choices import DEPTHS, GEOMETRIES

# depth -> (block type, blocks per stage); the same table as MONAI's resnet_params.
_LAYOUT = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
}
# Stages that MedicalNet runs undilated-but-unstrided, with their dilation.
_MEDICALNET_DILATION = {"layer3": 2, "layer4": 4}


def build_resnet(
    depth: int,
    in_channels: int = 1,
    num_classes: int = 2,
    geometry: str = "paper",
    *,
    widen_factor: float = 1.0,
    network_class: type[ResNet] = ResNet,
) -> ResNet:
    """Build a randomly initialised 3D ResNet classifier.

    Args:
        depth: 18, 34 or 50.
        in_channels: 1 (one modality) or 2 (e.g. T1 + FLAIR).
        num_classes: outputs of ``model.fc`` (2: control, fcd).
        geometry: ``"paper"`` or ``"medicalnet"`` (see the module docstring).
        widen_factor: scales the stage widths (64, 128, 256, 512); 1.0 is the standard
            network that MedicalNet weights fit. Smaller values only serve tests and demos.
        network_class: ``ResNet`` or a subclass taking the same arguments (the lesion model,
            :class:`FCDDetectLib.networks.lesion_resnet.LesionResNet`).

    Returns:
        A ``monai.networks.nets.ResNet``; last stage ``model.layer4``, classifier ``model.fc``.

    Example:
        >>> model = build_resnet(50, in_channels=2, geometry="paper")
        >>> model.fc.in_features
        2048
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth!r} is not supported; choose one of {DEPTHS}")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry {geometry!r} is not supported; choose one of {GEOMETRIES}")
    if in_channels < 1 or num_classes < 1:
        raise ValueError("in_channels and num_classes must be positive")
    block, layers = _LAYOUT[depth]
    bias_downsample, shortcut_type = get_medicalnet_pretrained_resnet_args(depth)
    model = network_class(
        block=block,
        layers=layers,
        block_inplanes=get_inplanes(),
        spatial_dims=3,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=(1, 2, 2) if geometry == "paper" else 2,
        no_max_pool=False,
        shortcut_type=shortcut_type,
        widen_factor=widen_factor,
        num_classes=num_classes,
        bias_downsample=bias_downsample,
    )
    if geometry == "medicalnet":
        for name, dilation in _MEDICALNET_DILATION.items():
            _dilate_stage(model, getattr(model, name), dilation)
    return model


def _dilate_stage(model: ResNet, stage: torch.nn.Sequential, dilation: int) -> None:
    """Turn a strided MONAI stage into MedicalNet's unstrided, dilated one, in place.

    MONAI's ``ResNet`` has no dilation option, so the 3x3x3 convolutions are adjusted after
    construction: stride 1, dilation ``d`` and padding ``d`` (MedicalNet's ``conv3x3x3``),
    which keeps the spatial size. Parameter shapes do not change. The first block's
    shortcut also loses its stride (1x1x1 convolution for type B, a new zero-padding
    partial for type A, whose stride MONAI bakes into a ``functools.partial``).
    """
    for module in stage.modules():
        if isinstance(module, torch.nn.Conv3d):
            if module.kernel_size == (3, 3, 3):
                module.dilation = (dilation,) * 3
                module.padding = (dilation,) * 3
            module.stride = (1, 1, 1)
    first = stage[0]
    first.stride = 1
    if isinstance(first.downsample, partial):
        first.downsample = partial(
            model._downsample_basic_block,
            planes=first.downsample.keywords["planes"],
            stride=1,
            spatial_dims=3,
        )


STAGES = ("layer1", "layer2", "layer3", "layer4")


def feature_stride(model: torch.nn.Module, stage: str = "layer4") -> tuple[int, int, int]:
    """Input voxels per cell of ``stage`` (default ``layer4``) along each axis (product of the strides on the way).

    Cell k of the stage has its receptive field centred on input voxel ``k * stride``.

    Example:
        >>> feature_stride(build_resnet(18, geometry="paper"))
        (16, 32, 32)
        >>> feature_stride(build_resnet(18, geometry="paper"), "layer2")
        (4, 8, 8)
        >>> feature_stride(build_resnet(18, geometry="medicalnet"))
        (8, 8, 8)
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    strided: list[torch.nn.Module] = [model.conv1, model.maxpool]
    for name in STAGES[: STAGES.index(stage) + 1]:
        stage_module = getattr(model, name)
        # the main path's 3x3x3 convolutions of the first block (only one of them is strided)
        strided += [
            m for m in stage_module[0].modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3)
        ]
    stride = [1, 1, 1]
    for module in strided:
        s = module.stride
        s = (s,) * 3 if isinstance(s, int) else tuple(s)
        stride = [a * b for a, b in zip(stride, s, strict=True)]
    return tuple(stride)  # type: ignore[return-value]


def layer4_shape(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """Spatial shape of ``model.layer4``'s output for an input of ``input_shape`` (X, Y, Z).

    Runs a forward pass on zeros without gradients; the model's mode is left unchanged.

    Example:
        >>> layer4_shape(build_resnet(18, geometry="medicalnet"), (32, 32, 32))
        (4, 4, 4)
    """
    captured: list[tuple[int, ...]] = []
    handle = model.layer4.register_forward_hook(lambda _m, _i, out: captured.append(tuple(out.shape[2:])))
    was_training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        parameter = next(model.parameters())
        channels = model.conv1.in_channels
        with torch.no_grad():
            model(torch.zeros(1, channels, *input_shape, device=parameter.device, dtype=parameter.dtype))
    finally:
        handle.remove()
        for module, training in was_training.items():
            module.training = training
    return captured[0]
