"""Experiment statistics: mean +/- std over folds and paired t-tests against no transfer.

Input is one row per run and fold (``depth``, ``pretrained``, ``modality``, ``fold``,
``accuracy``, ``roc_auc``, ``heat_score``). :func:`summarise` gives one row per
model x strategy x modality, the layout of the paper's Tables 1 and 2. The standard
deviation is the sample one (``ddof=1``). Each transfer strategy is compared with
``none`` of the same depth and modality by a paired t-test over the folds they share
(``scipy.stats.ttest_rel``; folds pair up because every run of an experiment uses the
same seed, hence the same splits).

Example:
    >>> rows = [dict(depth=18, pretrained=p, modality="flair", fold=f, accuracy=a, roc_auc=0.8, heat_score=h)
    ...         for p, accs, hs in (("none", (0.6, 0.7, 0.65), (1.0, 1.2, 1.1)),
    ...                             ("medicalnet23", (0.8, 0.75, 0.85), (2.0, 2.5, 2.2)))
    ...         for f, (a, h) in enumerate(zip(accs, hs))]
    >>> table = summarise(rows)
    >>> round(table[1]["accuracy_mean"], 3), round(table[1]["p_accuracy"], 3)
    (0.8, 0.095)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from FCDDetectLib.choices import PRETRAINED_STRATEGIES, SUPERVISION

from FCDTrainLib.evaluation.metrics import finite, mean_std

METRICS = ("accuracy", "roc_auc", "heat_score", "lesion_detection_rate", "lesion_map_heat_score")
STRATEGY_ORDER = PRETRAINED_STRATEGIES  # table order
SUPERVISION_ORDER = SUPERVISION
KEY = ("depth", "pretrained", "modality", "supervision")


def paired_ttest(a: dict[int, Any], b: dict[int, Any]) -> float | None:
    """Two-sided paired t-test p-value of ``a`` vs ``b`` (fold -> value) over shared folds.

    None when fewer than two folds pair up or the p-value is undefined (identical values).
    """
    from scipy.stats import ttest_rel

    folds = sorted(f for f in set(a) & set(b) if finite(a[f]) is not None and finite(b[f]) is not None)
    if len(folds) < 2:
        return None
    result = ttest_rel([float(a[f]) for f in folds], [float(b[f]) for f in folds])
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


def _sort_key(key: tuple) -> tuple:
    depth, pretrained, modality, supervision = key
    order = STRATEGY_ORDER.index(pretrained) if pretrained in STRATEGY_ORDER else len(STRATEGY_ORDER)
    sup = SUPERVISION_ORDER.index(supervision) if supervision in SUPERVISION_ORDER else len(SUPERVISION_ORDER)
    return (modality, -int(depth), order, pretrained, sup)


def summarise(fold_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per (depth, pretrained, modality, supervision), sorted like the paper's tables.

    Each row has ``n_folds``, ``<metric>_mean``, ``<metric>_std`` for every metric of
    :data:`METRICS`; for a transfer strategy ``p_<metric>`` against ``pretrained="none"``
    (same depth, modality and supervision), and for lesion supervision
    ``p_supervision_<metric>`` against ``supervision="none"`` (same depth, strategy and
    modality): the supervision axis of ``fcd experiment``. None for the baseline itself
    or without a partner. A row without ``supervision`` counts as ``none``.
    """
    groups: dict[tuple, dict[str, dict[int, Any]]] = {}
    for row in fold_rows:
        key = (int(row["depth"]), str(row["pretrained"]), str(row["modality"]),
               str(row.get("supervision") or "none"))
        per_metric = groups.setdefault(key, {m: {} for m in METRICS})
        for metric in METRICS:
            per_metric[metric][int(row["fold"])] = row.get(metric)
    table = []
    for key in sorted(groups, key=_sort_key):
        depth, pretrained, modality, supervision = key
        per_metric = groups[key]
        out: dict[str, Any] = {"depth": depth, "pretrained": pretrained, "modality": modality,
                               "supervision": supervision, "n_folds": len(per_metric["accuracy"])}
        for metric in METRICS:
            mean, std, _ = mean_std(per_metric[metric].values())
            out[f"{metric}_mean"] = mean
            out[f"{metric}_std"] = std
        baseline = groups.get((depth, "none", modality, supervision))
        unsupervised = groups.get((depth, pretrained, modality, "none"))
        for metric in METRICS:
            out[f"p_{metric}"] = (
                paired_ttest(per_metric[metric], baseline[metric])
                if baseline is not None and pretrained != "none" else None
            )
            out[f"p_supervision_{metric}"] = (
                paired_ttest(per_metric[metric], unsupervised[metric])
                if unsupervised is not None and supervision != "none" else None
            )
        table.append(out)
    return table
