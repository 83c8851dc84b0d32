"""Cohort detection: one loaded model over many subjects, one output folder each, a summary table.

Three kinds of cohort are discovered by :func:`discover_subjects`:

- a BIDS root (``participants.tsv`` or ``sub-*/anat`` folders, the OpenNeuro ds004199
  layout): ``sub-X/[ses-Y/]anat/sub-X_[...]_<FLAIR|T1w>.nii[.gz]``, the ROI
  ``..._FLAIR_roi.nii[.gz]`` when present (the one with the FLAIR's ``acq`` label first);
- a CSV manifest: a ``subject`` (or ``participant_id``) column, one column per modality
  (``flair``, ``t1`` or ``image_<name>``), optional ``roi``, ``brain_mask``, ``series``
  (DICOM series choice) and ``roi_segment`` (``.seg.nrrd`` segment); paths relative to the CSV;
- a folder of images (one-modality models): each image file (any format of
  :mod:`FCDDetectLib.readers`) or DICOM series sub-folder is one subject.

This discovery only needs the image paths, so the engine does it itself (the trainer's
dataset loaders also read labels, protocols and grids, and the engine never imports the trainer).

:func:`run_cohort` loads the bundle once and runs :func:`process_subject` over the
subjects. ``workers > 1`` reads the next subjects' images and writes the finished ones in
threads while the network runs (readers and gzip release the GIL). Each subject's folder
is written by :func:`~FCDDetectLib.detect.write_detection`, the same files as a single
``fcd detect``; a subject whose folder already holds a ``result.json`` of the same model
and method is skipped (resume). A subject's bad input becomes its summary row's ``error``
and the run goes on. ``summary.csv`` is rewritten atomically after every subject.

Other executors (the Slicer batch, Ray) call :func:`process_subject` on their shard and
:func:`write_summary` on the rows they gather.

Example:
    >>> from FCDDetectLib.cohort import discover_subjects, run_cohort
    >>> subjects = discover_subjects("ds004199/", modalities=["flair"])  # doctest: +SKIP
    >>> rows = run_cohort("model.fcdbundle", subjects, "results/", workers=2)  # doctest: +SKIP
    >>> rows[0]["subject"], rows[0]["status"], rows[0]["probability"]  # doctest: +SKIP
    ('sub-00001', 'done', 0.91)
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FCDInputError
from .files import csv_text, write_text_atomic
from .image_io import Image, load_image, load_mask
from .readers import is_image_file

SUMMARY_COLUMNS = (
    "subject", "status", "probability", "prediction", "heat_score", "top_cluster", "error", "output", "seconds",
)
"""Columns of ``summary.csv``. ``status``: ``done``, ``resumed`` (found finished), ``error``, ``pending`` (stopped before it)."""

SUMMARY_NAME = "summary.csv"
RESULT_NAME = "result.json"

_BIDS_SUFFIX = {"flair": "FLAIR", "t1": "T1w", "t2": "T2w"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CohortSubject:
    """One subject of a cohort: its images in the model's modality order, optional ROI and brain mask.

    ``error`` holds a discovery problem (e.g. no FLAIR found): the subject is reported, not run.
    """

    subject_id: str
    images: list[Path]
    roi: Path | None = None
    brain_mask: Path | None = None
    series: str | None = None
    roi_segment: str | None = None
    error: str | None = None
    info: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- discovery


def discover_subjects(data: str | Path, modalities: Sequence[str] = ("flair",)) -> list[CohortSubject]:
    """The subjects of a BIDS root, a CSV manifest or a folder of images, images in ``modalities`` order.

    Raises FCDInputError for a cohort that cannot be read at all (missing path, a manifest
    without the needed columns, duplicate subject ids, no subject); a single subject's
    problem is kept in its ``error``.

    Example:
        >>> subjects = discover_subjects("cohort.csv", modalities=["t1", "flair"])  # doctest: +SKIP
    """
    root = Path(data)
    modalities = [m.lower() for m in modalities]
    if not modalities:
        raise FCDInputError("cohort: no modality given")
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".tsv"):
            raise FCDInputError(f"{root}: expected a cohort folder (BIDS or images) or a .csv/.tsv manifest")
        subjects = _from_manifest(root, modalities)
    elif root.is_dir():
        if (root / "participants.tsv").is_file() or any(root.glob("sub-*/anat")) or any(root.glob("sub-*/ses-*/anat")):
            subjects = _from_bids(root, modalities)
        else:
            subjects = _from_folder(root, modalities)
    else:
        raise FCDInputError(f"{root}: cohort not found (no such folder or manifest file)")
    if not subjects:
        raise FCDInputError(f"{root}: no subject found")
    seen: set[str] = set()
    for subject in subjects:
        if not _SAFE_ID.match(subject.subject_id):
            raise FCDInputError(f"{root}: subject id {subject.subject_id!r} is not usable as a folder name")
        if subject.subject_id in seen:
            raise FCDInputError(f"{root}: subject {subject.subject_id} listed twice")
        seen.add(subject.subject_id)
    return subjects


def _bids_participants(root: Path) -> list[str]:
    table = root / "participants.tsv"
    listed: list[str] = []
    if table.is_file():
        with table.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                subject_id = (row.get("participant_id") or "").strip()
                if subject_id:
                    listed.append(subject_id)
    folders = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
    return listed + [f for f in folders if f not in listed]


def _bids_files(root: Path, subject_id: str) -> list[Path]:
    folder = root / subject_id
    files = sorted(folder.glob("anat/*.nii*")) + sorted(folder.glob("ses-*/anat/*.nii*"))
    return [f for f in files if f.name.startswith(subject_id + "_") and f.name.endswith((".nii", ".nii.gz"))]


def _stem(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img"):
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


def _acq(path: Path) -> str | None:
    match = re.search(r"_acq-([A-Za-z0-9]+)", path.name)
    return match[1] if match else None


def _from_bids(root: Path, modalities: list[str]) -> list[CohortSubject]:
    subjects = []
    for subject_id in _bids_participants(root):
        files = _bids_files(root, subject_id)
        images: list[Path] = []
        missing = []
        for modality in modalities:
            suffix = _BIDS_SUFFIX.get(modality, modality)
            found = [f for f in files if _stem(f).endswith("_" + suffix)]
            if found:
                images.append(found[0])
            else:
                missing.append(f"{subject_id}/anat/{subject_id}_*_{suffix}.nii.gz")
        error = f"{root / subject_id}: no {', '.join(missing)}" if missing else None
        roi = None
        rois = [f for f in files if _stem(f).endswith("_FLAIR_roi")]
        if rois and images:
            same_acq = [f for f in rois if _acq(f) == _acq(images[0])]
            roi = (same_acq or rois)[0]
        subjects.append(CohortSubject(subject_id, images, roi=roi, error=error))
    return subjects


def _from_manifest(table: Path, modalities: list[str]) -> list[CohortSubject]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    with table.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    id_column = next((c for c in ("subject", "participant_id") if c in columns), None)
    if id_column is None:
        raise FCDInputError(f"{table}: missing column 'subject' (has: {', '.join(columns) or 'none'})")
    image_columns = {}
    for modality in modalities:
        column = next((c for c in (modality, f"image_{modality}") if c in columns), None)
        if column is None:
            raise FCDInputError(
                f"{table}: missing column {modality!r} (or image_{modality}) for the model's modality {modality}"
            )
        image_columns[modality] = column

    def resolve(value: str) -> Path | None:
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else table.parent / path

    subjects = []
    for number, row in enumerate(rows, start=2):
        if not any(row.values()):
            continue
        subject_id = row.get(id_column, "")
        if not subject_id:
            raise FCDInputError(f"{table}: line {number} has an empty {id_column}")
        empty = [m for m, c in image_columns.items() if not row.get(c)]
        subjects.append(
            CohortSubject(
                subject_id,
                [p for p in (resolve(row.get(c, "")) for c in image_columns.values()) if p is not None],
                roi=resolve(row.get("roi", "")),
                brain_mask=resolve(row.get("brain_mask", "")),
                series=row.get("series") or None,
                roi_segment=row.get("roi_segment") or None,
                error=f"{table}: {subject_id}: empty {', '.join(empty)} cell" if empty else None,
            )
        )
    return subjects


def _from_folder(root: Path, modalities: list[str]) -> list[CohortSubject]:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    candidates = [p for p in entries if (p.is_file() and is_image_file(p) and not p.name.lower().endswith(".img")) or p.is_dir()]
    if not candidates:
        return []
    if len(modalities) != 1:
        raise FCDInputError(
            f"{root}: a folder of images gives one image per subject, the model takes {len(modalities)} "
            f"({', '.join(modalities)}); use a BIDS folder or a CSV manifest"
        )
    return [CohortSubject(_stem(p), [p]) for p in candidates]


# ---------------------------------------------------------------- one subject


@dataclass
class LoadedSubject:
    """A subject's images read into memory (or the error that stopped reading them)."""

    subject: CohortSubject
    images: list[Image] = field(default_factory=list)
    roi: Image | None = None
    brain_mask: Image | None = None
    error: str | None = None
    started: float = 0.0


def load_subject(subject: CohortSubject, modalities: Sequence[str]) -> LoadedSubject:
    """Read a subject's images, ROI and brain mask; an FCDInputError becomes ``error``."""
    started = time.perf_counter()
    try:
        if subject.error:
            raise FCDInputError(subject.error)
        images = [load_image(path, name=modality.upper(), series=subject.series)
                  for modality, path in zip(modalities, subject.images, strict=True)]
        roi = load_mask(subject.roi, name="ROI", segment=subject.roi_segment) if subject.roi else None
        mask = load_mask(subject.brain_mask, name="brain mask") if subject.brain_mask else None
    except FCDInputError as error:
        return LoadedSubject(subject, error=str(error), started=started)
    return LoadedSubject(subject, images, roi, mask, started=started)


def _top_cluster(result: dict[str, Any], out: Path | None = None) -> str | None:
    """The first (highest-ranked) cluster, compact JSON; None when there is none.

    Read defensively: from ``result["clusters"]`` (a list, or a ``{"clusters": [...]}`` set), else
    from a ``clusters.json`` beside ``result.json``.
    """
    clusters = result.get("clusters")
    if clusters is None and out is not None and (out / "clusters.json").is_file():
        try:
            clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            clusters = None
    if isinstance(clusters, dict):  # {"clusters": [...], ...} summaries
        clusters = clusters.get("clusters")
    if isinstance(clusters, list) and clusters:
        return json.dumps(clusters[0], separators=(",", ":"), sort_keys=True)
    return None


def summary_row(subject_id: str, result: dict[str, Any] | None, out: Path | None, status: str,
                error: str | None = None, seconds: float | None = None) -> dict[str, Any]:
    """One ``summary.csv`` row from a ``result.json`` dict (or an error)."""
    result = result or {}
    return {
        "subject": subject_id,
        "status": status,
        "probability": result.get("probability"),
        "prediction": result.get("prediction"),
        "heat_score": result.get("heat_score"),
        "top_cluster": _top_cluster(result, out) if status in ("done", "resumed") else None,
        "error": error,
        "output": str(out) if out is not None and status in ("done", "resumed") else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
    }


def finished_result(out: Path, model_name: str, method: str) -> dict[str, Any] | None:
    """The ``result.json`` of a finished subject folder made by the same model and method, else None."""
    try:
        result = json.loads((out / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("probability") is None:
        return None
    if result.get("model") != model_name or result.get("method") != method:
        return None
    return result


def detect_loaded(bundle: Any, loaded: LoadedSubject, **detect_options: Any):
    """Run :func:`~FCDDetectLib.detect.detect` on a loaded subject; the result names its files."""
    from .detect import detect

    result = detect(bundle, loaded.images, roi=loaded.roi, brain_mask=loaded.brain_mask, **detect_options)
    result.inputs = [str(p) for p in loaded.subject.images]
    return result


def write_subject(result: Any, loaded: LoadedSubject, out_dir: str | Path) -> dict[str, Any]:
    """Write one subject's folder with :func:`~FCDDetectLib.detect.write_detection`; its summary row."""
    from .detect import write_detection

    out = Path(out_dir) / loaded.subject.subject_id
    write_detection(result, out)
    return summary_row(loaded.subject.subject_id, result.to_json(), out, "done",
                       seconds=time.perf_counter() - loaded.started)


def process_subject(
    bundle: Any,
    subject: CohortSubject,
    out_dir: str | Path,
    *,
    method: str = "gradcam",
    resume: bool = True,
    **detect_options: Any,
) -> dict[str, Any]:
    """Detect one subject into ``out_dir/<subject_id>/`` and return its summary row (the executor hook).

    ``bundle`` is a loaded :class:`~FCDDetectLib.bundle.ModelBundle` (load it once per worker).
    Bad input gives a row with ``status`` ``error`` and the one-line message; nothing is raised.

    Example:
        >>> bundle = load_bundle("model.fcdbundle")  # doctest: +SKIP
        >>> rows = [process_subject(bundle, s, "results/") for s in my_shard]  # doctest: +SKIP
        >>> write_summary(rows, "results/summary.csv")  # doctest: +SKIP
    """
    out = Path(out_dir) / subject.subject_id
    if resume:
        done = finished_result(out, bundle.metadata.name, method)
        if done is not None:
            return summary_row(subject.subject_id, done, out, "resumed")
    loaded = load_subject(subject, bundle.metadata.modalities)
    if loaded.error:
        return summary_row(subject.subject_id, None, None, "error", loaded.error)
    try:
        result = detect_loaded(bundle, loaded, method=method, **detect_options)
        return write_subject(result, loaded, out_dir)
    except FCDInputError as error:
        return summary_row(subject.subject_id, None, None, "error", str(error))


def write_summary(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as ``summary.csv`` (:data:`SUMMARY_COLUMNS`), atomically."""
    write_text_atomic(path, csv_text(rows, SUMMARY_COLUMNS))
    return Path(path)


# ---------------------------------------------------------------- the run


def check_out_dir(out_dir: str | Path) -> Path:
    """The cohort output folder, created; FCDInputError when it is a file or not writable."""
    import os

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FCDInputError(f"{out}: exists and is not a folder (--out needs a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FCDInputError(f"{out}: cannot create the output folder ({error.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise FCDInputError(f"{out}: output folder is not writable")
    return out


def run_cohort(
    model: Any,
    subjects: Sequence[CohortSubject],
    out_dir: str | Path,
    *,
    method: str = "gradcam",
    workers: int = 1,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    **detect_options: Any,
) -> list[dict[str, Any]]:
    """Detect every subject with one loaded model; returns the summary rows (also in ``out_dir/summary.csv``).

    ``model`` is a bundle path or a loaded ``ModelBundle``. ``workers`` threads read ahead and
    write behind while the network runs in the calling thread (1: one subject after the
    other). ``progress(done, total, row)`` is called after each subject; ``should_stop()``
    is asked before each one, and a stop leaves the rest ``pending`` (run again to resume).
    ``detect_options`` go to :func:`~FCDDetectLib.detect.detect` (``device``, ``target_class``).

    Example:
        >>> rows = run_cohort("model.fcdbundle", subjects, "out/", workers=2,
        ...                   progress=lambda done, total, row: print(done, total, row["status"]))  # doctest: +SKIP
    """
    from .choices import EXPLANATION_METHODS
    from .detect import _load_model, resolve_device

    if method not in EXPLANATION_METHODS:
        raise FCDInputError(f"method {method!r}: expected one of {', '.join(EXPLANATION_METHODS)}")
    if workers < 1:
        raise FCDInputError(f"workers {workers}: expected 1 or more")
    out = check_out_dir(out_dir)
    device = resolve_device(detect_options.pop("device", "auto"))
    bundle = _load_model(model, device)
    modalities = list(bundle.metadata.modalities)
    summary = out / SUMMARY_NAME
    rows: dict[str, dict[str, Any]] = {
        s.subject_id: summary_row(s.subject_id, None, None, "pending") for s in subjects
    }
    done = 0

    def record(row: dict[str, Any]) -> None:
        nonlocal done
        rows[row["subject"]] = row
        done += 1
        write_summary(list(rows.values()), summary)
        if progress is not None:
            progress(done, len(subjects), row)

    todo: list[CohortSubject] = []
    for subject in subjects:
        finished = finished_result(out / subject.subject_id, bundle.metadata.name, method) if resume else None
        if finished is not None:
            record(summary_row(subject.subject_id, finished, out / subject.subject_id, "resumed"))
        else:
            todo.append(subject)
    write_summary(list(rows.values()), summary)

    def detect_one(loaded: LoadedSubject) -> Any:
        if loaded.error:
            return None
        try:
            return detect_loaded(bundle, loaded, method=method, device=device, **detect_options)
        except FCDInputError as error:
            loaded.error = str(error)
            return None

    def error_row(loaded: LoadedSubject) -> dict[str, Any]:
        return summary_row(loaded.subject.subject_id, None, None, "error", loaded.error)

    def stopped() -> bool:
        return bool(should_stop and should_stop())

    if workers == 1:
        for subject in todo:
            if stopped():
                break
            loaded = load_subject(subject, modalities)
            result = detect_one(loaded)
            record(error_row(loaded) if result is None else write_subject(result, loaded, out))
        return list(rows.values())

    with ThreadPoolExecutor(workers, thread_name_prefix="fcd-read") as readers, \
            ThreadPoolExecutor(max(1, workers // 2), thread_name_prefix="fcd-write") as writers:
        queue = iter(todo)
        reading: deque[Future] = deque()
        writing: deque[Future] = deque()

        def refill() -> None:
            while len(reading) < workers and not stopped():
                subject = next(queue, None)
                if subject is None:
                    return
                reading.append(readers.submit(load_subject, subject, modalities))

        def drain(block: bool) -> None:
            while writing and (block or writing[0].done()):
                record(writing.popleft().result())

        refill()
        while reading and not stopped():
            loaded = reading.popleft().result()
            refill()
            result = detect_one(loaded)
            if result is None:
                record(error_row(loaded))
            else:
                writing.append(writers.submit(write_subject, result, loaded, out))
            drain(block=False)
        for future in reading:
            future.cancel()
        drain(block=True)
    return list(rows.values())


def failed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of subjects whose detection failed."""
    return [row for row in rows if row["status"] == "error"]
