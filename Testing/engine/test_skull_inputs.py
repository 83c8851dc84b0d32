"""Detection and the head mask on inputs with and without skull (brain-extracted).

The planted model's scan (Testing/builders/planted_model.py, 32^3 at 4 mm) is the "brain".
With skull: it sits in a 48^3 field of view inside a dark bone layer (2 voxels, the
intensity of air: it must be filled in by the head mask) and a bright scalp (2 voxels,
1.5 x the brain's intensity, like fat on T1/FLAIR). Brain-extracted: the same brain in
the same field of view with zeros around it, as skull-stripping pipelines hand it over.
Both must be detected, with the heatmap and the clusters inside the head mask.
"""

from __future__ import annotations

import numpy as np
import pytest
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.grid.head_mask import head_mask
from FCDDetectLib.io.image_io import Image

from Testing.builders.planted_model import HEAD_VALUE, save_planted_bundle, train_planted_model

SPACING = 4.0
# Blob centre in the planted cube's voxels. The scans are stored LPS: the engine's RAS
# reorientation flips x and y (31 - i), so the model sees the blob at (24, 16, 16), a layer4
# cell centre, where the planted model's Grad-CAM localises it (Testing/engine/test_explain.py).
CENTER = (7, 15, 16)
PAD = 8  # voxels of field of view around the brain
BONE, SCALP = 2, 2  # layer thicknesses, voxels


@pytest.fixture(scope="module")
def planted():
    return train_planted_model()


@pytest.fixture(scope="module")
def bundle(planted, tmp_path_factory):
    return save_planted_bundle(planted, tmp_path_factory.mktemp("skull") / "planted.fcdbundle",
                               target_spacing=(SPACING,) * 3)


def _affine(shape):
    affine = np.diag([-SPACING, -SPACING, SPACING, 1.0])  # LPS storage
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


@pytest.fixture(scope="module")
def inputs(planted):
    brain = planted.make_volume(CENTER, seed=11)
    shape = tuple(n + 2 * PAD for n in brain.shape)
    inner = (slice(PAD, -PAD),) * 3
    stripped = np.zeros(shape, np.float32)
    stripped[inner] = brain
    skull = np.abs(np.random.default_rng(3).normal(0.0, 1.0, shape)).astype(np.float32)  # air
    outer = PAD - BONE - SCALP
    skull[(slice(outer, -outer),) * 3] = 1.5 * HEAD_VALUE  # scalp
    skull[(slice(PAD - BONE, -(PAD - BONE)),) * 3] = 2.0  # bone: as dark as air
    skull[inner] = brain
    roi = np.zeros(shape, bool)
    roi[inner] = planted.blob_mask(CENTER)
    brain_region = np.zeros(shape, bool)
    brain_region[inner] = brain > 50.0
    affine = _affine(shape)
    return {"skull": Image(skull, affine), "stripped": Image(stripped, affine)}, Image(roi, affine), brain_region


def test_head_mask_on_both(inputs):
    images, _, brain_region = inputs
    with_skull = head_mask(images["skull"].array)
    without = head_mask(images["stripped"].array)
    outer = PAD - BONE - SCALP
    scalp_box = np.zeros(with_skull.shape, bool)
    scalp_box[(slice(outer, -outer),) * 3] = True
    # with skull: the whole head, the dark bone layer filled in, nothing beyond the scalp
    assert with_skull[scalp_box].all() and not with_skull[~scalp_box].any()
    # brain-extracted: the brain itself (its texture never falls below the threshold)
    assert without[brain_region].all() and not without[~scalp_box].any()
    assert without.sum() <= brain_region.sum() * 1.01


@pytest.mark.parametrize("kind", ["skull", "stripped"])
def test_detection_with_and_without_skull(bundle, inputs, kind):
    images, roi, _ = inputs
    image = images[kind]
    result = detect(bundle, [image], roi=roi, method="gradcam", device="cpu")
    head = head_mask(image.array)
    assert result.prediction == "fcd" and result.probability > 0.5, f"{kind}: p={result.probability:.3f}"
    assert not result.heatmap[~head].any(), f"{kind}: map outside the head"
    assert not result.clusters.labels[~head].any()
    assert result.lesion["detected"] is True, f"{kind}: {result.lesion}"
    assert result.lesion["peak_in_roi"] is True, f"{kind}: {result.lesion}"
    assert result.heat_score is not None and result.heat_score > 1.0
