"""Datasets described by a CSV manifest, for data not in the ds004199 layout.

Columns (header row, comma-separated; ``.tsv`` files tab-separated):

- ``subject`` (or ``participant_id``): unique id.
- ``label``: ``fcd``/``patient``/``1`` or ``control``/``hc``/``0`` (case-insensitive); other
  names through :class:`~FCDTrainLib.data.labels.LabelNames` (e.g. ``bleed``/``normal``).
- one column per modality: ``t1``, ``flair``, and/or ``image_<name>`` for any other
  (``image_ct`` -> modality ``ct``). At least one is required; an empty cell means missing.
- optional ``roi`` (drawn on the FLAIR grid, or on the first modality's when there is no FLAIR),
  ``protocol`` and/or ``site`` (-> :attr:`Subject.protocol`), ``split``.

Relative paths are resolved against the CSV's folder; image paths are only read, never
written. Subject ids name files and folders of results (``evaluation/reports/<subject>``), so
an id must be one plain name: no ``/`` or ``\\``, not ``.`` or ``..``. Other columns are kept in
``info``. The table is read by :mod:`FCDDetectLib.io.manifest_table` (spreadsheet exports with
trailing separators included).

Example:
    >>> dataset = load_manifest("cohort.csv")  # doctest: +SKIP
    >>> dataset.subjects[0].images["flair"]  # doctest: +SKIP
    PosixPath('/data/cohort/p01_flair.nii.gz')
"""

from __future__ import annotations

from pathlib import Path

from FCDDetectLib.choices import MODALITIES
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.grid.geometry import same_grid, voxel_sizes
from FCDDetectLib.io.manifest_table import id_column, open_table, subject_rows

from FCDTrainLib.data.image_headers import is_thick_slice, read_grid
from FCDTrainLib.data.labels import LabelNames, parse_label
from FCDTrainLib.data.records import FLAG_2D_FLAIR, Dataset, Subject

_RESERVED = {"subject", "participant_id", "label", "roi", "protocol", "site", "split"}


def _modality_columns(columns: list[str]) -> dict[str, str]:
    found = {c: c for c in columns if c in MODALITIES}
    found.update({c[len("image_"):]: c for c in columns if c.startswith("image_") and len(c) > len("image_")})
    return found


def _resolve(base: Path, value: str, where: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise FCDInputError(f"{where}: file not found: {path}")
    return path


def load_manifest(path: str | Path, label_names: LabelNames | None = None) -> Dataset:
    """Read a CSV/TSV manifest into a :class:`Dataset`; errors name the CSV, row subject and file.

    Errors (FCDInputError): missing file, a missing ``subject``/``label`` column or no modality
    column, an empty or duplicate subject id, an unknown label, a path that does not exist, a
    subject without any image, an ROI whose grid differs from its reference image.

    Example:
        >>> names = LabelNames.with_extra(positive=["bleed"], negative=["normal"])
        >>> ct = load_manifest("ct_cohort.csv", names)  # doctest: +SKIP
    """
    table = Path(path)
    if not table.is_file():
        raise FCDInputError(f"{table}: manifest file not found")
    names = label_names or LabelNames()
    with open_table(table) as (columns, lazy_rows):
        subject_column = id_column(table, columns)
        if "label" not in columns:
            raise FCDInputError(f"{table}: missing column 'label' (has: {', '.join(columns)})")
        modality_columns = _modality_columns(columns)
        if not modality_columns:
            raise FCDInputError(
                f"{table}: missing image column; need at least one of {', '.join(MODALITIES)} or image_<name>"
            )
        rows = list(lazy_rows)
    base = table.parent
    subjects: list[Subject] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for subject_id, row in subject_rows(table, rows, subject_column):
        if subject_id in (".", "..") or any(c in subject_id for c in "/\\\0"):
            raise FCDInputError(f"{table}: subject id {subject_id[:80]!r} is not a plain name (results are written "
                                "under it): no / or \\, not . or ..")
        if subject_id in seen:
            raise FCDInputError(f"{table}: subject {subject_id} listed twice")
        seen.add(subject_id)
        where = f"{table}: {subject_id}"
        label = parse_label(row.get("label", ""), f"{where} label", names)
        images = {
            modality: _resolve(base, row[column], f"{where} {modality}")
            for modality, column in modality_columns.items()
            if row.get(column)
        }
        if not images:
            raise FCDInputError(f"{where}: no image (all of {', '.join(modality_columns.values())} are empty)")
        flags: list[str] = []
        reference_key = "flair" if "flair" in images else next(iter(images))
        reference_grid = read_grid(images[reference_key], reference_key)
        if "flair" in images and is_thick_slice(voxel_sizes(reference_grid[1])):
            flags.append(FLAG_2D_FLAIR)
        roi = _resolve(base, row["roi"], f"{where} roi") if row.get("roi") else None
        if roi is not None and not same_grid(read_grid(roi, "ROI"), reference_grid):
            raise FCDInputError(f"{roi}: ROI grid differs from {subject_id}'s {reference_key} image {images[reference_key].name}")
        protocol = row.get("protocol") or row.get("site") or None
        subjects.append(
            Subject(
                subject_id=subject_id,
                label=label,
                images=images,
                roi=roi,
                protocol=protocol,
                split=row.get("split") or None,
                flags=flags,
                acquisitions={},
                info={k: v for k, v in row.items() if k not in _RESERVED and k not in modality_columns.values()},
            )
        )
    if not subjects:
        raise FCDInputError(f"{table}: manifest lists no subjects")
    return Dataset(root=base, subjects=subjects, warnings=warnings, source="manifest")
