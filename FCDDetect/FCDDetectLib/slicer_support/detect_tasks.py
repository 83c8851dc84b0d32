"""FCD Detect's long work as task functions, run in a child process by :mod:`.background_task`.

Each ``*_task`` runs in the child (``folder`` is its private task folder, ``progress`` reports
to the panel); each ``start_*`` runs in Slicer's process and returns a started
:class:`~.background_task.BackgroundTask` at once, after the quick checks that make bad input
an error before any child starts. The MRML side (volume nodes in, nodes out) is
:mod:`FCDDetectLib.mrml.detection_job`.

- :func:`detect_task`: one detection (any method, SmoothGrad included) on arrays the parent
  converted from its nodes; returns the engine's ``DetectionResult``.
- :func:`report_task` / :func:`start_report`: the PDF report of a result.
- :func:`batch_task`: every subject of a folder, BIDS dataset or CSV manifest
  (:func:`FCDDetectLib.cohort.runner.run_cohort`, the code of ``fcd detect --data``); the
  fraction of subjects done is the progress; a cancelled batch resumes when run again.
- :func:`installation_task` / :func:`start_installation_check`: the "Check installation"
  report (it imports torch and loads every bundle).

Example:
    >>> task = start_installation_check(["/models"], slicer_version="5.10.0")  # doctest: +SKIP
    >>> print(task.wait().text())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.background_task import BackgroundTask, Launcher, read_array, read_pickle

DETECT_TASK = "FCDDetectLib.slicer_support.detect_tasks:detect_task"
REPORT_TASK = "FCDDetectLib.slicer_support.detect_tasks:report_task"
BATCH_TASK = "FCDDetectLib.slicer_support.detect_tasks:batch_task"
INSTALLATION_TASK = "FCDDetectLib.slicer_support.detect_tasks:installation_task"


def _image(folder: Path, file_name: str | None) -> Any:
    from FCDDetectLib.io.image_io import Image

    if not file_name:
        return None
    array, affine = read_array(folder, file_name)
    return Image(array, affine)


def write_image(task: BackgroundTask, name: str, image: Any) -> str | None:
    """Store an engine ``Image`` (or None) in the task folder; returns the argument value."""
    return None if image is None else task.write_array(name, image.array, image.affine)


def detect_task(folder: Path, progress: Any, model: str, options: dict[str, Any], images: list[str],
                roi: str | None = None, brain_mask: str | None = None) -> Any:
    """Child: ``detect`` on the stored images (the model's modality order); the ``DetectionResult``."""
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.detection.options import DetectOptions

    detect_options = DetectOptions.from_dict(options)
    method = detect_options.method or "the model's method"
    progress(None, f"Loading the model and running {method}...")
    result = detect(model, [_image(folder, name) for name in images], roi=_image(folder, roi),
                    brain_mask=_image(folder, brain_mask), options=detect_options)
    progress(1.0, f"Done in {result.seconds:.1f} s")
    return result


def report_task(folder: Path, progress: Any, result: str, images: list[str], out_dir: str,
                roi: str | None = None) -> str:
    """Child: the PDF report (and PNG pages) of a stored result; returns the PDF's path."""
    from FCDDetectLib.outputs.report_set import write_report_set

    progress(None, "Writing the report...")
    return str(write_report_set(read_pickle(folder, result), [_image(folder, name) for name in images], out_dir,
                                roi=_image(folder, roi)))


def start_report(result: Any, images: Sequence[Any], out_dir: str | Path, roi: Any = None, *,
                 launcher: Launcher | None = None, python: str | None = None) -> BackgroundTask:
    """Start writing the report of ``result`` (the engine's ``DetectionResult``; ``images``
    and ``roi`` are engine ``Image`` objects) into ``out_dir``."""
    out = Path(out_dir)
    if not str(out_dir) or not out.is_dir():
        raise FCDInputError(f"{out_dir}: no such folder for the report")
    task = BackgroundTask(REPORT_TASK, python=python, launcher=launcher, description="the report")
    task.arguments = {"result": task.write_pickle("result", result),
                      "images": [write_image(task, f"image-{i}", image) for i, image in enumerate(images)],
                      "roi": write_image(task, "roi", roi), "out_dir": str(out)}
    return task.start()


def batch_task(folder: Path, progress: Any, data: str, model: str, out_dir: str, options: dict[str, Any],
               modalities: list[str] | None = None, workers: int = 1) -> list[dict[str, Any]]:
    """Child: detect every subject of ``data`` into ``out_dir``; the summary rows."""
    from FCDDetectLib.cohort.discovery import discover_subjects
    from FCDDetectLib.cohort.runner import run_cohort
    from FCDDetectLib.detection.options import DetectOptions
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

    wanted = list(modalities) if modalities else list(read_bundle_metadata(model).modalities)
    progress(0.0, "Finding the subjects...")
    subjects = discover_subjects(data, modalities=wanted)  # FCDInputError when there is none

    def report(done: int, total: int, row: dict[str, Any]) -> None:
        progress(done / total if total else 1.0, f"{done} of {total} subjects ({row.get('subject')}: "
                                                 f"{row.get('status')})")

    return run_cohort(model, subjects, out_dir, options=DetectOptions.from_dict(options), workers=workers,
                      progress=report)


def installation_task(folder: Path, progress: Any, folders: list[str], slicer_version: str | None = None) -> Any:
    """Child: :func:`~.install_check.check_installation` (imports torch, loads each bundle)."""
    from FCDDetectLib.slicer_support.install_check import check_installation

    progress(None, "Checking torch, MONAI, captum and the models...")
    return check_installation(list(folders), slicer_version=slicer_version)


def start_installation_check(folders: Sequence[str], slicer_version: str | None = None, *,
                             launcher: Launcher | None = None, python: str | None = None) -> BackgroundTask:
    """Start the "Check installation" report of this Python and the given models folders."""
    return BackgroundTask(INSTALLATION_TASK, {"folders": [str(f) for f in folders], "slicer_version": slicer_version},
                          python=python, launcher=launcher, description="the installation check").start()
