"""A lesion-segmentation head on the classifier's ResNet encoder (``--supervision lesion``).

:class:`LesionResNet` *is* the MONAI ``ResNet`` of :func:`FCDDetectLib.networks.resnets.build_resnet`
(same parameter names, same ``forward`` returning the class logits, same ``layer4`` for
Grad-CAM) plus a ``decoder``: a light top-down path with skip connections from conv1 and
from every stage (layer1-layer4) and from the input itself, ending in one logit channel at
the input resolution. :meth:`LesionResNet.forward_with_lesion` returns both outputs from
one encoder pass.

It follows the spirit of MedicalNet's own segmentation pre-training (Chen et al. 2019,
"Med3D"): a shared 3D ResNet encoder and a light convolutional segmentation head
(MedicalNet's ``conv_seg``). Ours adds skips, since MedicalNet's head upsamples the
1/8-resolution ``layer4`` output only, too coarse for lesions of 8-20 mm.

Why a hand-written decoder and not MONAI's ``UNet``/``BasicUNet`` up-blocks: those assume
a factor-2 pyramid built by their own encoder; here the encoder is the classifier's,
whose stages change resolution by (1, 2, 2) (``paper`` conv1) or not at all (the dilated
``medicalnet`` layer3/layer4). Each step therefore resizes to the skip's own shape
(trilinear interpolation), which fits either geometry and any input size.

Because the parameter names of the encoder are those of the plain ResNet, MedicalNet
checkpoints load into it (:func:`FCDDetectLib.networks.medicalnet.load_medicalnet_weights`
leaves ``decoder.*`` as initialised, like ``fc.*``), and the transfer mode trains
``layer4``, ``fc`` and the decoder (the trainer's transfer mode).

Example:
    >>> import torch
    >>> from FCDDetectLib.networks.lesion_resnet import build_lesion_resnet
    >>> net = build_lesion_resnet(18, geometry="medicalnet", widen_factor=0.25)
    >>> logits, lesion = net.forward_with_lesion(torch.zeros(1, 1, 24, 28, 20))
    >>> tuple(logits.shape), tuple(lesion.shape)
    ((1, 2), (1, 1, 24, 28, 20))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch import nn

from FCDDetectLib.choices import SUPERVISION

HEADS = SUPERVISION
"""Output heads of a model: ``none`` (classifier only, the paper) or ``lesion`` (+ decoder),
one per supervision (:data:`FCDDetectLib.choices.SUPERVISION`)."""

DEFAULT_DECODER_WIDTH = 16
# The output starts at 50 % foreground everywhere (bias 0), as MONAI's and nnU-Net's
# segmentation heads do, not at a low prior (Lin et al. 2017): near a prior of 1e-4 the
# sigmoid's slope is about 1e-4, so the Dice term's gradient vanishes, and the background's
# BCE turns every last-layer weight negative; the map's maximum is then stuck at
# sigmoid(bias) wherever the features are zero (measured: docs/lesion-supervision.md).
_START_PROBABILITY = 0.5


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def _stage_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage (its last block's last convolution)."""
    convs = [m for m in stage[-1].modules() if isinstance(m, nn.Conv3d)]
    return int(convs[-1].out_channels)


class LesionDecoder(nn.Module):
    """Top-down path: lateral 1x1x1 projections of every feature map, resize-and-fuse.

    ``skip_channels`` lists the channels of (conv1, layer1, layer2, layer3, layer4); the
    input volume (``in_channels``) is the last, full-resolution skip.
    """

    def __init__(self, in_channels: int, skip_channels: list[int], width: int = DEFAULT_DECODER_WIDTH,
                 fine_width: int | None = None) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(c, width, kernel_size=1) for c in skip_channels)
        self.fuse = nn.ModuleList(_block(2 * width, width) for _ in skip_channels[:-1])
        # The full-resolution step is the costly one (8 x the voxels of conv1's grid): 1x1x1
        # convolutions only (3x3x3 ones there cost more than the whole encoder on a CPU:
        # measured with torch.profiler, 48 x 56 x 48 inputs). ``width`` channels by default:
        # the first version's 4 (width // 4), started at a low prior, ended with every
        # last-layer weight negative, a map stuck below sigmoid(bias); the head that learned
        # the thin lesions had 16 and bias 0 (docs/lesion-supervision.md). Older bundles give
        # their own ``fine_width`` (FCDDetectLib.networks.bundle reads it from the weights).
        fine = width if fine_width is None else int(fine_width)
        self.input_fuse = nn.Sequential(
            nn.Conv3d(width + in_channels, fine, kernel_size=1, bias=False),
            nn.BatchNorm3d(fine),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv3d(fine, 1, kernel_size=1)
        self.set_foreground_prior(_START_PROBABILITY)

    def set_foreground_prior(self, prior: float) -> None:
        """Start the output at ``prior`` foreground probability everywhere (bias = logit(prior)).

        The decoder starts at 0.5 (see ``_START_PROBABILITY``); tests use this to build a
        head with a known, constant map.

        Example:
            >>> decoder = LesionDecoder(1, [8, 8, 16, 32, 64], width=8)
            >>> decoder.set_foreground_prior(1e-4)
            >>> round(float(torch.sigmoid(decoder.out.bias)[0]), 6)
            0.0001
        """
        if not 0.0 < prior < 1.0:
            raise ValueError(f"foreground prior {prior}: expected a probability in (0, 1)")
        with torch.no_grad():
            self.out.bias.fill_(-math.log((1 - prior) / prior))

    def forward(self, x: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Lesion logits (N, 1, *x.shape[2:]) from the input and the encoder features (shallow first)."""
        top = self.lateral[-1](features[-1])
        for index in range(len(features) - 2, -1, -1):
            skip = self.lateral[index](features[index])
            top = F.interpolate(top, size=skip.shape[2:], mode="trilinear", align_corners=False)
            top = self.fuse[index](torch.cat([top, skip], dim=1))
        top = F.interpolate(top, size=x.shape[2:], mode="trilinear", align_corners=False)
        return self.out(self.input_fuse(torch.cat([top, x], dim=1)))


class LesionResNet(ResNet):
    """MONAI ``ResNet`` + :class:`LesionDecoder`; ``forward`` is the unchanged classifier."""

    def add_lesion_decoder(self, width: int = DEFAULT_DECODER_WIDTH, fine_width: int | None = None) -> None:
        """Attach a freshly initialised decoder sized to this encoder."""
        skips = [int(self.conv1.out_channels)] + [
            _stage_channels(getattr(self, f"layer{i}")) for i in range(1, 5)
        ]
        self.decoder = LesionDecoder(int(self.conv1.in_channels), skips, width, fine_width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Class logits and the feature maps of conv1 and layer1-layer4 (one encoder pass).

        The same operations, in the same order, as ``ResNet.forward``.
        """
        features = []
        x = self.act(self.bn1(self.conv1(x)))
        features.append(x)
        if not self.no_max_pool:
            x = self.maxpool(x)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        pooled = self.avgpool(x).view(x.size(0), -1)
        return self.fc(pooled), features

    def forward_with_lesion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits (N, classes), lesion logits (N, 1, X, Y, Z) at the input resolution)."""
        logits, features = self.encode(x)
        return logits, self.decoder(x, features)

    def lesion_probability(self, x: torch.Tensor) -> torch.Tensor:
        """Voxel lesion probability (sigmoid of the lesion logits), (N, 1, X, Y, Z)."""
        return torch.sigmoid(self.forward_with_lesion(x)[1].float())

    def feature_modules(self) -> list[nn.Module]:
        """The modules whose outputs, in one ``forward``, are :meth:`encode`'s feature maps (in order).

        A forward hook on each collects the features of a pass made for another purpose
        (Grad-CAM's), so :meth:`lesion_probability_from_features` needs no second encoder pass.
        """
        return [self.act, self.layer1, self.layer2, self.layer3, self.layer4]

    def lesion_probability_from_features(self, x: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`lesion_probability` from the feature maps of an encoder pass over the same ``x``.

        Example:
            >>> net = build_lesion_resnet(18, widen_factor=0.25).eval()
            >>> x = torch.zeros(1, 1, 24, 28, 20)
            >>> _, features = net.encode(x)
            >>> bool(torch.equal(net.lesion_probability_from_features(x, features), net.lesion_probability(x)))
            True
        """
        return torch.sigmoid(self.decoder(x, list(features)).float())


def build_lesion_resnet(depth: int, in_channels: int = 1, num_classes: int = 2, geometry: str = "paper", *,
                        widen_factor: float = 1.0, decoder_width: int = DEFAULT_DECODER_WIDTH,
                        fine_width: int | None = None) -> LesionResNet:
    """:func:`~FCDDetectLib.networks.resnets.build_resnet`'s network with a lesion decoder.

    ``fine_width``: channels of the full-resolution step (default ``decoder_width``; bundles
    of the first version have ``max(4, decoder_width // 4)``).

    Example:
        >>> net = build_lesion_resnet(34, geometry="paper", widen_factor=0.25)
        >>> sorted({name.split(".")[0] for name in net.state_dict()})[:3]
        ['bn1', 'conv1', 'decoder']
    """
    from FCDDetectLib.networks.resnets import build_resnet

    model = build_resnet(depth, in_channels, num_classes, geometry, widen_factor=widen_factor,
                         network_class=LesionResNet)
    model.add_lesion_decoder(decoder_width, fine_width)
    return model


def has_lesion_head(model: nn.Module) -> bool:
    """True for a model with a lesion decoder."""
    return isinstance(model, LesionResNet) and hasattr(model, "decoder")
