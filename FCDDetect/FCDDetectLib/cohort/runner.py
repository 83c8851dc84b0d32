"""Cohort detection: one loaded model over many subjects, one output folder each, a summary table.

The subjects come from :func:`~FCDDetectLib.cohort.discovery.discover_subjects` (a BIDS
root, a CSV/TSV manifest or a folder of images); the summary rows,
``summary.csv`` and the resume check from :mod:`FCDDetectLib.cohort.summary`.

:func:`run_cohort` loads the bundle once and runs :func:`process_subject` over the
subjects. ``workers > 1`` reads the next subjects' images and writes the finished ones in
threads while the network runs (readers and gzip release the GIL). Each subject's folder
is written by :func:`~FCDDetectLib.outputs.detection_files.write_detection`, the same files as a
single ``fcd detect``; a subject whose folder already holds a ``result.json`` made from the
same bundle content, the same input files and the same options
(:func:`~FCDDetectLib.cohort.summary.result_identity`) is skipped (resume); anything else is
recomputed. The inputs' checksums are computed once per subject, for that check and for
the new ``result.json``. A subject's bad input (a discovery problem, an unreadable file)
becomes its summary row's ``error`` and the run goes on; a problem of the run itself (a full
disk) stops it. ``summary.csv`` is rewritten in batches
(:class:`~FCDDetectLib.cohort.summary.SummaryWriter`: at most about 0.5% of the run) and at the end,
also when the run is interrupted.

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

import contextlib
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
    SummaryWriter,
    finished_result,
    result_identity,
    summary_row,
)
from FCDDetectLib.detection.inputs import DetectionInputs, input_checksums
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError, os_error_line
from FCDDetectLib.io.image_io import load_image, load_mask
from FCDDetectLib.io.output_folder import check_output_folder

# ---------------------------------------------------------------- one subject


@dataclass
class LoadedSubject:
    """A subject's images read into memory (or the error that stopped reading them)."""

    subject: CohortSubject
    inputs: DetectionInputs | None = None
    error: str | None = None
    started: float = 0.0


def subject_checksums(subject: CohortSubject) -> dict[str, Any] | None:
    """The subject's :func:`~FCDDetectLib.detection.inputs.input_checksums` (None: a discovery error or an unreadable file)."""
    if subject.error:
        return None
    try:
        return input_checksums(subject.images, subject.roi, subject.brain_mask)
    except OSError:  # missing or unreadable: load_subject reports it as the subject's error
        return None


def resumable(bundle: Any, subject: CohortSubject, out: Path, options: DetectOptions,
              checksums: dict[str, Any] | None) -> dict[str, Any] | None:
    """The subject's finished ``result.json`` in ``out`` when bundle, inputs and options all match, else None."""
    if checksums is None:
        return None
    identity = result_identity(getattr(bundle, "content_sha256", ""), checksums, options.identity())
    return finished_result(out, identity)


def load_subject(subject: CohortSubject, modalities: Sequence[str],
                 checksums: dict[str, Any] | None = None) -> LoadedSubject:
    """Read a subject's images, ROI and brain mask; an FCDInputError (or an OSError) becomes ``error``.

    ``checksums`` are the subject's input checksums when the caller computed them already.
    """
    started = time.perf_counter()
    try:
        if subject.error:
            raise FCDInputError(subject.error)
        images = [load_image(path, name=modality.upper(), series=subject.series)
                  for modality, path in zip(modalities, subject.images, strict=True)]
        roi = load_mask(subject.roi, name="ROI", segment=subject.roi_segment) if subject.roi else None
        mask = load_mask(subject.brain_mask, name="brain mask") if subject.brain_mask else None
        if checksums is None:
            checksums = input_checksums(subject.images, subject.roi, subject.brain_mask)
    except FCDInputError as error:
        return LoadedSubject(subject, error=str(error), started=started)
    except OSError as error:
        return LoadedSubject(subject, error=os_error_line(error), started=started)
    inputs = DetectionInputs(images, [str(p) for p in subject.images], roi=roi, brain_mask=mask,
                             roi_name=str(subject.roi) if subject.roi else "ROI",
                             brain_mask_name=str(subject.brain_mask) if subject.brain_mask else "brain mask",
                             checksums=checksums)
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
    if subject.error:  # never a path of its own: the id may be anything
        return summary_row(subject.subject_id, None, None, "error", subject.error)
    out = Path(out_dir) / subject.subject_id
    checksums = subject_checksums(subject)
    if resume:
        done = resumable(bundle, subject, out, options, checksums)
        if done is not None:
            return summary_row(subject.subject_id, done, out, "resumed")
    loaded = load_subject(subject, bundle.metadata.modalities, checksums)
    if loaded.error:
        return summary_row(subject.subject_id, None, None, "error", loaded.error)
    try:
        result = detect_loaded(bundle, loaded, options)
        return write_subject(result, loaded, out_dir)
    except FCDInputError as error:
        return summary_row(subject.subject_id, None, None, "error", str(error))


# ---------------------------------------------------------------- the run


def check_out_dir(out_dir: str | Path) -> Path:
    """The cohort output folder, created; FCDInputError when it cannot be (a file, read-only, a link loop, a long name).

    Checked like every output folder (:func:`~FCDDetectLib.io.output_folder.check_output_folder`),
    ``summary.csv`` included, before anything is created.
    """
    out = check_output_folder(out_dir, (SUMMARY_NAME,))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FCDInputError(f"{out}: cannot create the output folder ({error.strerror})") from None
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
    modalities = list(bundle.metadata.modalities)
    summary = SummaryWriter(out / SUMMARY_NAME,
                            [summary_row(s.subject_id, None, None, "pending") for s in subjects])
    done = 0

    def record(row: dict[str, Any]) -> None:
        nonlocal done
        summary.update(row)
        done += 1
        if progress is not None:
            progress(done, len(subjects), row)

    def stopped() -> bool:
        return bool(should_stop and should_stop())

    try:
        todo: list[tuple[CohortSubject, dict[str, Any] | None]] = []
        for subject in subjects:
            if subject.error:  # a discovery problem: reported, never a path of its own
                record(summary_row(subject.subject_id, None, None, "error", subject.error))
                continue
            checksums = subject_checksums(subject)
            finished = resumable(bundle, subject, out / subject.subject_id, options, checksums) if resume else None
            if finished is not None:
                record(summary_row(subject.subject_id, finished, out / subject.subject_id, "resumed"))
            else:
                todo.append((subject, checksums))
        _run_subjects(bundle, todo, out, options, modalities, workers, record, stopped)
    except BaseException:
        with contextlib.suppress(OSError):  # also after Ctrl-C, SIGTERM or a full disk: the rows so far
            summary.flush()
        raise
    summary.flush()
    return summary.values()


def _run_subjects(bundle: Any, todo: list[tuple[CohortSubject, dict[str, Any] | None]], out: Path,
                  options: DetectOptions, modalities: list[str], workers: int,
                  record: Callable[[dict[str, Any]], None], stopped: Callable[[], bool]) -> None:
    """Detect and write ``todo``'s subjects, recording each row (the network in this thread)."""

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

    def write_or_error(result: Any, loaded: LoadedSubject) -> dict[str, Any]:
        try:
            return write_subject(result, loaded, out)
        except FCDInputError as error:  # e.g. a planted journal in that subject's folder
            return summary_row(loaded.subject.subject_id, None, None, "error", str(error))

    if workers == 1:
        for subject, checksums in todo:
            if stopped():
                break
            loaded = load_subject(subject, modalities, checksums)
            result = detect_one(loaded)
            record(error_row(loaded) if result is None else write_or_error(result, loaded))
        return

    with ThreadPoolExecutor(workers, thread_name_prefix="fcd-read") as readers, \
            ThreadPoolExecutor(max(1, workers // 2), thread_name_prefix="fcd-write") as writers:
        queue = iter(todo)
        reading: deque[Future] = deque()
        writing: deque[Future] = deque()

        def refill() -> None:
            while len(reading) < workers and not stopped():
                item = next(queue, None)
                if item is None:
                    return
                reading.append(readers.submit(load_subject, item[0], modalities, item[1]))

        def drain(block: bool) -> None:
            while writing and (block or writing[0].done()):
                record(writing.popleft().result())

        try:
            refill()
            while reading and not stopped():
                loaded = reading.popleft().result()
                refill()
                result = detect_one(loaded)
                if result is None:
                    record(error_row(loaded))
                else:
                    writing.append(writers.submit(write_or_error, result, loaded))
                drain(block=False)
        finally:
            for future in reading:
                future.cancel()
            drain(block=True)
