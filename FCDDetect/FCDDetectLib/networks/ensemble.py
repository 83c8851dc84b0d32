"""Fold ensembles: every fold model of a training run (or several bundles), checked to fit together.

``fcd detect --model RUN`` (a run folder of ``fcd train``) or ``--model A --model B ...`` (bundles)
detects with every fold model and averages their maps (:mod:`FCDDetectLib.detection.ensemble_detect`),
as nnU-Net ensembles its folds by default. This module finds and checks the members and loads
them once:

- **A run folder** is a folder without ``bundle.json`` holding ``fold-K/model.fcdbundle``. Its
  expected folds are ``0 .. folds-1`` from its ``config.json`` (an integer in [2, 100]; without a
  readable one, the ``fold-K`` folders present). A fold whose bundle is absent or incomplete is
  *missing*: detection goes on with the folds present and says which are missing
  (:attr:`ModelEnsemble.missing`), or refuses with ``require_all`` (``--require-all-folds``).
  Only ``fold-K/model.fcdbundle`` paths are read; a member whose real path leaves the run folder
  (a symbolic link pointing elsewhere) is refused.
- **The members must agree** on the model grid (spacing, shape), the modalities, the head, the
  classes and the normalisation: a fold that differs is one error naming it, before any scan is
  read.
- **The ensemble's own metadata** (:func:`ensemble_metadata`) is the first member's with a name
  that lists the members, an operating point made of the members' (when every member has one:
  cluster threshold :data:`ENSEMBLE_CLUSTER_THRESHOLD` on the mean of the members' maps, each on
  its operating scale (its own threshold at :data:`OPERATING_LEVEL`,
  :mod:`FCDDetectLib.maps.operating_scale`), and the mean of their minimum
  sizes) and the median of their lesion-evidence thresholds; the mean map is clustered and
  decided with these.

Only ``bundle.json`` files are read by :func:`find_members` and :func:`read_ensemble_metadata`
(no torch); :func:`load_ensemble` loads the weights.

Example:
    >>> members, missing = find_members(["runs/r18-lesion"])  # doctest: +SKIP
    >>> [label for label, _ in members], missing  # doctest: +SKIP
    (['fold-0', 'fold-1', 'fold-3'], ['fold-2'])
    >>> ensemble = load_ensemble(["runs/r18-lesion"], device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.networks.bundle_metadata import METADATA_FILE, BundleMetadata, read_bundle_metadata

__all__ = ["ENSEMBLE_CLUSTER_THRESHOLD", "MAX_FOLDS", "MEMBER_BUNDLE", "OPERATING_LEVEL", "ModelEnsemble", "ensemble_metadata",
           "find_members", "is_run_folder", "load_ensemble", "read_ensemble_metadata"]

MEMBER_BUNDLE = "model.fcdbundle"
"""The bundle of one fold inside a run folder (``fold-K/model.fcdbundle``, as ``fcd train`` writes it)."""
OPERATING_LEVEL = 0.5
"""The level each member's own cluster threshold is moved to before the members' lesion maps are
averaged (``FCDDetectLib.maps.operating_scale``)."""
ENSEMBLE_CLUSTER_THRESHOLD = 0.3
"""The ensemble's cluster threshold on the mean of the members' maps on their operating scales.

Below :data:`OPERATING_LEVEL`, because a mean shrinks a focus that only some folds are sure of:
at 0.3, one fold of four sure of a voxel (1.0) and the others at a fifth of their own thresholds
keep it. Chosen on the development cohort (``fcd synth --subtlety 0.5`` seed 13, 20 patients and 20
controls, used for no reported figure) as the highest cut in 0.30-0.50 (step 0.05) at which the
ensemble's detection reached its best, for both the 32^3 and the 48^3 fold models of
``benchmarks/bench_lesion.py``, with their lesion maps mirrored left-right (``lesion_mirror_axes``):
48^3 detection 0.85 at 0.5-0.4, 0.90 at 0.35, 0.95 at 0.3; 32^3 0.85 at every cut; no false
cluster at any of them (0.25, below the range, added false clusters to the 48^3 folds: 0.25 per
patient). With one-pass maps, 0.3 and 0.4 gave the same (48^3 0.90 with 0.05 FP clusters per
patient; 32^3 0.85). The cut was 0.4 before the maps were mirrored (``docs/lesion-supervision.md``)."""
MAX_FOLDS = 100
"""The largest fold count a run folder's ``config.json`` may announce (more is refused as corrupt)."""
_FOLD = re.compile(r"fold-(\d{1,3})")
_MUST_AGREE = (("target_spacing", "model grid spacing"), ("target_shape", "model grid shape"),
               ("modalities", "modalities"), ("head", "head"), ("class_names", "classes"),
               ("normalisation", "normalisation"))


@dataclass
class ModelEnsemble:
    """Loaded fold models that fit together, and what the ensemble says about itself.

    ``labels`` name the members (``fold-0`` ... for a run folder, the bundle folders' names
    otherwise); ``missing`` the run's folds without a usable bundle; ``metadata`` the
    ensemble's (:func:`ensemble_metadata`), so code written for one bundle reads its name,
    modalities, grid and defaults the same way.
    """

    members: list[Any]
    labels: list[str]
    metadata: BundleMetadata
    missing: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def content_sha256(self) -> str:
        """The ensemble's identity: a SHA-256 over its rule, its members' labels and content checksums
        ("" when a member has none, an older bundle: such an ensemble's results are never reused).

        The rule's name changes when the way members are combined changes (v2: lesion maps on their
        operating scales; v3: their mean cut at :data:`ENSEMBLE_CLUSTER_THRESHOLD`; v4: that cut
        moved from 0.4 to 0.3), so a cohort
        resumed after such a change detects again."""
        import hashlib

        digests = [getattr(member, "content_sha256", "") for member in self.members]
        if not all(digests):
            return ""
        rule = f"fcd fold ensemble v4: lesion maps on their operating scales, cut at {ENSEMBLE_CLUSTER_THRESHOLD:g}\n"
        digest = hashlib.sha256(rule.encode())
        for label, member_digest in zip(self.labels, digests, strict=True):
            digest.update(f"{label}:{member_digest}\n".encode())
        return digest.hexdigest()

    @property
    def verified(self) -> bool:
        """Whether every member's checksum matched the one its bundle records."""
        return all(bool(getattr(member, "verified", False)) for member in self.members)


def is_run_folder(path: str | os.PathLike) -> bool:
    """A folder that is not a bundle itself and holds at least one ``fold-K`` folder."""
    folder = Path(path)
    if not folder.is_dir() or (folder / METADATA_FILE).exists():
        return False
    return any(_FOLD.fullmatch(p.name) and p.is_dir() for p in folder.iterdir())


def _expected_folds(run: Path) -> list[int]:
    config = run / "config.json"
    folds = None
    if config.is_file() and config.stat().st_size < 1 << 20:  # a run's config is a few kB
        try:
            folds = json.loads(config.read_text(encoding="utf-8")).get("folds")
        except (OSError, ValueError, AttributeError):
            folds = None
    if isinstance(folds, int) and not isinstance(folds, bool):
        if not 2 <= folds <= MAX_FOLDS:
            raise FCDInputError(f"{config}: folds {folds} is outside [2, {MAX_FOLDS}]")
        return list(range(folds))
    return sorted(int(m.group(1)) for p in run.iterdir() if p.is_dir() and (m := _FOLD.fullmatch(p.name)))


def find_members(models: Sequence[str | os.PathLike], require_all: bool = False) -> tuple[list[tuple[str, Path]],
                                                                                         list[str]]:
    """The members ``(label, bundle path)`` of an ensemble and the run's missing folds.

    ``models`` is one run folder, or one or more bundle folders. Raises :class:`FCDInputError`
    for a run without any fold model, a member outside its run folder, a missing fold with
    ``require_all``, or a bundle given twice.
    """
    paths = [Path(m) for m in models]
    if not paths:
        raise FCDInputError("--model: no model given")
    if len(paths) == 1 and is_run_folder(paths[0]):
        run = paths[0]
        root = run.resolve()
        members, missing = [], []
        for fold in _expected_folds(run):
            label = f"fold-{fold}"
            bundle = run / label / MEMBER_BUNDLE
            if not (bundle / METADATA_FILE).is_file():
                missing.append(label)
                continue
            if not bundle.resolve().is_relative_to(root):
                raise FCDInputError(f"{bundle}: points outside the run folder {run}; refusing to read it")
            members.append((label, bundle))
        if not members:
            raise FCDInputError(f"{run}: no fold model found (expected fold-K/{MEMBER_BUNDLE} in a run folder "
                                "of fcd train)")
        if missing and require_all:
            raise FCDInputError(f"{run}: fold(s) {', '.join(missing)} have no model "
                                f"(fold-K/{MEMBER_BUNDLE}); --require-all-folds refuses an incomplete run")
        return members, missing
    for path in paths:
        if is_run_folder(path):
            raise FCDInputError(f"{path}: a run folder; give it alone as --model, or give bundles only")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise FCDInputError("--model: the same bundle is given twice")
    return [(p.name, p) for p in paths], []


def _check_agree(metadatas: Sequence[BundleMetadata], labels: Sequence[str]) -> None:
    first = metadatas[0]
    for meta, label in zip(metadatas[1:], labels[1:], strict=True):
        for name, words in _MUST_AGREE:
            if getattr(meta, name) != getattr(first, name):
                raise FCDInputError(
                    f"{label}: {words} {getattr(meta, name)!r} differs from {labels[0]}'s {getattr(first, name)!r}; "
                    "the models of an ensemble must share grid, modalities and head")


def ensemble_metadata(metadatas: Sequence[BundleMetadata], labels: Sequence[str], source: str = "") -> BundleMetadata:
    """The ensemble's metadata: the first member's, renamed, with an operating point made of the members'.

    ``operating_point`` (when every member has one): cluster threshold
    :data:`ENSEMBLE_CLUSTER_THRESHOLD`, which applies to the mean of the members' lesion maps each
    put on its operating scale (its own threshold moved to :data:`OPERATING_LEVEL`; the members'
    thresholds are kept under ``members``), and
    the mean of the members' minimum sizes; ``lesion_evidence``: the median of their thresholds (when every member has
    one, all for the same score: thresholds of different scores do not mix; otherwise none, and
    any cluster decides); ``threshold`` (the classifier's): their mean; ``lesion_mirror_axes``: the
    members' when they all mirror alike, else None (each member still maps with its own). The name
    lists the members, so a cohort's resume tells one ensemble from another.

    Example:
        >>> meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
        ...                       target_shape=[96, 112, 96], name="r18")
        >>> ensemble_metadata([meta, meta], ["fold-0", "fold-1"], "runs/r18").name
        'ensemble r18 [fold-0, fold-1]'
    """
    _check_agree(metadatas, labels)
    first = metadatas[0]
    points = [m.operating_point for m in metadatas]
    point = None
    if all(points):
        point = {"cluster_threshold": ENSEMBLE_CLUSTER_THRESHOLD,
                 "min_cluster_mm3": statistics.fmean(p["min_cluster_mm3"] for p in points),
                 "chosen_on": (f"the members' own: each member's lesion map rescaled so that its threshold is "
                               f"{OPERATING_LEVEL:g}, then averaged and cut at {ENSEMBLE_CLUSTER_THRESHOLD:g}; "
                               "the mean of their minimum sizes"),
                 "members": {label: {k: p.get(k) for k in ("cluster_threshold", "min_cluster_mm3", "target_fp_per_control")}
                             for label, p in zip(labels, points, strict=True)}}
    thresholds = [(m.lesion_evidence or {}).get("threshold") for m in metadatas]
    definitions = {(m.lesion_evidence or {}).get("score") for m in metadatas}
    evidence = None
    if all(t is not None for t in thresholds) and first.lesion_evidence and len(definitions) == 1:
        evidence = {"score": first.lesion_evidence["score"], "threshold": float(statistics.median(thresholds)),
                    "rule": "fcd when the ensemble map's score is above the median of the members' thresholds"}
    name = f"ensemble {Path(source).name or first.name} [{', '.join(labels)}]"
    # each member maps a scan its own way; the ensemble states mirroring only when all of them mirror alike
    mirrors = [m.lesion_mirror_axes or [] for m in metadatas]
    mirror_axes = mirrors[0] if all(axes == mirrors[0] for axes in mirrors) and mirrors[0] else None
    return dataclasses.replace(
        first, name=name, threshold=statistics.fmean(m.threshold for m in metadatas), operating_point=point,
        lesion_evidence=evidence, metrics={}, training={"ensemble_of": list(labels), "source": str(source)},
        lesion_mirror_axes=mirror_axes)


def read_ensemble_metadata(models: Sequence[str | os.PathLike], require_all: bool = False
                           ) -> tuple[BundleMetadata, list[tuple[str, Path]], list[str]]:
    """The ensemble's metadata, its members and missing folds, from ``bundle.json`` files only (no torch).

    Checks everything :func:`find_members` and the members' agreement check; ``fcd detect``
    calls it before reading a scan or writing a file.
    """
    members, missing = find_members(models, require_all)
    metadatas = [read_bundle_metadata(path) for _, path in members]
    source = str(models[0]) if len(models) == 1 else ""
    return ensemble_metadata(metadatas, [label for label, _ in members], source), members, missing


def load_ensemble(models: Sequence[str | os.PathLike], device: str = "cpu", require_all: bool = False) -> ModelEnsemble:
    """Every member's bundle loaded once on ``device``, checked to agree (see the module docstring)."""
    from FCDDetectLib.networks.bundle import load_bundle

    metadata, members, missing = read_ensemble_metadata(models, require_all)
    loaded = [load_bundle(path, device=device) for _, path in members]
    return ModelEnsemble(members=loaded, labels=[label for label, _ in members], metadata=metadata, missing=missing,
                         source=str(models[0]) if len(models) == 1 else "")
