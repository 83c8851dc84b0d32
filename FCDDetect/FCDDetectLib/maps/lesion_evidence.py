"""The subject-level lesion evidence of a map: one score from its clusters, and the decision it gives.

A lesion model (``--supervision lesion``) decides from its lesion map, not from its classifier
head: on the thin lesions of ``fcd synth --subtlety 0.5`` the classifier's held-out ROC-AUC
was 0.42-0.53 while the lesion map found most lesions (``docs/lesion-level.md``).

**Score** (:data:`EVIDENCE_SCORE`, ``top_component_peak_x_volume_mm3``): the largest ``peak x
volume_mm3`` over the connected components of the map at the model's cluster threshold, those
below the minimum cluster size included (``ClusterSet.top_component_peak_x_volume_mm3``), 0 when
no voxel reaches the threshold. The peak says how sure the map is at its hottest voxel, the
volume how much of the scan it is sure about; their product ranks a compact, confident focus
above a speck of noise at the same peak, and above a wide, faint band. Our choice, among those
the issue names (the map maximum alone cannot tell a one-voxel speck from a lesion).

Why the minimum size is not applied to the score: the size cut decides which clusters a reader
is shown; applied to the score it gives every subject whose top focus is just under the cut the
same score 0, patients with small lesions and clean controls alike. Bundles calibrated before
this rule keep theirs (``top_cluster_peak_x_volume_mm3``: the largest score over the clusters
kept at the operating point): the bundle names its score, and its threshold is only valid for
it. Measured on a development cohort of its own (``fcd synth --subtlety 0.5`` seed 13, 20
patients and 20 controls, used for no reported figure) with the lesion models of
``benchmarks/bench_lesion.py`` (4 folds at 100 epochs, 4 at 300), each at its own operating
point: ROC-AUC 0.84-0.96 (mean 0.90) for this score against 0.82-0.95 (mean 0.87) for the
clusters-only score; higher on 5 models of 8 (by up to 0.09), equal on 1, 0.01 lower on 2
(``docs/lesion-supervision.md``).

**Decision**: ``fcd`` when the score is above the threshold (:func:`decide`). The threshold is
calibrated on the fold's validation subjects (Youden's J over the validation scores; of the
thresholds that reach the best J, the middle of their range: :func:`youden_threshold`) and stored in the bundle
(``bundle.json``: ``lesion_evidence``); without one (a bundle made before) it is 0: a patient
is ``fcd`` when the map has any cluster.

Example:
    >>> from FCDDetectLib.maps.clusters import Cluster, ClusterSet
    >>> import numpy as np
    >>> c = Cluster(1, 10, 270.0, 0.9, 0.7, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), "left", 0.9)
    >>> evidence_score(ClusterSet([c], np.zeros((2, 2, 2), np.int16), 0.5, 50.0), "top_cluster_peak_x_volume_mm3")
    243.0
    >>> evidence_score(ClusterSet([], np.zeros((2, 2, 2), np.int16), 0.5, 50.0, top_component_peak_x_volume_mm3=24.3))
    24.3
    >>> youden_threshold([0.0, 0.0, 5.0, 300.0, 500.0], [0, 0, 0, 1, 1])
    152.5
    >>> decide(243.0, 152.5), decide(0.0, 0.0)
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from FCDDetectLib.choices import LESION_EVIDENCE_SCORES
from FCDDetectLib.maps.clusters import ClusterSet

__all__ = ["EVIDENCE_SCORE", "decide", "evidence_score", "roc_auc", "youden_threshold"]

EVIDENCE_SCORE = LESION_EVIDENCE_SCORES[0]
"""The name of the score (stored with the threshold in a bundle, written to result.json)."""


def evidence_score(clusters: ClusterSet | None, definition: str = EVIDENCE_SCORE) -> float:
    """The lesion evidence of a map's clusters under ``definition`` (one of ``LESION_EVIDENCE_SCORES``).

    ``top_component_peak_x_volume_mm3``: the set's ``top_component_peak_x_volume_mm3`` (a set
    without it, not made by ``find_clusters``, falls back to its clusters);
    ``top_cluster_peak_x_volume_mm3``: the largest ``peak x volume_mm3`` over the kept clusters.
    0.0 without a cluster or component. Raises ValueError for another definition.
    """
    if definition not in LESION_EVIDENCE_SCORES:
        raise ValueError(f"lesion evidence score {definition!r}: expected one of {LESION_EVIDENCE_SCORES}")
    if clusters is None:
        return 0.0
    if definition == EVIDENCE_SCORE and clusters.top_component_peak_x_volume_mm3 is not None:
        return float(clusters.top_component_peak_x_volume_mm3)  # every component, the kept clusters among them
    return float(max((c.peak * c.volume_mm3 for c in clusters.clusters), default=0.0))


def decide(score: float, threshold: float | None) -> bool:
    """True (``fcd``) when ``score`` is above ``threshold`` (None: 0, i.e. any cluster)."""
    return float(score) > float(threshold or 0.0)


def youden_threshold(scores: Sequence[float], labels: Sequence[Any]) -> float | None:
    """The threshold that maximises sensitivity + specificity - 1 on (scores, labels 0/1).

    Candidates lie half-way between neighbouring distinct scores (and below the lowest); the
    rule is ``score > threshold``. When several candidates reach the best J (a gap between the
    classes' scores), the threshold is the middle of the range they span, the widest margin on
    either side. None when one class is missing.

    Example:
        >>> youden_threshold([1.0, 2.0], [0, 1])
        1.5
    """
    pairs = [(float(s), int(y)) for s, y in zip(scores, labels, strict=True)]
    positives = sum(y for _, y in pairs)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return None
    values = sorted({s for s, _ in pairs})
    candidates = [values[0] - 1.0 if values[0] > 0 else 0.0] + [
        (a + b) / 2.0 for a, b in zip(values, values[1:], strict=False)]
    candidates = [max(0.0, c) for c in candidates]
    j = [sum(1 for s, y in pairs if y == 1 and s > t) / positives
         - sum(1 for s, y in pairs if y == 0 and s > t) / negatives for t in candidates]
    best = [t for t, value in zip(candidates, j, strict=True) if value >= max(j) - 1e-12]
    return float((min(best) + max(best)) / 2.0)


def roc_auc(scores: Sequence[float], labels: Sequence[Any]) -> float | None:
    """ROC-AUC of ``scores`` for labels 0/1 (ties count half); None when one class is missing.

    The Mann-Whitney form, written here so that the engine needs no scikit-learn (the trainer's
    figures use scikit-learn's ``roc_auc_score``, which gives the same number).

    Example:
        >>> roc_auc([0.0, 0.0, 3.0, 1.0], [0, 0, 1, 1])
        1.0
    """
    positives = [float(s) for s, y in zip(scores, labels, strict=True) if int(y) == 1]
    negatives = [float(s) for s, y in zip(scores, labels, strict=True) if int(y) == 0]
    if not positives or not negatives:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))
