"""Cohort detection on a Ray cluster (``fcd detect --data ... --executor ray``).

Each Ray worker is an actor that loads the model once and then detects its shard of the
subjects (every ``workers``-th subject), one call per subject, with
:func:`FCDDetectLib.cohort.runner.process_subject`: the same per-subject files as the local
``run_cohort`` and the same ``summary.csv`` rows (only ``seconds`` differs), written by
the driver after every subject. Finished subjects are skipped (resume); a worker whose
process or node dies is restarted and its pending subjects retried (``max_retries``).

The model bundle, the images and ``OUT`` must be at the same paths on every node (a
shared file system); :func:`FCDDetectLib.cohort.ray_connection.check_shared_folders` proves it for
``OUT`` before any subject runs. Ray is imported only inside these functions.

Example:
    >>> rows = run_cohort_ray("model.fcdbundle", subjects, "/shared/results", workers=8,
    ...                       gpus_per_worker=1, address="head-node:6379")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError


class CohortWorker:
    """A Ray actor's state: the model, loaded once on the worker's device."""

    def __init__(self, model: str | list[str], device: str, threads: int | None) -> None:
        import torch

        from FCDDetectLib.detection.detect import resolve_device
        from FCDDetectLib.detection.ensemble_detect import load_models

        if threads:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        self.bundle = load_models(model, self.device)  # one bundle, or every fold model of an ensemble

    def detect(self, subject: Any, out_dir: str, resume: bool, options: dict[str, Any]) -> dict[str, Any]:
        """One subject's summary row (errors become the row's ``error``, as locally); ``options``
        is :meth:`DetectOptions.to_dict`'s form."""
        from FCDDetectLib.cohort.runner import process_subject
        from FCDDetectLib.detection.options import DetectOptions

        return process_subject(self.bundle, subject, out_dir, resume=resume,
                               options=DetectOptions.from_dict(options).replace(device=self.device))


def run_cohort_ray(model: str | Path | list[str | Path], subjects: Sequence[Any], out_dir: str | Path, *,
                   options: DetectOptions | None = None,
                   workers: int | None = None, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0,
                   address: str | None = None, max_retries: int = 3,
                   progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                   resume: bool = True, **option_values: Any) -> list[dict[str, Any]]:
    """Detect every subject on Ray workers; returns the rows (also in ``out_dir/summary.csv``).

    ``options`` (keyword values replace its fields) go to every worker unchanged, as locally.
    ``model``: a bundle, or a fold ensemble (a run folder or a list of bundles): each worker loads
    every member once.

    ``workers``: how many actors (default: as many as the cluster holds at
    ``gpus_per_worker`` / ``cpus_per_worker``, at most one per subject). Every check
    (connection, resources, shared ``out_dir``) happens before a subject runs.
    """
    from FCDDetectLib.cohort.ray_connection import check_resources, check_shared_folders, connect, task_slots
    from FCDDetectLib.cohort.runner import check_out_dir
    from FCDDetectLib.cohort.summary import SUMMARY_NAME, SummaryWriter, summary_row

    options = (options or DetectOptions()).replace(**option_values)
    if workers is not None and workers < 1:
        raise FCDInputError(f"--workers {workers}: expected 1 or more")
    paths = [Path(m) for m in (model if isinstance(model, (list, tuple)) else [model])]
    for path in paths:
        if not path.exists():
            raise FCDInputError(f"{path}: model bundle not found")
    wire = [str(p.resolve()) for p in paths] if isinstance(model, (list, tuple)) else str(paths[0].resolve())
    session = connect(address)
    try:
        check_resources(gpus=gpus_per_worker, cpus=cpus_per_worker, what="worker")
        out = check_out_dir(out_dir)
        check_shared_folders([out])
        import ray

        count = min(len(subjects), workers or task_slots(gpus=gpus_per_worker, cpus=cpus_per_worker))
        actor = ray.remote(CohortWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=max_retries,
            max_task_retries=max_retries)
        threads = max(1, int(cpus_per_worker))
        pool = [actor.remote(wire, options.device, threads) for _ in range(max(1, count))]
        summary = SummaryWriter(out / SUMMARY_NAME,
                                [summary_row(s.subject_id, None, None, "pending") for s in subjects])
        summary.flush()
        refs = {pool[i % len(pool)].detect.remote(s, str(out), resume, options.to_dict()): s
                for i, s in enumerate(subjects)}
        pending, done = list(refs), 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    row = _row(ray, ref, refs[ref])
                    summary.update(row)
                    done += 1
                    if progress is not None:
                        progress(done, len(subjects), row)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        finally:
            summary.flush()
        return summary.values()
    finally:
        session.close()


def _row(ray: Any, ref: Any, subject: Any) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, FCDInputError):  # e.g. the bundle failed to load on the worker
            raise FCDInputError(str(cause)) from error
        raise RuntimeError(f"{subject.subject_id}: {type(cause).__name__}: {cause}") from error
    except ray.exceptions.RayError as error:
        raise RuntimeError(f"{subject.subject_id}: its worker was lost more often than --max-retries "
                           f"({type(error).__name__}); run the same command again to resume") from error
