"""Cohort detection: one loaded model over many subjects, one output folder each, a summary table.

The subjects come from :func:`~FCDDetectLib.cohort.discovery.discover_subjects` (a BIDS
root, a CSV/TSV manifest or a folder of images); the summary rows,
``summary.csv`` and the resume check from :mod:`FCDDetectLib.cohort.summary`.

:func:`run_cohort` loads the bundle once and runs :func:`process_subject` over the
subjects. ``workers > 1`` reads the next subjects' images and writes the finished ones in
threads while the network runs (readers and gzip release the GIL). Each subject's folder
is written by :func:`~FCDDetectLib.detection.detect.write_detection`, the same files as a single
``fcd detect``; a subject whose folder already holds a ``result.json`` of the same model
and method is skipped (resume). A subject's bad input becomes its summary row's ``error``
and the run goes on. ``summary.csv`` is rewritten atomically after every subject.

Other executors (the Slicer batch, Ray) call :func:`process_subject` on their shard and
:func:`write_summary` on the rows they gather.

Example:
    >>> from FCDDetectLib.cohort.discovery import discover_subjects
    >>> from FCDDetectLib.cohort.runner import run_cohort
    >>> subjects = discover_subjects("ds004199/", modalities=["flair"])  # doctest: +SKIP
    >>> rows = run_cohort("model.fcdbundle", subjects, "results/", workers=2)  # doctest: +SKIP
    >>> rows[0]["subject"], rows[0]["status"], rows[0]["probability"]  # doctest: +SKIP
    ('sub-00001', 'done', 0.91)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from FCDDetectLib.cohort.discovery import CohortSubject
from FCDDetectLib.cohort.summary import (
    SUMMARY_NAME,
    finished_result,
    summary_row,
    write_summary,
)
from FCDDetectLib.detection.inputs import DetectionInputs
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import load_image, load_mask

# ---------------------------------------------------------------- one subject


@dataclass
class LoadedSubject:
    """A subject's images read into memory (or the error that stopped reading them)."""

    subject: CohortSubject
    inputs: DetectionInputs | None = None
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
    inputs = DetectionInputs(images, [str(p) for p in subject.images], roi=roi, brain_mask=mask,
                             roi_name=str(subject.roi) if subject.roi else "ROI",
                             brain_mask_name=str(subject.brain_mask) if subject.brain_mask else "brain mask")
    return LoadedSubject(subject, inputs, started=started)


def detect_loaded(bundle: Any, loaded: LoadedSubject, options: DetectOptions):
    """Run :func:`~FCDDetectLib.detection.detect.detect` (or, for a fold ensemble, its ensemble
    detection) on a loaded subject; the result names its files."""
    from FCDDetectLib.detection.ensemble_detect import detect_any

    return detect_any(bundle, loaded.inputs, options=options)


def write_subject(result: Any, loaded: LoadedSubject, out_dir: str | Path) -> dict[str, Any]:
    """Write one subject's folder with :func:`~FCDDetectLib.detection.detect.write_detection`; its summary row."""
    from FCDDetectLib.outputs.detection_files import write_detection

    out = Path(out_dir) / loaded.subject.subject_id
    write_detection(result, out)
    return summary_row(loaded.subject.subject_id, result.to_json(), out, "done",
                       seconds=time.perf_counter() - loaded.started)


def process_subject(
    bundle: Any,
    subject: CohortSubject,
    out_dir: str | Path,
    *,
    options: DetectOptions | None = None,
    resume: bool = True,
    **option_values: Any,
) -> dict[str, Any]:
    """Detect one subject into ``out_dir/<subject_id>/`` and return its summary row (the executor hook).

    ``bundle`` is a loaded :class:`~FCDDetectLib.networks.bundle.ModelBundle` or fold ensemble
    (:func:`FCDDetectLib.detection.ensemble_detect.load_models`; load it once per worker);
    ``options`` (keyword values replace its fields) are the detection's.
    Bad input gives a row with ``status`` ``error`` and the one-line message; nothing is raised.

    Example:
        >>> bundle = load_bundle("model.fcdbundle")  # doctest: +SKIP
        >>> rows = [process_subject(bundle, s, "results/") for s in my_shard]  # doctest: +SKIP
        >>> write_summary(rows, "results/summary.csv")  # doctest: +SKIP
    """
    options = (options or DetectOptions()).replace(**option_values).for_bundle(bundle.metadata)
    out = Path(out_dir) / subject.subject_id
    if resume:
        done = finished_result(out, bundle.metadata.name, options.method)
        if done is not None:
            return summary_row(subject.subject_id, done, out, "resumed")
    loaded = load_subject(subject, bundle.metadata.modalities)
    if loaded.error:
        return summary_row(subject.subject_id, None, None, "error", loaded.error)
    try:
        result = detect_loaded(bundle, loaded, options)
        return write_subject(result, loaded, out_dir)
    except FCDInputError as error:
        return summary_row(subject.subject_id, None, None, "error", str(error))


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
    options: DetectOptions | None = None,
    workers: int = 1,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    **option_values: Any,
) -> list[dict[str, Any]]:
    """Detect every subject with one loaded model; returns the summary rows (also in ``out_dir/summary.csv``).

    ``model`` is a bundle path or a loaded ``ModelBundle``, or a fold ensemble (a run folder, a
    list of bundle paths, or a loaded ensemble): every member is loaded once. ``workers`` threads read ahead and
    write behind while the network runs in the calling thread (1: one subject after the
    other). ``progress(done, total, row)`` is called after each subject; ``should_stop()``
    is asked before each one, and a stop leaves the rest ``pending`` (run again to resume).
    ``options`` (a :class:`~FCDDetectLib.detection.options.DetectOptions`; keyword values such as
    ``method="layercam"`` replace its fields) go to every subject's detection unchanged.

    Example:
        >>> rows = run_cohort("model.fcdbundle", subjects, "out/", workers=2,
        ...                   progress=lambda done, total, row: print(done, total, row["status"]))  # doctest: +SKIP
    """
    from FCDDetectLib.detection.detect import resolve_device
    from FCDDetectLib.detection.ensemble_detect import load_models

    options = (options or DetectOptions()).replace(**option_values)
    if workers < 1:
        raise FCDInputError(f"workers {workers}: expected 1 or more")
    out = check_out_dir(out_dir)
    device = resolve_device(options.device)
    bundle = load_models(model, device)
    options = options.for_bundle(bundle.metadata).replace(device=device)
    method = options.method
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
            return detect_loaded(bundle, loaded, options)
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
