"""One synthetic subject: deformed MNI152 anatomy -> T1w, FLAIR (and lesion ROI) on scanner grids.

Example:
    >>> s = make_subject(np.random.default_rng(3), PROTOCOLS["new"], "small", patient=True)  # doctest: +SKIP
    >>> s.flair.array.shape == s.roi.array.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from FCDDetectLib.io.image_io import Image

from FCDTrainLib.data.synth.contrast import STORED_WM, intensity_map, scanner, subject_contrasts
from FCDTrainLib.data.synth.deform import random_deformation, sample_on_grid
from FCDTrainLib.data.synth.lesion import make_lesion
from FCDTrainLib.data.synth.protocols import TEMPLATE_RESOLUTION, Protocol, make_grid, supersampling
from FCDTrainLib.data.synth.template import load_template


@dataclass
class SynthSubject:
    """T1w and FLAIR images (float32 arrays holding integer values), the ROI on the FLAIR grid, facts."""

    t1: Image
    flair: Image
    roi: Image | None
    info: dict


def make_subject(
    rng: np.random.Generator, protocol: Protocol, size: str = "small", patient: bool = False, subtlety: float = 0.3
) -> SynthSubject:
    """A random subject scanned with ``protocol``; a patient carries one FCD-II lesion."""
    template = load_template(TEMPLATE_RESOLUTION[size])
    deformation = random_deformation(rng, template.head_box_mm)
    lesion = make_lesion(rng, template, subtlety) if patient else None
    tissues = {
        "gm": lesion.gm if lesion else template.gm,
        "wm": lesion.wm if lesion else template.wm,
        "csf": template.csf,
        "skull": template.skull,
        "scalp": template.scalp,
    }
    contrasts = subject_contrasts(rng)
    noise = float(rng.uniform(0.015, 0.035))
    box = (template.head_box_mm[0] - 6.0, template.head_box_mm[1] + 6.0)
    images = {}
    roi = None
    for key, sequence in (("t1", protocol.t1), ("flair", protocol.flair)):
        shape, affine = make_grid(sequence, size, box, rng)
        noise_free = intensity_map(tissues, contrasts[key], getattr(lesion, f"{key}_add") if lesion else None)
        fields = [noise_free] + ([lesion.roi] if lesion is not None and key == "flair" else [])
        sampled = sample_on_grid(fields, template.affine, shape, affine, deformation, supersampling(sequence, size))
        thick = max(sequence.zooms[size]) / min(sequence.zooms[size]) > 1.5
        level = noise * (0.7 if thick else 1.0)
        wm_value = STORED_WM[key] * contrasts[key]["wm"]
        stored = scanner(sampled[0] * STORED_WM[key], rng, affine, wm_value, level)
        images[key] = Image(np.round(np.clip(stored, 0, 32767)).astype(np.float32), affine)
        if len(sampled) > 1:
            soft = sampled[1]
            peak = float(soft.max())
            mask = soft >= min(0.5, 0.5 * peak) if peak > 0 else np.zeros(shape, bool)  # never empty in practice
            roi = Image(mask, affine)
    info: dict = {"protocol": protocol.name, "noise": round(noise, 4)}
    if lesion is not None:
        info.update(lesion.info)
        voxel_mm3 = abs(float(np.linalg.det(roi.affine[:3, :3])))
        info["roi_volume_cm3"] = round(float(roi.array.sum()) * voxel_mm3 / 1000, 2)
    return SynthSubject(images["t1"], images["flair"], roi, info)
