"""One synthetic subject: deformed MNI152 anatomy -> T1w, FLAIR (and lesion ROI) on scanner grids.

Two steps, so that a subject can be scanned more than once (``fcd synth --rescans``):
:func:`make_anatomy` draws what belongs to the person (the deformation of the template, the
lesion) and :func:`scan_anatomy` what belongs to one session (the grids' position and
obliquity, bias field, noise, intensity scale), following a
:class:`~FCDTrainLib.data.synth.scan_style.ScanStyle`. :func:`make_subject` does both with
one generator in the order the cohort has always used, so the same seed gives the same files.

The sessions of a subject share its world frame (the anatomy does not move; each session's
grids do), which stands for a perfect rigid registration between the scans: the test-retest
benchmark compares two sessions' clusters on a common grid through the affines alone.

Example:
    >>> s = make_subject(np.random.default_rng(3), PROTOCOLS["new"], "small", patient=True)  # doctest: +SKIP
    >>> s.flair.array.shape == s.roi.array.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from FCDDetectLib.choices import MODALITIES
from FCDDetectLib.io.image_io import Image

from FCDTrainLib.data.synth.contrast import STORED_WM, intensity_map, scanner, subject_contrasts
from FCDTrainLib.data.synth.deform import Deformation, random_deformation, sample_on_grid
from FCDTrainLib.data.synth.lesion import Lesion, make_lesion
from FCDTrainLib.data.synth.protocols import TEMPLATE_RESOLUTION, Protocol, make_grid, supersampling
from FCDTrainLib.data.synth.scan_style import CENTRED, RESCAN_MARGINS, ScanStyle, standard_style
from FCDTrainLib.data.synth.template import Template, load_template

SESSION_SCALE = (0.8, 1.25)
"""Intensity scale of a rescan (and of every randomised session), uniform."""


@dataclass
class SynthSubject:
    """T1w and FLAIR images (float32 arrays holding the stored values), the ROI on the FLAIR grid, facts.

    ``brain_masks`` holds each image's brain mask (same grid) when the style writes them;
    ``dtypes`` the numpy type each image is written as; ``sequences`` the
    :class:`~FCDTrainLib.data.synth.protocols.Sequence` of each (acq label, sidecar).
    """

    t1: Image
    flair: Image
    roi: Image | None
    info: dict
    brain_masks: dict[str, Image] = field(default_factory=dict)
    dtypes: dict[str, Any] = field(default_factory=lambda: {"t1": np.int16, "flair": np.int16})
    sequences: dict[str, Any] = field(default_factory=dict)


@dataclass
class Anatomy:
    """What belongs to the person: the template seen through a deformation, and the lesion."""

    template: Template
    deformation: Deformation
    lesion: Lesion | None

    def tissues(self, skull: bool = True) -> dict[str, np.ndarray]:
        """Tissue fraction maps in template space (skull and scalp zero when ``skull`` is False)."""
        t = self.template
        zero = np.zeros_like(t.skull)
        return {
            "gm": self.lesion.gm if self.lesion else t.gm,
            "wm": self.lesion.wm if self.lesion else t.wm,
            "csf": t.csf,
            "skull": t.skull if skull else zero,
            "scalp": t.scalp if skull else zero,
        }


def make_anatomy(rng: np.random.Generator, size: str = "small", patient: bool = False, subtlety: float = 0.3,
                 signs: dict[str, float] | None = None) -> Anatomy:
    """Deformation and (for a patient) lesion of one subject; ``signs`` as in :func:`make_lesion`."""
    template = load_template(TEMPLATE_RESOLUTION[size])
    deformation = random_deformation(rng, template.head_box_mm)
    lesion = make_lesion(rng, template, subtlety, signs) if patient else None
    return Anatomy(template, deformation, lesion)


def scan_anatomy(anatomy: Anatomy, style: ScanStyle, size: str, rng: np.random.Generator,
                 session: int = 1) -> SynthSubject:
    """One session's T1w and FLAIR of ``anatomy`` scanned in ``style``; ``rng`` draws this session's effects.

    Session 1 of a standard style is the cohort as it always was (centred head, intensity
    scale 1); other sessions and randomised styles draw the field-of-view margins (a new
    position) and an intensity scale (:data:`SESSION_SCALE`).
    """
    from FCDTrainLib.data.synth.scanner_effects import random_scanner, store

    template, lesion = anatomy.template, anatomy.lesion
    tissues = anatomy.tissues(style.skull)
    box = (template.head_box_mm[0] - 6.0, template.head_box_mm[1] + 6.0)
    plain = session == 1 and not style.randomized
    brain = np.clip(template.gm + template.wm + template.csf, 0, 1) if (not style.skull) else None
    images, masks, dtypes = {}, {}, {}
    roi = None
    for key in MODALITIES:
        sequence = style.sequence(key)
        margin_range = style.margin_mm.get(key, CENTRED)
        if not plain and margin_range == CENTRED:
            margin_range = RESCAN_MARGINS
        margins = None if margin_range == CENTRED else rng.uniform(*margin_range, (2, 3))
        shape, affine = make_grid(sequence, size, box, rng, tilt_deg=style.tilt_deg.get(key, 3.0), margins=margins)
        noise_free = intensity_map(tissues, style.contrasts[key], getattr(lesion, f"{key}_add") if lesion else None)
        fields = [noise_free] + ([lesion.roi] if lesion is not None and key == "flair" else [])
        fields += [brain] if brain is not None else []
        sampled = sample_on_grid(fields, template.affine, shape, affine, anatomy.deformation, supersampling(sequence, size))
        thick = max(sequence.zooms[size]) / min(sequence.zooms[size]) > 1.5
        level = style.noise[key] * (0.7 if thick else 1.0)
        wm_value = STORED_WM[key] * style.contrasts[key]["wm"]
        if style.randomized:
            measured = random_scanner(sampled[0] * STORED_WM[key], rng, style, key, wm_value, level)
        else:
            measured = scanner(sampled[0] * STORED_WM[key], rng, affine, wm_value, level)
        if brain is not None:
            inside = sampled[-1] >= 0.5
            measured = np.where(inside, measured, np.float32(0.0))
            if style.brain_mask:
                masks[key] = Image(inside, affine)
        scale = 1.0 if plain else float(rng.uniform(*SESSION_SCALE))
        stored, dtypes[key] = store(measured, style, scale, wm_value)
        images[key] = Image(stored, affine)
        if lesion is not None and key == "flair":
            soft = sampled[1]
            peak = float(soft.max())
            mask = soft >= min(0.5, 0.5 * peak) if peak > 0 else np.zeros(shape, bool)  # never empty in practice
            roi = Image(mask, affine)
    info: dict = {"protocol": style.protocol, "noise": round(style.noise["flair"], 4)}
    if style.randomized or not style.skull or style.storage != "int16":
        info["scans"] = style.facts()
    if session > 1 or not plain:
        info["session"] = session
    if lesion is not None:
        info.update(lesion.info)
        voxel_mm3 = abs(float(np.linalg.det(roi.affine[:3, :3])))
        info["roi_volume_cm3"] = round(float(roi.array.sum()) * voxel_mm3 / 1000, 2)
    return SynthSubject(images["t1"], images["flair"], roi, info, masks, dtypes, {"t1": style.t1, "flair": style.flair})


def make_subject(
    rng: np.random.Generator, protocol: Protocol, size: str = "small", patient: bool = False, subtlety: float = 0.3
) -> SynthSubject:
    """A random subject scanned with ``protocol``; a patient carries one FCD-II lesion."""
    anatomy = make_anatomy(rng, size, patient, subtlety)
    contrasts = subject_contrasts(rng)
    noise = float(rng.uniform(0.015, 0.035))
    return scan_anatomy(anatomy, standard_style(protocol, contrasts, noise), size, rng)
