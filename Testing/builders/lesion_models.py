"""Lesion models with a known map, their bundles and a head-shaped scan, for detection and ensemble tests.

:func:`constant_lesion_net` is a real :class:`~FCDDetectLib.networks.lesion_resnet.LesionResNet` whose
last layer's weights are zero and whose bias gives ``prior``: its lesion map is ``prior`` at every
voxel of the model grid (then 0 outside the head on the input grid), so clusters, the lesion
evidence and an ensemble's mean and spread are known in advance.

Example:
    >>> net = constant_lesion_net(0.9)
    >>> import torch
    >>> round(float(net.lesion_probability(torch.zeros(1, 1, 24, 28, 24)).detach().mean()), 3)
    0.9
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from FCDDetectLib.networks.bundle import save_bundle
from FCDDetectLib.networks.bundle_metadata import BundleMetadata
from FCDDetectLib.networks.lesion_resnet import LesionResNet, build_lesion_resnet

from Testing.builders.medicalnet_checkpoints import WIDTH

SCAN_SHAPE = (40, 46, 36)


def constant_lesion_net(prior: float, seed: int = 3) -> LesionResNet:
    """A lesion model whose lesion map is ``prior`` everywhere (eval mode)."""
    torch.manual_seed(seed)
    net = build_lesion_resnet(18, geometry="medicalnet", widen_factor=WIDTH, decoder_width=8)
    with torch.no_grad():
        net.decoder.out.weight.zero_()
    net.decoder.set_foreground_prior(prior)
    return net.eval()


def lesion_meta(**overrides) -> BundleMetadata:
    """Metadata of a 4 mm lesion model of one FLAIR channel (``overrides`` replace fields)."""
    values = dict(depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[4.0, 4.0, 4.0],
                  target_shape=[24, 28, 24], head="lesion")
    values.update(overrides)
    return BundleMetadata(**values)


def lesion_bundle(folder: Path, prior: float, seed: int = 3, **overrides) -> Path:
    """A saved bundle of :func:`constant_lesion_net` (``overrides`` go to the metadata)."""
    return save_bundle(folder, constant_lesion_net(prior, seed), lesion_meta(**overrides))


def head_scan(folder: Path) -> tuple[Path, Path, tuple[int, int, int]]:
    """A FLAIR with a head-shaped ellipsoid (2.5 x 2.5 x 3 mm, LPS-ish) and an ROI on another grid."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in SCAN_SHAPE], indexing="ij"), -1)
    inside = ((((grid - (np.array(SCAN_SHAPE) - 1) / 2) / (np.array(SCAN_SHAPE) * 0.38)) ** 2).sum(-1) <= 1)
    image = np.where(inside, 100.0, 2.0) + rng.normal(0, 3, SCAN_SHAPE)
    affine = np.diag([-2.5, -2.5, 3.0, 1.0])
    affine[:3, 3] = [50, 60, -50]
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / "flair.nii.gz"
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), image_path)
    roi = np.zeros((30, 30, 30), np.uint8)
    roi[12:18, 12:18, 12:18] = 1
    roi_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    roi_affine[:3, 3] = [-30, -30, -30]
    roi_path = folder / "roi.nii.gz"
    nib.save(nib.Nifti1Image(roi, roi_affine), roi_path)
    return image_path, roi_path, SCAN_SHAPE
