"""Does the acquisition protocol alone predict the label? (the ds004199 confound)

In ds004199 every control was scanned with the newer protocol while about half of the
patients have an older one: a whole-brain classifier can score well by recognising the
scanner. :func:`audit_dataset` tabulates label by protocol and measures how well a
protocol-only classifier does: it predicts, for each subject, the majority label of the
*other* subjects with the same protocol (leave-one-out), counting 0.5 (a coin toss) when
the others are tied or no other subject has that protocol. Chance is the majority-class rate.

Example:
    >>> from FCDTrainLib.data.dataset_loader import load_dataset
    >>> audit = audit_dataset(load_dataset("ds004199"))  # doctest: +SKIP
    >>> audit.confounded, audit.warnings[0][:40]  # doctest: +SKIP
    (True, 'protocol alone predicts the label: a pro')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from FCDDetectLib.choices import MODALITIES
from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.data.records import Dataset, Subject

FACTORS = ("protocol", *MODALITIES)
"""``protocol``: the whole protocol string; ``t1``/``flair``: that modality's acquisition label."""

LABEL_NAMES = {1: "fcd", 0: "control"}


@dataclass
class ProtocolAudit:
    """Label-by-protocol table and the protocol-only classifier's accuracy.

    ``table``: protocol -> {"fcd": n, "control": n}. ``subject_protocol``: subject -> protocol
    (use it to stratify folds by protocol or to keep one protocol). ``loo_accuracy``: the
    protocol-only classifier, leave-one-out (honest; pessimistic for small balanced protocol
    groups). ``in_sample_accuracy``: the same rule scored on the subjects it was built from (an
    upper bound). ``chance``: majority-class rate.
    ``exclusive``: label name -> subjects whose protocol no subject of the other label has.
    """

    factor: str
    n_subjects: int
    table: dict[str, dict[str, int]]
    subject_protocol: dict[str, str]
    loo_accuracy: float
    in_sample_accuracy: float
    chance: float
    confounded: bool
    exclusive: dict[str, int]
    flags: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    method: str = "leave-one-out majority label per protocol (ties and unseen protocols count 0.5)"

    def to_dict(self) -> dict:
        return asdict(self)

    def protocols(self) -> list[str]:
        """Protocols, most subjects first."""
        return sorted(self.table, key=lambda p: (-sum(self.table[p].values()), p))

    def format_table(self) -> str:
        """A readable text table (protocol, fcd, control, total) followed by the verdict and warnings."""
        rows = [(p, self.table[p]["fcd"], self.table[p]["control"]) for p in self.protocols()]
        width = max([len("protocol")] + [len(p) for p, _, _ in rows])
        lines = [f"{'protocol':<{width}}  {'fcd':>5}  {'control':>7}  {'total':>5}"]
        lines += [f"{p:<{width}}  {f:>5}  {c:>7}  {f + c:>5}" for p, f, c in rows]
        total_f = sum(r[1] for r in rows)
        total_c = sum(r[2] for r in rows)
        lines.append(f"{'all':<{width}}  {total_f:>5}  {total_c:>7}  {total_f + total_c:>5}")
        lines.append("")
        lines.append(
            f"protocol-only classifier ({self.factor}): {self.loo_accuracy:.3f} leave-one-out accuracy "
            f"(in-sample {self.in_sample_accuracy:.3f}, chance {self.chance:.3f})"
        )
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def subject_factor(subject: Subject, factor: str = "protocol") -> str:
    """The subject's protocol (``factor="protocol"``) or one modality's acquisition label."""
    if factor == "protocol":
        return subject.protocol or "unknown"
    return subject.acquisitions.get(factor) or "unknown"


def _loo_accuracy(keys: list[str], labels: list[int]) -> float:
    counts: dict[str, Counter] = {}
    for key, label in zip(keys, labels, strict=True):
        counts.setdefault(key, Counter())[label] += 1
    score = 0.0
    for key, label in zip(keys, labels, strict=True):
        others = counts[key].copy()
        others[label] -= 1
        if others[1] == others[0]:
            score += 0.5
        else:
            score += float((1 if others[1] > others[0] else 0) == label)
    return score / len(keys)


def audit_dataset(dataset: Dataset, factor: str = "protocol", margin: float = 0.10) -> ProtocolAudit:
    """Audit label against ``factor`` (``protocol``, ``t1`` or ``flair``); warn when it predicts the label.

    ``confounded`` is True when the leave-one-out accuracy of the protocol-only classifier
    exceeds chance by at least ``margin``.

    Example:
        >>> audit = audit_dataset(load_dataset("cohort/"))  # doctest: +SKIP
        >>> print(audit.format_table())  # doctest: +SKIP
    """
    if factor not in FACTORS:
        raise FCDInputError(f"audit: unknown factor {factor!r}; choose one of {', '.join(FACTORS)}")
    subjects = dataset.subjects
    if not subjects:
        raise FCDInputError(f"{dataset.root}: no subjects to audit")
    keys = [subject_factor(s, factor) for s in subjects]
    labels = [s.label for s in subjects]
    table: dict[str, dict[str, int]] = {}
    for key, label in zip(keys, labels, strict=True):
        row = table.setdefault(key, {"fcd": 0, "control": 0})
        row[LABEL_NAMES[label]] += 1
    n = len(subjects)
    n_pos = sum(labels)
    chance = max(n_pos, n - n_pos) / n
    accuracy = _loo_accuracy(keys, labels)
    in_sample = sum(max(row.values()) for row in table.values()) / n
    exclusive = {
        name: sum(table[k][name] for k in table if table[k][other] == 0)
        for name, other in (("fcd", "control"), ("control", "fcd"))
    }
    flags = Counter(flag for s in subjects for flag in s.flags)
    confounded = accuracy - chance >= margin
    warnings: list[str] = []
    if confounded:
        details = []
        for name, other in (("control", "fcd"), ("fcd", "control")):
            total = sum(row[name] for row in table.values())
            used = [k for k in table if table[k][name]]
            if total and len(used) == 1:
                details.append(f"every {name} has protocol {used[0]}")
            if total and exclusive[name]:
                details.append(f"{exclusive[name]} of {total} {name} subjects have a protocol no {other} has")
        warnings.append(
            f"protocol alone predicts the label: a protocol-only classifier reaches {accuracy:.2f} "
            f"leave-one-out accuracy (chance {chance:.2f})"
            + (f"; {'; '.join(details)}" if details else "")
            + ". Stratify folds by protocol, keep one protocol, or report per-protocol results."
        )
    if len(table) == 1 and next(iter(table)) == "unknown":
        warnings.append("no protocol information (no acq labels, sidecars or protocol/site column): cannot audit")
    return ProtocolAudit(
        factor=factor,
        n_subjects=n,
        table=table,
        subject_protocol={s.subject_id: k for s, k in zip(subjects, keys, strict=True)},
        loo_accuracy=accuracy,
        in_sample_accuracy=in_sample,
        chance=chance,
        confounded=confounded,
        exclusive=exclusive,
        flags=dict(flags),
        warnings=warnings,
    )
