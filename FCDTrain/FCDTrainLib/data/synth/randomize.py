"""``fcd synth --randomize``: every scan drawn at random, in the spirit of SynthSeg (Billot et al. 2023).

A model trained on one scanner's images learns that scanner. Here each subject gets its own
random :class:`~FCDTrainLib.data.synth.scan_style.ScanStyle` (the ranges are the constants
below, our choice, wide around what clinical scans show) and each lesion its own signs:

- **Contrast** per sequence, around the modality's physiological order: T1w white > grey >
  CSF, FLAIR grey > white > CSF, each ratio drawn (:func:`random_contrasts`), skull and scalp
  brightness too.
- **Resolution**: a 3D acquisition with voxels of :data:`VOXEL_3D` mm (each axis up to 15 %
  apart), or (probability :data:`P_2D`) a 2D one with :data:`SLICE_MM` slices in an axial,
  coronal or sagittal plane and in-plane voxels of :data:`IN_PLANE_2D`; each image on its
  own grid, in its own storage orientation. Voxels average the template along thick axes
  (:func:`FCDTrainLib.data.synth.deform.sample_on_grid`), which is what an acquisition does;
  TorchIO's ``RandomAnisotropy`` / MONAI's ``RandSimulateLowResolution`` would resample an
  already-made image down and up again instead.
- **Scanner**: MONAI ``RandBiasField`` (degree 3, coefficients in +/- :data:`BIAS`),
  Rician noise of :data:`NOISE` x white matter, MONAI ``RandGibbsNoise`` (ringing, alpha in
  :data:`GIBBS`) on a third of the scans.
- **Storage**: int16 with white matter at :data:`WM_STORED` (log-uniform), integers
  0-4095 (12 bit) or floats 0-1 (:data:`STORAGE_WEIGHTS`), a constant offset of up to
  :data:`OFFSET` x white matter on a fifth of the scans, and per session a scale of x0.8-1.25.
- **Head**: skull and scalp removed on :data:`P_BRAIN_EXTRACTED` of the subjects (a brain
  mask written for half of those); obliquity up to :data:`TILT_DEG` degrees about each
  axis; the head anywhere in a field of view with margins of :data:`MARGIN_MM` mm.
- **Lesion signs** (:func:`random_signs`): each FCD-II sign (FLAIR signal under the cortex,
  blurred junction, thicker cortex, transmantle band) present with probability
  :data:`P_SIGN` at a strength of 0.5-1; none is required, but a lesion shows at least one.

Example:
    >>> style = random_style(np.random.default_rng(0), "small")
    >>> style.contrasts["t1"]["wm"] > style.contrasts["t1"]["gm"] > style.contrasts["t1"]["csf"]
    True
    >>> style.contrasts["flair"]["gm"] > style.contrasts["flair"]["wm"] > style.contrasts["flair"]["csf"]
    True
    >>> sorted(random_signs(np.random.default_rng(1)))
    ['blur', 'flair', 'thickening', 'transmantle']
"""

from __future__ import annotations

import numpy as np
from FCDDetectLib.choices import MODALITIES

from FCDTrainLib.data.synth.lesion import SIGNS
from FCDTrainLib.data.synth.protocols import Sequence, thick_flair
from FCDTrainLib.data.synth.scan_style import RANDOM_PROTOCOL, ScanStyle

VOXEL_3D = {"full": (0.8, 1.3), "small": (2.0, 3.5), "tiny": (5.0, 7.0)}
IN_PLANE_2D = {"full": (0.5, 1.0), "small": (1.6, 2.6), "tiny": (4.0, 5.0)}
SLICE_MM = {"full": (3.0, 5.0), "small": (3.0, 5.0), "tiny": (7.0, 9.0)}
P_2D = {"t1": 0.15, "flair": 0.4}
NOISE = (0.005, 0.06)
BIAS = (0.0, 0.12)
GIBBS = (0.0, 0.4)
P_GIBBS = 1 / 3
WM_STORED = (100.0, 3000.0)
STORAGE_WEIGHTS = {"int16": 0.6, "12bit": 0.2, "unit": 0.2}
OFFSET = 0.1
P_OFFSET = 0.2
P_BRAIN_EXTRACTED = 0.3
TILT_DEG = 20.0
MARGIN_MM = (2.0, 40.0)
P_SIGN = 0.75
_ORIENTATIONS_3D = ("LAS", "RAS", "LPS", "ASR", "LSA", "PIR")


def random_contrasts(rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Tissue intensities per modality in the physiological order, each ratio drawn (x white matter of T1w = 1)."""
    t1_gm = float(rng.uniform(0.45, 0.85))
    flair_gm = float(rng.uniform(0.6, 1.0))
    flair_wm = flair_gm * float(rng.uniform(0.55, 0.88))
    return {
        "t1": {"wm": 1.0, "gm": t1_gm, "csf": t1_gm * float(rng.uniform(0.08, 0.6)),
               "skull": float(rng.uniform(0.02, 0.25)), "scalp": float(rng.uniform(0.4, 1.2))},
        "flair": {"wm": flair_wm, "gm": flair_gm, "csf": flair_wm * float(rng.uniform(0.05, 0.45)),
                  "skull": float(rng.uniform(0.02, 0.2)), "scalp": float(rng.uniform(0.2, 0.9))},
    }


def random_signs(rng: np.random.Generator) -> dict[str, float]:
    """Strength (0: absent, else 0.5-1) of each FCD-II sign; at least one is present."""
    present = rng.random(len(SIGNS)) < P_SIGN
    if not present.any():
        present[int(rng.integers(len(SIGNS)))] = True
    strengths = rng.uniform(0.5, 1.0, len(SIGNS))
    return {name: float(s) if on else 0.0 for name, on, s in zip(SIGNS, present, strengths, strict=True)}


def _sequence(rng: np.random.Generator, modality: str, size: str) -> Sequence:
    suffix = "T1w" if modality == "t1" else "FLAIR"
    if rng.random() < P_2D[modality]:
        plane = ("tra", "cor", "sag")[int(rng.integers(3))]
        edge = float(rng.uniform(*IN_PLANE_2D[size]))
        slice_mm = float(rng.uniform(*SLICE_MM[size]))
        sequence = thick_flair(f"rand2d{plane}", plane, {size: round(edge, 2)}, round(slice_mm, 2))
        return Sequence(sequence.acq, suffix, sequence.zooms, sequence.orientation, "2D",
                        f"random 2D {plane} {slice_mm:.1f} mm (synthetic)", "random")
    edge = float(rng.uniform(*VOXEL_3D[size]))
    zooms = tuple(round(edge * float(rng.uniform(1.0, 1.15)), 2) for _ in range(3))
    orientation = _ORIENTATIONS_3D[int(rng.integers(len(_ORIENTATIONS_3D)))]
    return Sequence("rand3d", suffix, {size: zooms}, orientation, "3D", "random 3D (synthetic)", "random")


def random_style(rng: np.random.Generator, size: str) -> ScanStyle:
    """A random :class:`ScanStyle` for one subject (see the module docstring for the ranges)."""
    sequences = {m: _sequence(rng, m, size) for m in MODALITIES}
    storages = list(STORAGE_WEIGHTS)
    storage = storages[int(rng.choice(len(storages), p=list(STORAGE_WEIGHTS.values())))]
    stripped = bool(rng.random() < P_BRAIN_EXTRACTED)
    return ScanStyle(
        t1=sequences["t1"], flair=sequences["flair"], contrasts=random_contrasts(rng),
        noise={m: float(np.exp(rng.uniform(*np.log(NOISE)))) for m in MODALITIES},
        protocol=RANDOM_PROTOCOL,
        bias=float(rng.uniform(*BIAS)),
        gibbs={m: float(rng.uniform(*GIBBS)) if rng.random() < P_GIBBS else 0.0 for m in MODALITIES},
        skull=not stripped,
        brain_mask=stripped and bool(rng.random() < 0.5),
        storage=storage,
        wm_stored=float(np.exp(rng.uniform(*np.log(WM_STORED)))),
        offset=float(rng.uniform(0.0, OFFSET)) if rng.random() < P_OFFSET else 0.0,
        tilt_deg={m: float(rng.uniform(0.0, TILT_DEG)) for m in MODALITIES},
        margin_mm={m: MARGIN_MM for m in MODALITIES},
    )

