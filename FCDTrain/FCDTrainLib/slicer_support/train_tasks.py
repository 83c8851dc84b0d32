"""FCD Train's long work besides training, as task functions run in a child process.

The dataset audit (reads every image header) and the MedicalNet requests (the file's size, a
HEAD request with a 30 s timeout, and the download itself) never run in Slicer's GUI thread:
each ``start_*`` returns a started
:class:`~FCDDetectLib.slicer_support.background_task.BackgroundTask` at once, after the quick
checks; the panel follows it (progress, Cancel) and reads its result on the main thread. A
cancelled download stops the child with SIGTERM, whose ``finally`` blocks remove the temporary
file: nothing is written.

Example:
    >>> task = start_remote_size("https://huggingface.co/.../resnet_18.pth")  # doctest: +SKIP
    >>> task.wait()  # bytes, or None when the server does not say  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.background_task import BackgroundTask, Launcher

AUDIT_TASK = "FCDTrainLib.slicer_support.train_tasks:audit_task"
REMOTE_SIZE_TASK = "FCDTrainLib.slicer_support.train_tasks:remote_size_task"
DOWNLOAD_TASK = "FCDTrainLib.slicer_support.train_tasks:download_task"


def audit_text(dataset: Any, audit: Any) -> str:
    """The audit as the panel shows it: subjects, the table, the loader's warnings."""
    lines = [f"{len(dataset.subjects)} subjects in {dataset.root}", audit.format_table()]
    return "\n".join(lines + [f"WARNING: {w}" for w in dataset.warnings])


def audit_task(folder: Path, progress: Any, data: str) -> str:
    """Child: load the dataset (every header) and audit it; the text for the panel."""
    from FCDTrainLib.data.audit import audit_dataset
    from FCDTrainLib.data.dataset_loader import load_dataset

    progress(None, "Reading the dataset...")
    dataset = load_dataset(data)
    progress(None, "Auditing...")
    return audit_text(dataset, audit_dataset(dataset))


def start_audit(data: str | Path, *, launcher: Launcher | None = None, python: str | None = None) -> BackgroundTask:
    """Start the audit of ``data`` (BIDS folder or CSV manifest)."""
    if not str(data) or not Path(data).exists():
        raise FCDInputError(f"dataset {data}: no such folder or file")
    return BackgroundTask(AUDIT_TASK, {"data": str(data)}, python=python, launcher=launcher,
                          description="Dataset audit").start()


def remote_size_task(folder: Path, progress: Any, url: str) -> int | None:
    """Child: the size the server announces for ``url`` (HEAD request)."""
    from FCDTrainLib.training.medicalnet_weights import remote_size

    progress(None, "Asking the server for the file size...")
    return remote_size(url)


def start_remote_size(url: str, *, launcher: Launcher | None = None, python: str | None = None) -> BackgroundTask:
    """Start asking the size of ``url``."""
    return BackgroundTask(REMOTE_SIZE_TASK, {"url": str(url)}, python=python, launcher=launcher,
                          description="File size").start()


def download_task(folder: Path, progress: Any, url: str, cache_dir: str, name: str) -> str:
    """Child: download ``url`` into ``cache_dir/name`` atomically; the file's path."""
    from FCDDetectLib.io.byte_sizes import human_size

    from FCDTrainLib.training.medicalnet_weights import download

    def report(done: int, total: int | None) -> None:
        progress(done / total if total else None, f"{human_size(done)} of {human_size(total)}")

    return str(download(url, cache_dir, name, progress=report))


def start_download(url: str, cache_dir: str | Path, name: str, *, launcher: Launcher | None = None,
                   python: str | None = None) -> BackgroundTask:
    """Start downloading ``url`` into ``cache_dir/name`` (the user has confirmed)."""
    if not str(cache_dir):
        raise FCDInputError("no weights cache folder chosen")
    return BackgroundTask(DOWNLOAD_TASK, {"url": str(url), "cache_dir": str(cache_dir), "name": str(name)},
                          python=python, launcher=launcher, description=f"Download of {name}").start()
