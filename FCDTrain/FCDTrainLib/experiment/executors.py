"""Where the folds of an experiment run: in this process, or as tasks on a Ray cluster.

An experiment is a list of :class:`FoldTask` (a run folder, its configuration and a
fold). Every executor trains a task the same way, with :func:`run_fold_task`: it calls
``train_run(config, run_dir, only_fold=K)``, which resumes from ``fold-K/checkpoint.pt``
when the fold was interrupted, and writes exactly the files the local executor writes.

- :class:`LocalExecutor` (default): the tasks one after another in this process.
- :class:`RayExecutor`: one Ray task per fold with ``--gpus-per-run`` GPUs and
  ``--cpus-per-run`` CPUs, retried ``max_retries`` times when its worker or node dies
  (a retried fold resumes from its last checkpoint). The run folders must be on a file
  system every node sees; :meth:`RayExecutor.check_writable` proves it before submitting.

Both have the same interface (``open``, ``slots``, ``check_writable``, ``run``, ``close``),
so :func:`FCDTrainLib.experiment.paper_comparison.run_experiment` does not know which one it drives. Ray is
imported only here, and only when a :class:`RayExecutor` is opened.

Example:
    >>> executor = RayExecutor(address="head-node:6379", gpus_per_run=1, cpus_per_run=4)  # doctest: +SKIP
    >>> run_experiment(base, "exp/", depths=[18, 34], executor=executor)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from FCDDetectLib.errors import FCDInputError

EXECUTORS = ("local", "ray")
FOLD_RESULT_KEYS = ("accuracy", "roc_auc", "heat_score", "best_epoch", "epochs_run")


@dataclass(frozen=True)
class FoldTask:
    """One fold of one run: plain data, so that it crosses process and node boundaries.

    ``config`` is ``RunConfig.to_dict()``; ``threads`` (torch CPU threads while training,
    None: torch's default) comes from ``--cpus-per-run``.
    """

    run: str
    run_dir: str
    config: dict[str, Any]
    fold: int
    threads: int | None = None

    def label(self) -> str:
        return f"{self.run} fold {self.fold}"

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "fold": self.fold}


def run_fold_task(task: FoldTask) -> dict[str, Any]:
    """Train (or resume) one fold into its run folder; returns its test metrics and seconds.

    Example:
        >>> run_fold_task(FoldTask("resnet18-none-flair", "exp/runs/resnet18-none-flair", config, 0))  # doctest: +SKIP
        {'accuracy': 0.75, 'roc_auc': 0.81, 'heat_score': 1.9, 'best_epoch': 12, 'epochs_run': 22, 'seconds': 5210.3}
    """
    import torch

    from FCDTrainLib.experiment.train_run import train_run
    from FCDTrainLib.run_folder.run_config import RunConfig

    started = time.perf_counter()
    previous = torch.get_num_threads()
    if task.threads:
        torch.set_num_threads(int(task.threads))
    try:
        summary = train_run(RunConfig.from_dict(task.config), task.run_dir, only_fold=task.fold, progress=False)
    finally:
        torch.set_num_threads(previous)
    metrics = next((f for f in summary.get("folds", []) if f.get("fold") == task.fold), {})
    return {**{k: metrics.get(k) for k in FOLD_RESULT_KEYS}, "seconds": round(time.perf_counter() - started, 3)}


def _probe_write(folder: Path) -> None:
    """FCDInputError unless this process can create a file in ``folder``."""
    probe = folder / f".fcd-write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise FCDInputError(f"{folder}: cannot write the run folder ({error.strerror or error})") from error


OnDone = Callable[[FoldTask, dict[str, Any]], None]


class Executor(Protocol):
    """What :func:`FCDTrainLib.experiment.paper_comparison.run_experiment` needs from an executor."""

    name: str
    threads: int | None

    def open(self) -> None:
        """Connect and check resources (FCDInputError for bad options), before any task."""

    def slots(self) -> int:
        """How many tasks run at once (for the ETA)."""

    def check_writable(self, folders: Sequence[Path]) -> None:
        """FCDInputError unless every worker can write into ``folders``."""

    def run(self, tasks: Sequence[FoldTask], on_done: OnDone) -> None:
        """Run every task; ``on_done(task, result)`` in this process as each one finishes."""

    def close(self) -> None:
        """Release what ``open`` took."""


class LocalExecutor:
    """Runs the tasks one after another in this process (the default executor)."""

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def open(self) -> None:
        """Nothing to connect to."""

    def slots(self) -> int:
        return 1

    def check_writable(self, folders: Sequence[Path]) -> None:
        for folder in folders:
            _probe_write(Path(folder))

    def run(self, tasks: Sequence[FoldTask], on_done: OnDone) -> None:
        for task in tasks:
            on_done(task, run_fold_task(task))

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """One Ray task per fold on the cluster at ``address`` (None: a local Ray).

    ``gpus_per_run`` / ``cpus_per_run`` are each task's resources (``cpus_per_run`` also
    sets torch's CPU threads); ``max_retries`` is Ray's retry count for a task whose
    worker process or node dies (an exception raised by the training itself is not
    retried: it would fail again). ``num_cpus`` limits a local cluster started here.
    """

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0,
                 max_retries: int = 3, num_cpus: int | None = None) -> None:
        if gpus_per_run < 0:
            raise FCDInputError(f"--gpus-per-run {gpus_per_run:g}: must be zero or more")
        if cpus_per_run <= 0:
            raise FCDInputError(f"--cpus-per-run {cpus_per_run:g}: must be more than zero")
        if max_retries < 0:
            raise FCDInputError(f"--max-retries {max_retries}: must be zero or more")
        self.address = address
        self.gpus_per_run = float(gpus_per_run)
        self.cpus_per_run = float(cpus_per_run)
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.threads = max(1, math.floor(self.cpus_per_run))
        self._session: Any = None

    def open(self) -> None:
        """Connect and check that some node can hold one task; FCDInputError otherwise."""
        from FCDDetectLib.cohort.ray_connection import check_resources, connect

        self._session = connect(self.address, num_cpus=self.num_cpus)
        try:
            check_resources(gpus=self.gpus_per_run, cpus=self.cpus_per_run)
        except BaseException:
            self.close()
            raise

    def slots(self) -> int:
        from FCDDetectLib.cohort.ray_connection import task_slots

        return task_slots(gpus=self.gpus_per_run, cpus=self.cpus_per_run)

    def check_writable(self, folders: Sequence[Path]) -> None:
        """This process and every node must see the folders and write into them."""
        from FCDDetectLib.cohort.ray_connection import check_shared_folders

        for folder in folders:
            _probe_write(Path(folder))
        check_shared_folders(list(folders))

    def run(self, tasks: Sequence[FoldTask], on_done: OnDone) -> None:
        """Submit every task, call ``on_done`` as each finishes; cancel the rest on a failure."""
        import ray

        remote = ray.remote(run_fold_task)
        refs = {}
        for task in tasks:
            ref = remote.options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                                 max_retries=self.max_retries, retry_exceptions=False,
                                 name=f"fcd-fold {task.label()}").remote(task)
            refs[ref] = task
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    on_done(refs[ref], self._result(ray, ref, refs[ref]))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _result(self, ray: Any, ref: Any, task: FoldTask) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, FCDInputError):
                raise FCDInputError(str(cause)) from error
            raise RuntimeError(f"{task.label()}: {type(cause or error).__name__}: {cause or error}") from error
        except ray.exceptions.RayError as error:  # worker or node lost more often than max_retries
            raise RuntimeError(
                f"{task.label()}: failed after {self.max_retries} retries ({type(error).__name__}); "
                "run the same command again to resume from the last checkpoint") from error

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def make_executor(name: str, address: str | None = None, gpus_per_run: float | None = None,
                  cpus_per_run: float | None = None, max_retries: int = 3,
                  device: str = "auto") -> LocalExecutor | RayExecutor:
    """The executor the CLI options ask for (FCDInputError for options that do not fit)."""
    if name == "local":
        if address:
            raise FCDInputError("--ray-address: only with --executor ray")
        if gpus_per_run:
            raise FCDInputError("--gpus-per-run: only with --executor ray (the local executor uses --device)")
        return LocalExecutor(threads=max(1, math.floor(cpus_per_run)) if cpus_per_run else None)
    if name == "ray":
        if device == "cuda" and not gpus_per_run:
            raise FCDInputError("--device cuda with --executor ray needs --gpus-per-run 1 (or more): "
                                "Ray shows no GPU to a task that reserves none")
        return RayExecutor(address=address, gpus_per_run=gpus_per_run or 0.0,
                           cpus_per_run=cpus_per_run or 1.0, max_retries=max_retries)
    raise FCDInputError(f"--executor {name}: expected one of {', '.join(EXECUTORS)}")


def task_dicts(tasks: Sequence[FoldTask]) -> list[dict[str, Any]]:
    """The tasks as JSON-ready dicts (for the experiment's events)."""
    return [task.to_dict() for task in tasks]

