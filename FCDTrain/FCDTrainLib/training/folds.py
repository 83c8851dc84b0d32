"""Subject-level fold splits: stratified k-fold, then 80/20 train/validation (paper 2.3).

Each subject lands in exactly one test fold. Within a fold, the remaining subjects are
split again, stratified, into training and validation parts. Stratification is by label,
or by label and scanner protocol (``stratify_protocol``). With ``fixed_test`` (the
``split`` column of ds004199), the subjects marked ``test`` form one fixed test set
shared by every fold, and the k folds cross-validate the rest: fold k validates on the
k-th part of the non-test subjects and trains on the others.

Example:
    >>> splits = make_folds(["a", "b", "c", "d", "e", "f"], [0, 0, 0, 1, 1, 1], n_folds=3, seed=0)
    >>> sorted(s for split in splits for s in split.test)
    ['a', 'b', 'c', 'd', 'e', 'f']
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.run_folder.run_files import read_json

CLASS_NAMES = ("control", "fcd")


@dataclass
class FoldSplit:
    """The subject ids of one fold's training, validation and test parts."""

    fold: int
    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _split_problem(index: int, entry: Any) -> str | None:
    """Why ``entry`` cannot be fold ``index`` of ``folds.json`` (None: it can)."""
    if not isinstance(entry, dict) or set(entry) != {"fold", "train", "val", "test"}:
        return f"entry {index} is not {{fold, train, val, test}}"
    if type(entry["fold"]) is not int or entry["fold"] != index:
        return f"entry {index} names fold {entry['fold']!r}"
    for part in ("train", "val", "test"):
        ids = entry[part]
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            return f"fold {index} {part} is not a list of subject ids"
    return None


def read_folds(path: str | os.PathLike, n_folds: int) -> list[FoldSplit]:
    """The fold splits recorded in a run's ``folds.json`` (untrusted: every entry is checked).

    Raises:
        FCDInputError: naming the file when it is not ``n_folds`` entries ``{fold, train, val,
            test}`` in fold order with lists of subject ids (see
            :func:`FCDTrainLib.run_folder.run_files.read_json` for the bounds).

    Example:
        >>> import json, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "folds.json"
        >>> _ = path.write_text(json.dumps([{"fold": 0, "train": ["a"], "val": ["b"], "test": ["c"]}]))
        >>> read_folds(path, 1)[0].test
        ['c']
    """
    entries = read_json(path, "fold splits")
    if not isinstance(entries, list) or len(entries) != n_folds:
        found = f"{len(entries)} entries" if isinstance(entries, list) else type(entries).__name__
        raise FCDInputError(f"{path}: damaged fold splits: {n_folds} folds expected, found {found}")
    for index, entry in enumerate(entries):
        problem = _split_problem(index, entry)
        if problem is not None:
            raise FCDInputError(f"{path}: damaged fold splits: {problem}")
    return [FoldSplit(**entry) for entry in entries]


def _check_counts(labels: Sequence[int], n_folds: int, what: str) -> None:
    counts = Counter(int(label) for label in labels)
    for label in (0, 1):
        if counts.get(label, 0) < n_folds:
            raise FCDInputError(
                f"{what}: {counts.get(label, 0)} {CLASS_NAMES[label]} subject(s), fewer than the "
                f"{n_folds} folds; every fold needs at least one subject of each class"
            )


def _strata(labels: Sequence[int], protocols: Sequence[str | None] | None, n_folds: int) -> list[str]:
    """Label, or label + protocol; groups too small to spread over the folds fall back to label."""
    keys = [str(label) for label in labels]
    if protocols is None:
        return keys
    combined = [f"{label}|{protocol or 'unknown'}" for label, protocol in zip(labels, protocols, strict=True)]
    counts = Counter(combined)
    return [key if counts[key] >= n_folds else base for key, base in zip(combined, keys, strict=True)]


def _split_validation(
    ids: list[str], keys: list[str], fraction: float, seed: int, source: str
) -> tuple[list[str], list[str]]:
    """Stratified train/validation split with at least one validation subject per class."""
    from sklearn.model_selection import StratifiedShuffleSplit

    n_classes = len(set(keys))
    scarce = min(Counter(keys).items(), key=lambda item: item[1])
    if scarce[1] < 2:  # one subject cannot be in both parts (sklearn would raise a bare ValueError)
        raise FCDInputError(
            f"{source}: a fold's training subjects hold {scarce[1]} {CLASS_NAMES[int(scarce[0])]} subject; each "
            "class needs one for validation and one for training (use fewer folds or more subjects)"
        )
    n_val = max(n_classes, int(round(fraction * len(ids))))
    if len(ids) - n_val < n_classes:
        raise FCDInputError(
            f"{source}: {len(ids)} training subjects in a fold are too few for a {fraction:.0%} validation part "
            "with one subject per class (use fewer folds or more subjects)"
        )
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train_idx, val_idx = next(splitter.split(ids, keys))
    return sorted(ids[i] for i in train_idx), sorted(ids[i] for i in val_idx)


def make_folds(
    subject_ids: Sequence[str],
    labels: Sequence[int],
    n_folds: int = 5,
    seed: int = 0,
    val_fraction: float = 0.2,
    protocols: Sequence[str | None] | None = None,
    fixed_test: Sequence[bool] | None = None,
    source: str = "dataset",
) -> list[FoldSplit]:
    """Split subjects into ``n_folds`` folds (see the module docstring).

    ``protocols`` (one per subject) turns on stratification by protocol as well as label.
    ``fixed_test`` (one bool per subject) marks a fixed test set. ``source`` names the
    dataset in error messages. Raises
    :class:`FCDInputError` when a class has fewer subjects than folds, when ids repeat,
    or when a validation part cannot hold one subject per class.
    """
    from sklearn.model_selection import StratifiedKFold

    ids = [str(s) for s in subject_ids]
    labels = [int(label) for label in labels]
    if len(set(ids)) != len(ids):
        duplicates = sorted(k for k, v in Counter(ids).items() if v > 1)
        raise FCDInputError(f"{source}: subject id(s) listed twice: {', '.join(duplicates[:5])}")
    if n_folds < 2:
        raise FCDInputError(f"--folds {n_folds}: need at least 2 folds")
    if not 0.0 < val_fraction < 1.0:
        raise FCDInputError(f"--val-fraction {val_fraction}: expected a number between 0 and 1")
    keys = _strata(labels, protocols, n_folds)

    if fixed_test is not None:
        test = sorted(i for i, flag in zip(ids, fixed_test, strict=True) if flag)
        if not test:
            raise FCDInputError("--use-split: no subject has split 'test' in the dataset")
        rest = [k for k, flag in enumerate(fixed_test) if not flag]
        _check_counts([labels[k] for k in rest], n_folds, f"{source} without its test split")
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        rest_keys = _strata([labels[k] for k in rest], None if protocols is None else
                            [protocols[k] for k in rest], n_folds)
        folds = []
        for fold, (train_idx, val_idx) in enumerate(splitter.split(rest, rest_keys)):
            folds.append(FoldSplit(
                fold=fold,
                train=sorted(ids[rest[i]] for i in train_idx),
                val=sorted(ids[rest[i]] for i in val_idx),
                test=list(test),
            ))
        return folds

    _check_counts(labels, n_folds, source)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for fold, (rest_idx, test_idx) in enumerate(splitter.split(ids, keys)):
        rest_ids = [ids[i] for i in rest_idx]
        # Validation strata: the label only, so tiny protocol groups never break the split.
        rest_keys = [str(labels[i]) for i in rest_idx]
        train, val = _split_validation(rest_ids, rest_keys, val_fraction, seed + 1000 + fold, source)
        folds.append(FoldSplit(fold=fold, train=train, val=val, test=sorted(ids[i] for i in test_idx)))
    return folds
