"""Label names: which strings mean patient (1) and which mean control (0).

Defaults cover ds004199 (``fcd``/``hc``) and common spellings; other volume-level tasks
(e.g. CT haemorrhage) pass their own names.

Example:
    >>> parse_label("HC", "sub-01"), parse_label("1", "sub-02")
    (0, 1)
    >>> names = LabelNames.with_extra(positive=["bleed"], negative=["normal"])
    >>> parse_label("bleed", "ct-07", names)
    1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from FCDDetectLib.errors import FCDInputError

DEFAULT_POSITIVE = ("1", "fcd", "patient", "positive", "case", "lesion")
DEFAULT_NEGATIVE = ("0", "hc", "control", "negative", "healthy")


@dataclass(frozen=True)
class LabelNames:
    """Lower-case label strings meaning 1 (``positive``) and 0 (``negative``)."""

    positive: tuple[str, ...] = DEFAULT_POSITIVE
    negative: tuple[str, ...] = DEFAULT_NEGATIVE

    @classmethod
    def with_extra(cls, positive: Iterable[str] = (), negative: Iterable[str] = ()) -> LabelNames:
        """The defaults plus ``positive`` / ``negative`` names (case-insensitive)."""
        pos = tuple(dict.fromkeys(DEFAULT_POSITIVE + tuple(p.strip().lower() for p in positive)))
        neg = tuple(dict.fromkeys(DEFAULT_NEGATIVE + tuple(n.strip().lower() for n in negative)))
        clash = set(pos) & set(neg)
        if clash:
            raise FCDInputError(f"label names {sorted(clash)} given as both positive and negative")
        return cls(pos, neg)


def parse_label(value: str, where: str, names: LabelNames | None = None) -> int:
    """1 or 0 for a label string; FCDInputError naming ``where`` for an unknown one."""
    names = names or LabelNames()
    key = str(value).strip().lower()
    if key in names.positive:
        return 1
    if key in names.negative:
        return 0
    raise FCDInputError(
        f"{where}: unknown label {value!r}; expected one of {', '.join(names.positive)} (patient) "
        f"or {', '.join(names.negative)} (control)"
    )
