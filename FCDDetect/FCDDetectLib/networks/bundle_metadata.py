"""The ``bundle.json`` half of a model bundle: :class:`BundleMetadata`, its checks, reading it.

Everything about a trained model except its weights: the fields and their validation
(:meth:`BundleMetadata.from_dict`), the sane bounds of a model grid
(:func:`check_model_grid`, also used by ``fcd train``), the bundle folder's file names and
:func:`read_bundle_metadata`. Standard library only (torch is never imported here);
:mod:`FCDDetectLib.networks.bundle` writes and loads the weights.

Example:
    >>> meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"],
    ...                       target_spacing=[1.5, 1.5, 1.5], target_shape=[128, 128, 128])
    >>> meta.in_channels, meta.format_version
    (1, 1)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.choices import (
    DEPTHS,
    EXPLANATION_LAYERS,
    EXPLANATION_METHODS,
    GEOMETRIES,
    LESION_EVIDENCE_SCORES,
    SUPERVISION,
)
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import json_text
from FCDDetectLib.io.checksums import file_sha256, is_sha256

BUNDLE_FORMAT_VERSION = 3
_LESION_HEAD_FORMAT = 2  # first format that may hold a lesion head
_MIRRORING_FORMAT = 3
"""First format whose lesion map may be averaged over mirrored passes (``lesion_mirror_axes``): an
older engine would make a one-pass map and cut it at an operating point calibrated on the mean, so
it must refuse such a bundle ("update the extension") rather than ignore the field."""
BUNDLE_SUFFIX = ".fcdbundle"
METADATA_FILE = "bundle.json"
WEIGHTS_FILE = "weights.pt"
NORMALISATIONS = ("zscore-head",)
_OPTIONAL = ("name", "engine_version", "training", "metrics", "input_ranges", "head", "explain_method",
             "explain_layer", "content_sha256", "weights_sha256",
             "operating_point", "lesion_evidence", "lesion_mirror_axes")
CONTENT_KEY = "content_sha256"
"""The ``bundle.json`` field holding the bundle's content checksum (:func:`content_digest`)."""
WEIGHTS_KEY = "weights_sha256"
"""The ``bundle.json`` field holding the SHA-256 of ``weights.pt`` alone (so a mismatch names the file)."""
CHECKSUM_KEYS = (CONTENT_KEY, WEIGHTS_KEY)
MAX_METADATA_BYTES = 16 * 1024 * 1024
"""Largest ``bundle.json`` read (16 MiB): ours are a few kB even with long training provenance."""
_HEADS = SUPERVISION  # = lesion_net.HEADS

# Sane bounds of a model grid (bundles and `fcd train`), our choice: the paper's grids are
# 1-2 mm and 96-160 voxels a side. 4000^3 voxels or 0.001 mm would only exhaust memory.
SPACING_RANGE_MM = (0.2, 10.0)
SHAPE_RANGE = (8, 512)
MAX_GRID_VOXELS = 256**3  # 16.8 M voxels: 64 MiB per float32 channel; a 400^3 grid (64 M) is refused
MAX_FOV_MM = 600.0


def check_model_grid(spacing: Any, shape: Any, source: str, spacing_name: str = "target_spacing",
                     shape_name: str = "target_shape") -> None:
    """Refuse a model grid outside the sane bounds above, blaming ``source`` (a bundle, an option).

    Example:
        >>> check_model_grid([2, 2, 2], [96, 112, 96], "bundle.json")
        >>> check_model_grid([2, 2, 2], [400, 400, 400], "bundle.json")
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: bundle.json: target_shape [400, 400, 400] has 64000000 voxels, more than the 16777216 (256^3) this engine accepts
    """
    low, high = SPACING_RANGE_MM
    if not isinstance(spacing, (list, tuple)) or len(spacing) != 3 or not all(
            _is_number(v) and low <= v <= high for v in spacing):
        raise FCDInputError(f"{source}: {spacing_name} {spacing!r} must be 3 numbers in [{low:g}, {high:g}] mm")
    low, high = SHAPE_RANGE
    if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(
            _is_int(v) and low <= v <= high for v in shape):
        raise FCDInputError(f"{source}: {shape_name} {shape!r} must be 3 integers in [{low}, {high}] voxels")
    voxels = math.prod(int(v) for v in shape)
    if voxels > MAX_GRID_VOXELS:
        raise FCDInputError(
            f"{source}: {shape_name} {list(shape)} has {voxels} voxels, more than the {MAX_GRID_VOXELS} (256^3) "
            "this engine accepts")
    fov = max(float(a) * float(b) for a, b in zip(spacing, shape, strict=True))
    if fov > MAX_FOV_MM:
        raise FCDInputError(f"{source}: model field of view {fov:.0f} mm ({spacing_name} x {shape_name}) is more "
                            f"than {MAX_FOV_MM:.0f} mm; no head is that large")


def _engine_version() -> str:
    from FCDDetectLib.version import __version__

    return __version__


@dataclass
class BundleMetadata:
    """Everything about a trained model except its weights (``bundle.json``).

    ``modalities`` gives the input channels in order (``["flair"]``, ``["t1", "flair"]``);
    ``target_spacing`` (mm) and ``target_shape`` (voxels) define the model grid that
    preprocessing resamples to; ``threshold`` applies to the probability of
    ``class_names[1]``; ``training`` holds provenance (data, folds, weight family...) and
    ``metrics`` the validation figures; ``input_ranges`` the training inputs' statistics
    (``{name: [low, high]}``, see :mod:`FCDDetectLib.grid.ood`; empty in bundles made before).
    ``explain_method`` / ``explain_layer`` are the
    heatmap method and stage ``fcd detect`` uses for this model unless told otherwise
    (None: the engine's defaults, Grad-CAM on layer4); bundles written before they
    existed load with None. ``content_sha256`` is the bundle's content checksum
    (:func:`content_digest`) and ``weights_sha256`` the SHA-256 of ``weights.pt``, written by
    ``save_bundle`` and checked by ``load_bundle``; bundles written before them have None and
    load as "unverified".

    A lesion model also carries, chosen on its fold's validation subjects (None in bundles
    made before; older engines ignore both):

    - ``operating_point``: ``{"cluster_threshold", "min_cluster_mm3", "target_fp_per_control",
      "target_met", "validation": {...}}``, the cluster settings ``fcd detect`` uses for this
      model unless told otherwise (:meth:`FCDDetectLib.detection.options.DetectOptions.for_bundle`);
    - ``lesion_evidence``: ``{"score", "threshold", "validation_roc_auc", ...}``, the
      subject-level score of the lesion map (:mod:`FCDDetectLib.maps.lesion_evidence`) and the
      threshold above which the model's decision is ``fcd``;
    - ``lesion_mirror_axes``: the model-grid axes (0 = left-right) over which the lesion map is
      averaged with mirrored copies of the scan (test-time mirroring,
      :func:`FCDDetectLib.detection.lesion_map.mirrored_lesion_probability`); the operating point
      and lesion evidence were calibrated on that mean. None or empty: one pass. A bundle with
      axes is format 3, which older engines refuse.

    Example:
        >>> meta = BundleMetadata(depth=34, geometry="medicalnet", modalities=["t1", "flair"],
        ...                       target_spacing=[1.0, 1.0, 1.0], target_shape=[160, 192, 160])
        >>> BundleMetadata.from_dict(meta.to_dict(), source="example") == meta
        True
    """

    depth: int
    geometry: str
    modalities: list[str]
    target_spacing: list[float]
    target_shape: list[int]
    architecture: str = "resnet"
    normalisation: str = "zscore-head"
    class_names: list[str] = field(default_factory=lambda: ["control", "fcd"])
    threshold: float = 0.5
    engine_version: str = field(default_factory=_engine_version)
    format_version: int = 1
    name: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    input_ranges: dict[str, list[float]] = field(default_factory=dict)
    head: str = "none"
    explain_method: str | None = None
    explain_layer: str | None = None
    content_sha256: str | None = None
    weights_sha256: str | None = None
    operating_point: dict[str, Any] | None = None
    lesion_evidence: dict[str, Any] | None = None
    lesion_mirror_axes: list[int] | None = None

    def __post_init__(self) -> None:
        self._raise_format_to_content()

    def _raise_format_to_content(self) -> None:
        """The lowest format that holds what the bundle holds (a lesion head: 2; mirroring: 3)."""
        if self.head == "lesion" and self.format_version < _LESION_HEAD_FORMAT:
            self.format_version = _LESION_HEAD_FORMAT
        if self.lesion_mirror_axes and self.format_version < _MIRRORING_FORMAT:
            self.format_version = _MIRRORING_FORMAT

    @property
    def has_lesion_head(self) -> bool:
        """True when the model also outputs a lesion map (``head == "lesion"``)."""
        return self.head == "lesion"

    @property
    def in_channels(self) -> int:
        """Number of input channels (one per modality)."""
        return len(self.modalities)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (validated first); fields set after construction raise the format too."""
        self._raise_format_to_content()
        data = json.loads(json_text(dataclasses.asdict(self)))
        BundleMetadata.from_dict(data, source="bundle metadata")  # same checks both ways
        return data

    @classmethod
    def from_dict(cls, d: Any, source: str = "bundle.json") -> BundleMetadata:
        """Validated metadata from a dict; ``source`` names the file in error messages.

        Raises:
            FCDInputError: not an object, missing field, wrong type or value, or a
                ``format_version`` newer than this engine supports.
        """
        if not isinstance(d, dict):
            raise FCDInputError(f"{source}: bundle metadata must be a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if version is None:
            raise FCDInputError(f"{source}: missing field 'format_version'")
        if not _is_int(version) or version < 1:
            raise FCDInputError(f"{source}: field 'format_version' must be a positive integer, got {version!r}")
        if version > BUNDLE_FORMAT_VERSION:
            raise FCDInputError(
                f"{source}: bundle format_version {version} is newer than this engine supports "
                f"({BUNDLE_FORMAT_VERSION}); update the extension"
            )
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                if f.name in _OPTIONAL:
                    continue
                raise FCDInputError(f"{source}: missing field {f.name!r}")
            values[f.name] = d[f.name]
        _check_fields(values, source)
        values["target_spacing"] = [float(v) for v in values["target_spacing"]]
        values["threshold"] = float(values["threshold"])
        values["modalities"] = list(values["modalities"])
        values["class_names"] = list(values["class_names"])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _check_fields(v: dict[str, Any], source: str) -> None:
    def bad(name: str, expected: str) -> FCDInputError:
        return FCDInputError(f"{source}: field {name!r} must be {expected}, got {v[name]!r}")

    if v["architecture"] != "resnet":
        raise bad("architecture", "'resnet'")
    if not _is_int(v["depth"]) or v["depth"] not in DEPTHS:
        raise bad("depth", f"one of {DEPTHS}")
    if v["geometry"] not in GEOMETRIES:
        raise bad("geometry", f"one of {GEOMETRIES}")
    modalities = v["modalities"]
    if (
        not isinstance(modalities, list)
        or not modalities
        or not all(isinstance(m, str) and m for m in modalities)
        or len(set(modalities)) != len(modalities)
    ):
        raise bad("modalities", "a non-empty list of distinct modality names")
    spacing = v["target_spacing"]
    if not isinstance(spacing, list) or len(spacing) != 3 or not all(_is_number(s) and s > 0 for s in spacing):
        raise bad("target_spacing", "a list of 3 positive numbers (mm)")
    shape = v["target_shape"]
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise bad("target_shape", "a list of 3 positive integers")
    check_model_grid(spacing, shape, source)
    if v["normalisation"] not in NORMALISATIONS:
        raise bad("normalisation", f"one of {NORMALISATIONS}")
    names = v["class_names"]
    if not isinstance(names, list) or len(names) != 2 or not all(isinstance(c, str) and c for c in names):
        raise bad("class_names", "a list of 2 class names")
    if not _is_number(v["threshold"]) or not 0.0 <= v["threshold"] <= 1.0:
        raise bad("threshold", "a number between 0 and 1")
    if "head" in v and v["head"] not in _HEADS:
        raise bad("head", f"one of {_HEADS}")
    for name in ("name", "engine_version"):
        if name in v and not isinstance(v[name], str):
            raise bad(name, "a string")
    for name in ("training", "metrics", "input_ranges"):
        if name in v and not isinstance(v[name], dict):
            raise bad(name, "a JSON object")
    for key, bounds in v.get("input_ranges", {}).items():
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
                and bounds[0] <= bounds[1]):
            raise FCDInputError(f"{source}: input_ranges[{key!r}] must be [low, high] numbers, got {bounds!r}")
    for name, allowed in (("explain_method", EXPLANATION_METHODS), ("explain_layer", EXPLANATION_LAYERS)):
        if v.get(name) is not None and v[name] not in allowed:
            raise bad(name, f"null or one of {allowed}")
    for name in CHECKSUM_KEYS:
        if v.get(name) is not None and not is_sha256(v[name]):
            raise bad(name, "null or a SHA-256 (64 lower-case hex digits)")
    point = v.get("operating_point")
    if point is not None:
        if not (isinstance(point, dict) and _is_number(point.get("cluster_threshold"))
                and 0.0 <= point["cluster_threshold"] <= 1.0 and _is_number(point.get("min_cluster_mm3"))
                and point["min_cluster_mm3"] >= 0.0):
            raise bad("operating_point", "null or an object with cluster_threshold in [0, 1] and min_cluster_mm3 >= 0")
    evidence = v.get("lesion_evidence")
    if evidence is not None:
        threshold = evidence.get("threshold") if isinstance(evidence, dict) else None
        if not (isinstance(evidence, dict) and evidence.get("score") in LESION_EVIDENCE_SCORES
                and (threshold is None or (_is_number(threshold) and threshold >= 0.0))):
            raise bad("lesion_evidence", f"null or an object with a score in {LESION_EVIDENCE_SCORES} and a "
                      "threshold >= 0")
    axes = v.get("lesion_mirror_axes")
    if axes is not None and not (isinstance(axes, list) and all(_is_int(a) and 0 <= a <= 2 for a in axes)
                                 and len(set(axes)) == len(axes)):
        raise bad("lesion_mirror_axes", "null or a list of distinct model-grid axes (0, 1, 2)")


def content_digest(weights: str | os.PathLike, metadata: dict[str, Any]) -> str:
    """A bundle's content checksum: SHA-256 over its weights file and its ``bundle.json`` content.

    The ``bundle.json`` part is the metadata dict without :data:`CHECKSUM_KEYS` (the checksums
    do not cover themselves), as canonical JSON (sorted keys, no spaces), so it does not depend
    on the file's formatting. Two bundles with the same digest hold the same network and the
    same metadata, whatever their names; a bundle's ``name`` is no identity (it repeats
    across runs).

    Example:
        >>> import tempfile, pathlib
        >>> weights = pathlib.Path(tempfile.mkdtemp()) / "weights.pt"
        >>> _ = weights.write_bytes(b"tensors")
        >>> a = content_digest(weights, {"name": "a", "content_sha256": None, "weights_sha256": None})
        >>> a == content_digest(weights, {"name": "a"}), a == content_digest(weights, {"name": "b"})
        (True, False)
    """
    return content_digest_of(file_sha256(weights), metadata)


def content_digest_of(weights_sha256: str, metadata: dict[str, Any]) -> str:
    """:func:`content_digest` from the weights file's SHA-256 (already computed) and the metadata dict."""
    meta = {k: v for k, v in metadata.items() if k not in CHECKSUM_KEYS}
    digest = hashlib.sha256(b"fcdbundle content v1\n")
    digest.update(weights_sha256.encode("ascii"))
    digest.update(b"\n")
    digest.update(json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return digest.hexdigest()


def bundle_dir(path: str | os.PathLike) -> Path:
    """The bundle folder for a folder path or a path to its bundle.json."""
    path = Path(path)
    if path.name == METADATA_FILE and path.is_file():
        return path.parent
    return path


def read_bundle_metadata(path: str | os.PathLike) -> BundleMetadata:
    """Read and validate ``bundle.json`` of a bundle (JSON only; torch is not imported).

    Example:
        >>> read_bundle_metadata("models/flair-r18.fcdbundle").depth  # doctest: +SKIP
        18
    """
    folder = bundle_dir(path)
    try:
        exists = folder.exists()
    except OSError as error:  # a name over 255 bytes, a link loop
        raise FCDInputError(f"{folder}: cannot be read ({error.strerror or type(error).__name__})") from None
    if not exists:
        raise FCDInputError(f"{folder}: model bundle not found")
    if not folder.is_dir():
        raise FCDInputError(f"{folder}: not a model bundle (expected a folder NAME{BUNDLE_SUFFIX}/)")
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise FCDInputError(f"{meta_path}: missing; {folder} is not a complete model bundle")
    return BundleMetadata.from_dict(read_metadata_dict(folder), source=str(meta_path))


def read_metadata_dict(path: str | os.PathLike) -> dict[str, Any]:
    """``bundle.json`` of a bundle as a plain dict, unvalidated (a JSON object of at most 16 MiB).

    Example:
        >>> read_metadata_dict("models/flair-r18.fcdbundle")["depth"]  # doctest: +SKIP
        18
    """
    meta_path = bundle_dir(path) / METADATA_FILE
    try:
        if meta_path.stat().st_size > MAX_METADATA_BYTES:
            raise FCDInputError(f"{meta_path}: {meta_path.stat().st_size:,} bytes, more than a bundle.json holds "
                                f"({MAX_METADATA_BYTES:,}); not a bundle's metadata")
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FCDInputError(f"{meta_path}: corrupt JSON ({str(error).splitlines()[0]})") from None
    except RecursionError:  # e.g. 100000 nested lists
        raise FCDInputError(f"{meta_path}: JSON nested too deeply to be a bundle's metadata") from None
    except OSError as error:
        raise FCDInputError(f"{meta_path}: cannot read ({error.strerror or type(error).__name__})") from None
    if not isinstance(data, dict):
        raise FCDInputError(f"{meta_path}: bundle metadata must be a JSON object, got {type(data).__name__}")
    return data
