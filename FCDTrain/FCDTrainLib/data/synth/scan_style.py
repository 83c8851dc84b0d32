"""How one synthetic subject is scanned: sequences, contrasts, scanner effects, storage.

A :class:`ScanStyle` is drawn once per subject and holds for every session of it (a rescan
is the same protocol on the same scanner: new noise, bias field, position and intensity
scale, :mod:`FCDTrainLib.data.synth.subject`). Three sources:

- :func:`standard_style`: today's cohort (``fcd synth``): the protocol's two sequences, the
  subject's tissue contrasts, a quadratic bias field of ~8 %, Rician noise, skull and scalp,
  int16 with white matter at about 1000, a centred head tilted by up to 3 degrees.
- :func:`family_style`: the fixed variants that ``fcd synth`` options make, one benchmark
  family each (``benchmarks/bench_families.py``): ``--brain-extracted`` (skull and scalp
  removed, optionally ``--brain-mask`` written), ``--flair-2d MM`` (every FLAIR a 2D
  acquisition with MM slices, in an axial, coronal or sagittal plane), ``--rescale unit|12bit``
  (0-1 floats or 12-bit integers), ``--separate-grids`` (a sagittal T1 and an oblique,
  off-centre FLAIR with other voxel sizes).
- :func:`FCDTrainLib.data.synth.randomize.random_style` (``--randomize``): everything drawn.

Example:
    >>> from FCDTrainLib.data.synth.protocols import PROTOCOLS
    >>> style = standard_style(PROTOCOLS["new"], {"t1": {}, "flair": {}}, 0.02)
    >>> style.skull, style.storage, style.flair.acq
    (True, 'int16', 'T2sel')
    >>> family_style(style, np.random.default_rng(0), rescale="unit").storage
    'unit'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from FCDDetectLib.choices import SYNTH_RESCALES

from FCDTrainLib.data.synth.protocols import PROTOCOLS, Protocol, Sequence, thick_flair

STORAGES = ("int16", *SYNTH_RESCALES)
"""How intensities are stored: int16 (white matter ~1000 x scale), integers 0-4095, floats 0-1."""
RANDOM_PROTOCOL = "random"
"""The ``protocol`` of a randomised style (``fcd synth --randomize``)."""
CENTRED = (8.0, 8.0)
"""Field-of-view margin (mm) on every side of the head in the standard cohort."""
RESCAN_MARGINS = (2.0, 14.0)
"""A rescan's margin range (mm) per side when its style has a centred head: a new position."""
_IN_PLANE_2D = {"full": 0.7, "small": 2.2, "tiny": 4.5}
_SEPARATE_FLAIR = Sequence("obl", "FLAIR", {"full": (0.9, 0.9, 1.2), "small": (2.4, 2.4, 3.6), "tiny": (5.0, 5.0, 7.0)},
                           "RAS", "3D", "flair_oblique_angulated (synthetic)", "Trio")


@dataclass(frozen=True)
class ScanStyle:
    """Everything about a subject's scans that its sessions share.

    ``contrasts[modality]``: tissue intensities (x white matter of T1w); ``noise[modality]``:
    Rician sigma / white matter; ``bias``: 0 for the standard quadratic field
    (:func:`FCDTrainLib.data.synth.contrast.bias_field`), else the half-width of MONAI
    ``RandBiasField``'s coefficient range; ``gibbs[modality]``: MONAI ``RandGibbsNoise``
    alpha (0: none); ``skull``: skull and scalp present (else brain-extracted, background 0);
    ``brain_mask``: write the brain mask of each image; ``storage``: :data:`STORAGES`;
    ``wm_stored``: the int16 value of white matter (before a rescan's scale); ``offset``: added to every voxel before storage (x white matter); ``tilt_deg``: largest
    obliquity per modality; ``margin_mm``: range of each side's field-of-view margin per modality.
    """

    t1: Sequence
    flair: Sequence
    contrasts: dict[str, dict[str, float]]
    noise: dict[str, float]
    protocol: str = "new"
    bias: float = 0.0
    gibbs: dict[str, float] = field(default_factory=dict)
    skull: bool = True
    brain_mask: bool = False
    storage: str = "int16"
    wm_stored: float = 1000.0
    offset: float = 0.0
    tilt_deg: dict[str, float] = field(default_factory=lambda: {"t1": 3.0, "flair": 3.0})
    margin_mm: dict[str, tuple[float, float]] = field(default_factory=lambda: {"t1": CENTRED, "flair": CENTRED})

    @property
    def randomized(self) -> bool:
        """Drawn by ``--randomize`` (MONAI scanner effects, a new position and scale in every session)."""
        return self.protocol == RANDOM_PROTOCOL

    def sequence(self, modality: str) -> Sequence:
        """The ``t1`` or ``flair`` sequence."""
        return self.t1 if modality == "t1" else self.flair

    def facts(self) -> dict:
        """What ``synth_lesions.json`` records about the scans (JSON-ready)."""
        return {
            "t1": {"acq": self.t1.acq, "type": self.t1.mr_type, "orientation": self.t1.orientation},
            "flair": {"acq": self.flair.acq, "type": self.flair.mr_type, "orientation": self.flair.orientation},
            "skull": self.skull, "brain_mask": self.brain_mask, "storage": self.storage,
            "wm_stored": round(self.wm_stored, 1), "noise": {k: round(v, 4) for k, v in self.noise.items()},
            "bias": round(self.bias, 3), "gibbs": {k: round(v, 3) for k, v in self.gibbs.items()},
            "offset": round(self.offset, 3), "tilt_deg": {k: round(v, 1) for k, v in self.tilt_deg.items()},
        }


def standard_style(protocol: Protocol, contrasts: dict[str, dict[str, float]], noise: float) -> ScanStyle:
    """Today's cohort: the protocol's sequences, one noise level for both (see the module docstring)."""
    return ScanStyle(protocol.t1, protocol.flair, contrasts, {"t1": noise, "flair": noise}, protocol=protocol.name)


def family_style(style: ScanStyle, rng: np.random.Generator, brain_extracted: bool = False, brain_mask: bool = False,
                 flair_2d: float | None = None, rescale: str | None = None, separate_grids: bool = False) -> ScanStyle:
    """``style`` changed by the benchmark-family options (see the module docstring); ``rng`` picks the 2D plane."""
    changes: dict = {}
    if brain_extracted:
        changes.update(skull=False, brain_mask=bool(brain_mask))
    if flair_2d is not None:
        plane = ("tra", "cor", "sag")[int(rng.integers(3))]
        changes["flair"] = thick_flair(f"{plane}{flair_2d:g}mm".replace(".", "p"), plane, _IN_PLANE_2D, float(flair_2d))
    if rescale is not None:
        changes["storage"] = rescale
    if separate_grids:
        changes.update(t1=PROTOCOLS["old-3d"].t1, flair=_SEPARATE_FLAIR,
                       tilt_deg={"t1": 3.0, "flair": 20.0}, margin_mm={"t1": CENTRED, "flair": (0.0, 25.0)})
    if changes:
        changes["protocol"] = "+".join(filter(None, (
            style.protocol, "brain" if brain_extracted else "", f"2d{flair_2d:g}" if flair_2d is not None else "",
            rescale or "", "separate" if separate_grids else "")))
    return replace(style, **changes)
