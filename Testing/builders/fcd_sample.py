"""Writes the "FCD sample" shipped in ``FCDDetect/Resources/Sample`` (``make sample``).

- ``fcd-sample-flair.nii.gz``: the planted-evidence recipe of :mod:`Testing.builders.planted_model`
  (a textured ellipsoidal head, one bright soft ball as the "lesion") drawn at 2 mm on a
  64 x 64 x 64 grid (128 mm across, the planted model's 4 mm x 32 field of view), int16;
- ``fcd-sample-lesion.nii.gz``: the ball (radius 20 mm) as a label map on the same grid;
- ``fcd-sample.fcdbundle``: the planted model (ResNet-18, medicalnet geometry, width 1/16, trained
  for 80 steps on planted volumes, seed 0) with a lesion head whose map is *planted*: every
  decoder weight is zero but the path from the input channel, so the lesion logit is
  ``GAIN * (relu(z) - Z_CENTRE)`` of the z-scored input ``z`` (bright voxels are lesion).

The lesion sits at a centre of the model's last-stage cells (model voxel (24, 16, 24), cells
are 8 voxels apart) so Grad-CAM can put its peak there; the scan's texture seed is one whose
texture stays below the lesion map's threshold, so the lesion map has one cluster. The sample
is checked by ``Testing/slicer/test_slicer_sample.py`` (and by the module's self-test in Slicer).

Usage::

    PYTHONPATH=FCDDetect:FCDTrain:. .venv/bin/python -m Testing.builders.fcd_sample [FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from FCDDetectLib.slicer_support.sample_data import SampleFiles, sample_files
from scipy.ndimage import gaussian_filter

from Testing.builders.planted_model import BLOB_CONTRAST, HEAD_VALUE, TEXTURE_SD, head_mask, soft_blob

SCAN_SHAPE = (64, 64, 64)
SCAN_SPACING = 2.0
MODEL_SHAPE = (32, 32, 32)
MODEL_SPACING = 4.0
LESION_MODEL_VOXEL = (24, 16, 24)  # a last-stage cell centre (multiples of 8) in the right hemisphere
RADIUS_MM = 20.0  # the planted model's 5 voxels of 4 mm
TEXTURE_SIGMA_MM = 6.0  # the planted model's 1.5 voxels of 4 mm
WIDEN_FACTOR = 0.0625
TRAIN_STEPS = 80
TRAIN_SEED = 0
SCAN_SEED = 11
GAIN = 4.0
Z_CENTRE = 3.0


def scan_affine() -> np.ndarray:
    """2 mm voxels, RAS axes, the grid centred on the origin."""
    affine = np.diag([SCAN_SPACING] * 3 + [1.0])
    affine[:3, 3] = -SCAN_SPACING * (np.asarray(SCAN_SHAPE) - 1) / 2
    return affine


def lesion_voxel() -> tuple[float, float, float]:
    """The lesion centre in scan voxels: the centre of model voxel ``LESION_MODEL_VOXEL``."""
    ratio = MODEL_SPACING / SCAN_SPACING
    return tuple(ratio * c + (ratio - 1) / 2 for c in LESION_MODEL_VOXEL)  # type: ignore[return-value]


def sample_scan(seed: int = SCAN_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(scan int16, lesion mask uint8), both (I, J, K) on :func:`scan_affine`."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.standard_normal(SCAN_SHAPE), sigma=TEXTURE_SIGMA_MM / SCAN_SPACING)
    texture *= TEXTURE_SD / texture.std()
    radius = RADIUS_MM / SCAN_SPACING
    centre = lesion_voxel()
    volume = np.where(head_mask(SCAN_SHAPE), HEAD_VALUE + texture, 0.0) + rng.normal(0.0, 1.0, SCAN_SHAPE)
    with np.errstate(over="ignore"):  # exp overflows far from the ball: its profile is 0 there
        volume += BLOB_CONTRAST * soft_blob(SCAN_SHAPE, centre, radius)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SCAN_SHAPE], indexing="ij")
    lesion = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return np.clip(np.rint(volume), 0, None).astype(np.int16), lesion.astype(np.uint8)


def plant_lesion_decoder(model, gain: float = GAIN, z_centre: float = Z_CENTRE) -> None:
    """Zero the decoder but the input channel's path: lesion logit = gain * (relu(z) - z_centre)."""
    import torch

    decoder = model.decoder
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.zero_()
        for module in decoder.modules():
            if isinstance(module, torch.nn.BatchNorm3d):  # identity in eval mode
                module.weight.fill_(1.0)
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
        width = decoder.lateral[0].out_channels
        decoder.input_fuse[0].weight[0, width] = 1.0  # fine channel 0 = the input channel
        decoder.out.weight[0, 0] = gain
        decoder.out.bias.fill_(-gain * z_centre)


def sample_model():
    """The planted classifier's weights in a lesion network, with the planted lesion head."""
    from FCDDetectLib.networks.lesion_resnet import build_lesion_resnet

    from Testing.builders.planted_model import train_planted_model

    planted = train_planted_model(shape=MODEL_SHAPE, widen_factor=WIDEN_FACTOR, steps=TRAIN_STEPS, seed=TRAIN_SEED)
    model = build_lesion_resnet(18, in_channels=1, geometry=planted.geometry, widen_factor=WIDEN_FACTOR,
                                decoder_width=4)
    missing, unexpected = model.load_state_dict(planted.model.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("decoder.") for name in missing)
    plant_lesion_decoder(model)
    model.eval()
    return model, planted.accuracy


def write_sample(folder: str | Path | None = None) -> Path:
    """Write the scan, the lesion and the bundle into ``folder`` (default: the shipped sample)."""
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata

    files = sample_files() if folder is None else SampleFiles(Path(folder))
    files.folder.mkdir(parents=True, exist_ok=True)
    scan, lesion = sample_scan()
    for array, path in ((scan, files.scan), (lesion, files.lesion)):
        image = nib.Nifti1Image(array, scan_affine())
        image.set_qform(scan_affine(), code=1)
        image.set_sform(scan_affine(), code=1)
        nib.save(image, path)
    model, accuracy = sample_model()
    metadata = BundleMetadata(
        depth=18, geometry="medicalnet", modalities=["flair"], target_spacing=[MODEL_SPACING] * 3,
        target_shape=list(MODEL_SHAPE), threshold=0.5, name="fcd-sample", head="lesion",
        training={"source": "Testing/builders/fcd_sample.py", "widen_factor": WIDEN_FACTOR, "steps": TRAIN_STEPS,
                  "seed": TRAIN_SEED, "note": "synthetic demonstration model: its only evidence is brightness"},
        metrics={"planted_accuracy": accuracy},
    )
    save_bundle(files.bundle, model, metadata)
    return files.folder


if __name__ == "__main__":
    print(write_sample(sys.argv[1] if len(sys.argv) > 1 else None))
