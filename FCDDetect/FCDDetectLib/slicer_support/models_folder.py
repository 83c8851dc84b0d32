"""The model list of FCDDetect: ``*.fcdbundle`` folders found in a models folder.

Each entry carries the bundle's name and a short tooltip built from its metadata
(depth, geometry, modalities, grid, training provenance, metrics). Only ``bundle.json``
is read (no torch), so the list fills instantly. A folder that is not a valid bundle is
skipped and reported, never fatal: one broken bundle must not hide the others.

Example:
    >>> from FCDDetectLib.slicer_support.models_folder import list_bundles
    >>> for entry in list_bundles("~/FCDModels"):  # doctest: +SKIP
    ...     print(entry.name, entry.path)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.paths import scan_refusal

BUNDLE_SUFFIX = ".fcdbundle"
# `fcd experiment` writes <out>/runs/<run>/fold-K/model.fcdbundle: depth 4 covers it (a models
# folder holding experiment folders needs one more level: choose the experiment folder itself).
MAX_SCAN_DEPTH = 4
# Bound on the folders visited in one scan, so a large tree cannot freeze the panel.
MAX_SCANNED_FOLDERS = 5000


@dataclass
class BundleEntry:
    """One bundle of a models folder: display name, path, metadata and tooltip text."""

    name: str
    path: Path
    metadata: Any = None  # FCDDetectLib.networks.bundle.BundleMetadata
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


def find_bundle_folders(folder: Path, max_depth: int = MAX_SCAN_DEPTH,
                        max_folders: int = MAX_SCANNED_FOLDERS) -> tuple[list[Path], bool]:
    """``*.fcdbundle`` folders at most ``max_depth`` levels below ``folder``, and whether
    the walk stopped early (more than ``max_folders`` folders visited).

    Hand-written rather than ``glob("**/...")``: glob has no depth limit and would walk
    a whole disk. Hidden folders and the inside of bundles are not entered; symlinked
    folders are not followed.
    """
    if folder.name.endswith(BUNDLE_SUFFIX):
        return [folder], False
    found: list[Path] = []
    visited = 0
    level = [folder]
    for _depth in range(max_depth):
        below: list[Path] = []
        for parent in level:
            visited += 1
            if visited > max_folders:
                return sorted(found), True
            try:
                children = sorted(parent.iterdir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
                    continue
                (found if child.name.endswith(BUNDLE_SUFFIX) else below).append(child)
        level = below
    return sorted(found), False


def list_bundles(folder: str | Path, recursive: bool = True, max_depth: int = MAX_SCAN_DEPTH) -> BundleListing:
    """Every valid ``*.fcdbundle`` in ``folder`` (itself one, or up to ``max_depth`` levels below).

    ``recursive`` also finds the per-fold bundles a training run writes in its sub-folders
    (``recursive=False``: only direct children). Duplicate names get their folder
    (relative to ``folder``) appended so the list stays unambiguous. Raises
    :class:`FCDInputError` when ``folder`` is unset ("" or "."), a filesystem root, the
    home folder, or does not exist: those are never searched.
    """
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

    refusal = scan_refusal(folder)
    if refusal is not None:
        raise FCDInputError(f"models folder: {refusal}")
    root = Path(folder).expanduser()
    listing = BundleListing()
    paths, truncated = find_bundle_folders(root, max_depth if recursive else 1)
    if truncated:
        listing.skipped.append(f"{root}: search stopped after {MAX_SCANNED_FOLDERS} folders; choose a smaller folder")
    for path in paths:
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
