"""Synthetic FCD-II cohorts with real anatomy (nilearn's MNI152 2009 template), offline.

Example:
    >>> from FCDTrainLib.data.synth import synth_cohort
    >>> summary = synth_cohort("cohort", n_subjects=10, seed=0, size="small")  # doctest: +SKIP
    >>> summary.seconds_per_subject < 5  # doctest: +SKIP
    True
"""

from __future__ import annotations

from .cohort import MIN_SUBJECTS, CohortSummary, synth_cohort
from .protocols import PROTOCOLS, SIZES
from .subject import SynthSubject, make_subject

__all__ = ["MIN_SUBJECTS", "PROTOCOLS", "SIZES", "CohortSummary", "SynthSubject", "make_subject", "synth_cohort"]
