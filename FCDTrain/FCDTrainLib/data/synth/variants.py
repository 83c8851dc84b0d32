"""The options of ``fcd synth`` beyond the standard cohort: randomised scans, benchmark families, rescans.

:class:`SynthVariant` collects them; :meth:`SynthVariant.sessions` makes one subject's
sessions (a list of :class:`~FCDTrainLib.data.synth.subject.SynthSubject`, one per rescan):

- ``randomize``: a random :class:`~FCDTrainLib.data.synth.scan_style.ScanStyle` and random
  lesion signs per subject (:mod:`FCDTrainLib.data.synth.randomize`);
- ``brain_extracted`` / ``brain_mask`` / ``flair_2d`` / ``rescale`` / ``separate_grids``: the fixed
  changes of one benchmark family (:func:`~FCDTrainLib.data.synth.scan_style.family_style`);
- ``rescans`` (1..:data:`MAX_RESCANS`): the subject scanned that many times, in the BIDS
  session layout (``sub-X/ses-1/anat``, ``ses-2``, ...): the same anatomy, lesion and
  protocol; each session its own grid position and obliquity, bias field, noise and
  intensity scale. Session 1 continues the subject's own generator; session k uses
  ``default_rng([seed, subject index + 1, k])``.

Example:
    >>> SynthVariant().is_standard, SynthVariant(rescans=2).session_layout
    (True, True)
    >>> SynthVariant(rescans=11).check()
    Traceback (most recent call last):
    ...
    FCDDetectLib.errors.FCDInputError: synth: --rescans 11 must be between 1 and 10
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from FCDDetectLib.choices import SYNTH_RESCALES
from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.data.synth.contrast import subject_contrasts
from FCDTrainLib.data.synth.protocols import PROTOCOLS
from FCDTrainLib.data.synth.scan_style import family_style, standard_style
from FCDTrainLib.data.synth.subject import SynthSubject, make_anatomy, scan_anatomy

MAX_RESCANS = 10
FLAIR_2D_MM = (2.0, 10.0)
"""Allowed ``--flair-2d`` slice thickness (mm)."""


@dataclass(frozen=True)
class SynthVariant:
    """The non-standard options of a synthetic cohort (see the module docstring)."""

    randomize: bool = False
    rescans: int | None = None
    brain_extracted: bool = False
    brain_mask: bool = False
    flair_2d: float | None = None
    rescale: str | None = None
    separate_grids: bool = False

    @property
    def is_standard(self) -> bool:
        """No option given: the cohort is made exactly as before (:func:`make_subject`)."""
        return self == SynthVariant()

    @property
    def session_layout(self) -> bool:
        """Files go to ``sub-X/ses-K/anat`` (``--rescans`` given)."""
        return self.rescans is not None

    @property
    def n_sessions(self) -> int:
        return self.rescans or 1

    def check(self) -> None:
        """FCDInputError (one line, ``synth:``) for an option out of range."""
        if self.rescans is not None and not 1 <= self.rescans <= MAX_RESCANS:
            raise FCDInputError(f"synth: --rescans {self.rescans} must be between 1 and {MAX_RESCANS}")
        if self.flair_2d is not None and not FLAIR_2D_MM[0] <= self.flair_2d <= FLAIR_2D_MM[1]:
            raise FCDInputError(f"synth: --flair-2d {self.flair_2d:g} mm must be between {FLAIR_2D_MM[0]:g} and "
                                f"{FLAIR_2D_MM[1]:g} mm")
        if self.rescale is not None and self.rescale not in SYNTH_RESCALES:
            raise FCDInputError(f"synth: --rescale {self.rescale!r}: choose one of {', '.join(SYNTH_RESCALES)}")
        if self.brain_mask and not (self.brain_extracted or self.randomize):
            raise FCDInputError("synth: --brain-mask needs --brain-extracted (a mask of a head with skull is not written)")
        if self.randomize and (self.brain_extracted or self.flair_2d is not None or self.rescale or self.separate_grids):
            raise FCDInputError("synth: --randomize draws brain extraction, 2D FLAIR, storage and grids itself; "
                                "give it without the family options")

    def to_dict(self) -> dict:
        return asdict(self)

    def sessions(self, rng: np.random.Generator, protocol: str, size: str, patient: bool, subtlety: float,
                 seed: int, index: int) -> list[SynthSubject]:
        """One subject's sessions; ``rng`` is the subject's generator, ``index`` its 0-based number."""
        from FCDTrainLib.data.synth.randomize import random_signs, random_style

        if self.randomize:
            signs = random_signs(rng) if patient else None
            anatomy = make_anatomy(rng, size, patient, subtlety, signs)
            style = random_style(rng, size)
        else:
            anatomy = make_anatomy(rng, size, patient, subtlety)
            contrasts = subject_contrasts(rng)
            noise = float(rng.uniform(0.015, 0.035))
            style = family_style(standard_style(PROTOCOLS[protocol], contrasts, noise), rng,
                                 brain_extracted=self.brain_extracted, brain_mask=self.brain_mask,
                                 flair_2d=self.flair_2d, rescale=self.rescale, separate_grids=self.separate_grids)
        made = []
        for session in range(1, self.n_sessions + 1):
            session_rng = rng if session == 1 else np.random.default_rng([seed, index + 1, session])
            made.append(scan_anatomy(anatomy, style, size, session_rng, session=session))
        return made
