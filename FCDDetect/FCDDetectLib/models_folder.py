"""The model list of FCDDetect: ``*.fcdbundle`` folders found in a models folder.

Each entry carries the bundle's name and a short tooltip built from its metadata
(depth, geometry, modalities, grid, training provenance, metrics). Only ``bundle.json``
is read (no torch), so the list fills instantly. A folder that is not a valid bundle is
skipped and reported, never fatal: one broken bundle must not hide the others.

Example:
    >>> from FCDDetectLib.models_folder import list_bundles
    >>> for entry in list_bundles("~/FCDModels"):  # doctest: +SKIP
    ...     print(entry.name, entry.path)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FCDInputError

BUNDLE_SUFFIX = ".fcdbundle"


@dataclass
class BundleEntry:
    """One bundle of a models folder: display name, path, metadata and tooltip text."""

    name: str
    path: Path
    metadata: Any = None  # FCDDetectLib.bundle.BundleMetadata
    tooltip: str = ""


@dataclass
class BundleListing:
    """Bundles found (sorted by name) and the folders skipped, with the reason."""

    bundles: list[BundleEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def bundle_tooltip(metadata: Any, path: Path) -> str:
    """Multi-line description of a bundle for a tooltip."""
    lines = [
        f"{metadata.name}",
        f"ResNet-{metadata.depth} ({metadata.geometry} geometry)",
        f"inputs: {' + '.join(metadata.modalities)}",
        f"grid: {'x'.join(str(s) for s in metadata.target_shape)} voxels at "
        f"{'x'.join(f'{s:g}' for s in metadata.target_spacing)} mm",
        f"threshold: {metadata.threshold:g}",
    ]
    training = dict(getattr(metadata, "training", {}) or {})
    for key in ("pretrained", "fold", "folds", "dataset", "epochs"):
        if key in training:
            lines.append(f"{key}: {training[key]}")
    metrics = dict(getattr(metadata, "metrics", {}) or {})
    shown = [f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(metrics.items())
             if isinstance(v, (int, float, str))]
    if shown:
        lines.append("metrics: " + ", ".join(shown[:6]))
    lines.append(str(path))
    return "\n".join(lines)


def _candidates(folder: Path, recursive: bool) -> list[Path]:
    if folder.name.endswith(BUNDLE_SUFFIX):
        return [folder]
    pattern = f"**/*{BUNDLE_SUFFIX}" if recursive else f"*{BUNDLE_SUFFIX}"
    return sorted(p for p in folder.glob(pattern) if p.is_dir())


def list_bundles(folder: str | Path, recursive: bool = True) -> BundleListing:
    """Every valid ``*.fcdbundle`` under ``folder`` (itself one, or below it).

    ``recursive`` also finds the per-fold bundles a training run writes in its sub-folders.
    Duplicate names get their folder (relative to ``folder``) appended so the list stays unambiguous.
    Raises :class:`FCDInputError` when ``folder`` does not exist.
    """
    from .bundle import read_bundle_metadata

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FCDInputError(f"models folder {root}: no such folder")
    listing = BundleListing()
    for path in _candidates(root, recursive):
        try:
            metadata = read_bundle_metadata(path)
        except FCDInputError as error:
            listing.skipped.append(f"{path}: {error}")
            continue
        name = metadata.name or path.name[: -len(BUNDLE_SUFFIX)]
        listing.bundles.append(BundleEntry(name, path, metadata, bundle_tooltip(metadata, path)))
    counts: dict[str, int] = {}
    for entry in listing.bundles:
        counts[entry.name] = counts.get(entry.name, 0) + 1
    for entry in listing.bundles:
        if counts[entry.name] > 1:
            where = entry.path.relative_to(root).parent.as_posix() if entry.path != root else root.name
            entry.name = f"{entry.name} ({where if where != '.' else entry.path.name})"
    listing.bundles.sort(key=lambda e: e.name.lower())
    return listing
