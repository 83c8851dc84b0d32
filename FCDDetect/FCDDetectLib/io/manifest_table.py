"""Reading a subject table (CSV or TSV manifest): columns, the subject-id column, the subject rows.

One reading for both manifest readers: the engine's cohort discovery
(:mod:`FCDDetectLib.cohort.discovery`, image paths only) and the trainer's dataset loader
(the training module's manifest loader, labels and grids too). Both accept the same table: a header
row (``.tsv`` tab-separated, otherwise comma-separated, a UTF-8 byte-order mark ignored),
column names compared lower-case, cells stripped, blank rows skipped, a ``subject`` (or
``participant_id``) column whose cells may not be empty.

Spreadsheet exports are read as they come: empty cells beyond the header's columns (a
trailing comma, a row padded with separators) are ignored; a *non-empty* cell beyond them
is refused naming its line (the columns would be shifted); a cell over
:data:`MAX_CELL_CHARS` characters (no path or id is that long), a NUL byte or a broken
quote is refused naming the line, never a traceback.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> table = Path(tempfile.mkdtemp()) / "cohort.csv"
    >>> _ = table.write_text("Subject,FLAIR\\np01, a.nii.gz\\n,\\n")
    >>> with open_table(table) as (columns, rows):
    ...     column = id_column(table, columns)
    ...     rows = list(rows)
    >>> [(subject, row["flair"]) for subject, row in subject_rows(table, rows, column)]
    [('p01', 'a.nii.gz')]
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from FCDDetectLib.errors import FCDInputError

ID_COLUMNS = ("subject", "participant_id")  # the first one present names the subjects
MAX_CELL_CHARS = csv.field_size_limit()
"""Longest cell read (Python's csv default, 131,072 characters): paths are at most 4,096 bytes."""


def _rows(table: Path, reader: csv.DictReader) -> Iterator[dict[str, str]]:
    """The rows as dicts of stripped cells; empty cells beyond the header are dropped, others refused."""
    for row in reader:
        extra = row.pop(None, None) or []  # DictReader's restkey: cells beyond the header's columns
        filled = [cell for cell in extra if cell.strip()]
        if filled:
            raise FCDInputError(
                f"{table}: line {reader.line_num} has {len(reader.fieldnames or []) + len(extra)} cells but the "
                f"header names {len(reader.fieldnames or [])} columns (extra cell {filled[0].strip()[:60]!r}); "
                "remove the extra cells or name their column in the header")
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if any("\0" in cell for cell in cells.values()):
            raise FCDInputError(f"{table}: line {reader.line_num} holds a NUL byte; not a text table (save it as CSV)")
        yield cells


@contextmanager
def open_table(table: Path) -> Iterator[tuple[list[str], Iterator[dict[str, str]]]]:
    """The table's lower-case column names and its rows (lower-case keys, stripped cells), read lazily.

    The rows are read while the ``with`` block is open, so a caller can check the columns
    before reading any row. A table that is not UTF-8 text, a row with a non-empty cell beyond
    the header's columns, an over-long cell or a malformed line gives FCDInputError naming it.
    """
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    with table.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            columns = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
            yield columns, _rows(table, reader)
        except UnicodeDecodeError as error:  # e.g. a spreadsheet saved as Latin-1 / Windows-1252 CSV
            raise FCDInputError(f"{table}: not UTF-8 text (byte {error.start}); save it as CSV UTF-8") from None
        except csv.Error as error:
            reason = str(error)
            if "field larger than field limit" in reason:
                reason = (f"a cell is longer than {MAX_CELL_CHARS:,} characters (no path or subject id is that "
                          "long: is this the right file?)")
            raise FCDInputError(f"{table}: line {reader.line_num + 1}: {reason}") from None


def id_column(table: Path, columns: list[str]) -> str:
    """The column that names the subjects; FCDInputError naming the table when there is none."""
    column = next((c for c in ID_COLUMNS if c in columns), None)
    if column is None:
        raise FCDInputError(f"{table}: missing column 'subject' (has: {', '.join(columns) or 'none'})")
    return column


def subject_rows(table: Path, rows: Iterable[dict[str, str]], column: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``(subject id, row)`` of each non-blank row; FCDInputError naming the line for an empty id."""
    for number, row in enumerate(rows, start=2):
        if not any(row.values()):
            continue
        subject_id = row.get(column, "")
        if not subject_id:
            raise FCDInputError(f"{table}: line {number} has an empty {column}")
        yield subject_id, row
