"""The training event log: ``RUN/events.jsonl``, one JSON object per line.

A run writes ``start``, one ``epoch`` per finished (and checkpointed) epoch,
``fold_done`` per fold, ``warning``, ``error`` and ``done`` events. The Slicer module
(and anyone else) follows a run by reading the file: :func:`read_events` tolerates a
half-written last line, :func:`progress_from_events` turns the events into a fraction
done, the current fold and epoch, an ETA and the latest metrics.

Example:
    >>> import tempfile, pathlib
    >>> log = EventLog(pathlib.Path(tempfile.mkdtemp()) / "events.jsonl")
    >>> _ = log.emit("start", folds=[0, 1], max_epochs=2)
    >>> _ = log.emit("epoch", fold=0, epoch=1, train_loss=0.7, val_loss=0.6, seconds=3.0)
    >>> progress_from_events(read_events(log.path))["fraction"]
    0.25
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from FCDDetectLib.io.atomic_files import json_text

try:  # POSIX; on Windows only one process writes a run's log (the local executor)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of ``path`` in order; a missing file gives ``[]``.

    A line that is not valid JSON (the tail of a write cut short by a kill) is skipped.
    """
    path = Path(path)
    if not path.exists():
        return []
    events = []
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # half-written last line
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Several processes (the parallel folds of one run on a Ray cluster) append to one
    log, and a resumed fold rewrites it: every append and rewrite happens under this
    lock. A rewrite replaces the file (new inode), so the lock is taken again when the
    path no longer names the file that was locked. flock reaches NFS as a POSIX lock.
    """
    if fcntl is None:
        yield
        return
    while True:
        handle = path.open("a", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            handle.close()  # also releases the lock


class EventLog:
    """Append-only writer of ``events.jsonl`` that repairs the file when opened.

    Opening drops a half-written last line (left by a kill during a write). Each event is
    written with one ``write`` call, flushed and fsynced, so a reader sees whole lines;
    writers in several processes take turns (see :func:`_locked`).
    """

    def __init__(self, path: str | Path, echo: bool = False) -> None:
        self.path = Path(path)
        self.echo = echo
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _rewrite(self, events: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for event in events:
                handle.write(json_text(event, indent=None) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _repair(self) -> None:
        if not self.path.exists():
            return
        with _locked(self.path):
            raw = self.path.read_text(encoding="utf-8")
            events = read_events(self.path)
            if raw and (not raw.endswith("\n") or raw.count("\n") != len(events)):
                self._rewrite(events)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event ``{"event": kind, "time": ..., **fields}`` and return it."""
        event = {"event": kind, "time": round(time.time(), 3), **fields}
        line = json_text(event, indent=None) + "\n"
        with _locked(self.path), self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def drop_epochs_after(self, fold: int, epoch: int) -> int:
        """Remove ``epoch`` events of ``fold`` later than ``epoch`` (and their duplicates).

        Used on resume so that the log holds each epoch once. Returns the number removed.
        """
        with _locked(self.path):
            events = read_events(self.path)
            kept: list[dict[str, Any]] = []
            seen: set[int] = set()
            for event in events:
                if event.get("event") == "epoch" and event.get("fold") == fold:
                    number = int(event.get("epoch", 0))
                    if number > epoch or number in seen:
                        continue
                    seen.add(number)
                kept.append(event)
            if len(kept) != len(events):
                self._rewrite(kept)
        return len(events) - len(kept)

    def has_epoch(self, fold: int, epoch: int) -> bool:
        """Whether an ``epoch`` event for ``fold``/``epoch`` is in the log."""
        return any(
            e.get("event") == "epoch" and e.get("fold") == fold and e.get("epoch") == epoch
            for e in read_events(self.path)
        )


def progress_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise a run's events for a progress display.

    Returns ``status`` (``"not started"``, ``"running"``, ``"done"``, ``"error"``),
    ``fraction`` (0..1; an epoch counts ``1 / (folds * max_epochs)``, a finished fold
    counts whole, so early stopping makes the bar jump), ``fold``, ``epoch``,
    ``max_epochs``, ``folds_done``, ``folds_total``, ``eta_seconds`` (an upper bound:
    remaining epochs at the mean epoch time), ``last`` (the latest epoch event),
    ``message`` (the error message, if any) and ``fold_metrics`` (fold -> metrics).
    """
    status = "not started"
    folds: list[int] = []
    max_epochs = 1
    done_folds: dict[int, dict[str, Any]] = {}
    current: dict[int, int] = {}
    last_epoch: dict[str, Any] | None = None
    message = None
    epoch_seconds: list[float] = []
    partial_done = False
    for event in events:
        kind = event.get("event")
        if kind == "start":
            status = "running"
            # several starts: an experiment's folds run as separate `--fold K` tasks
            folds = sorted(set(folds) | {int(f) for f in event.get("folds", [])})
            max_epochs = max(1, int(event.get("max_epochs", max_epochs)))
            message = None
            partial_done = False
        elif kind == "epoch":
            status = "running"
            fold = int(event.get("fold", 0))
            current[fold] = max(current.get(fold, 0), int(event.get("epoch", 0)))
            last_epoch = event
            if event.get("seconds") is not None:
                epoch_seconds.append(float(event["seconds"]))
        elif kind == "fold_done":
            done_folds[int(event.get("fold", 0))] = dict(event.get("metrics", {}))
        elif kind == "done":
            # a `--fold K` task that did not complete the run ends only its own folds
            status = "done"
            partial_done = event.get("complete") is False
        elif kind == "error":
            status = "error"
            message = event.get("message")
    if status == "done" and partial_done and any(f not in done_folds for f in folds):
        status = "running"  # other folds of the run are still being trained elsewhere
    total = max(1, len(folds) or len(set(current) | set(done_folds)))
    units = 0.0
    for fold in set(folds) | set(current) | set(done_folds):
        units += 1.0 if fold in done_folds else min(1.0, current.get(fold, 0) / max_epochs)
    fraction = 1.0 if status == "done" else min(1.0, units / total)
    remaining_epochs = sum(
        max_epochs - current.get(fold, 0) for fold in (folds or current) if fold not in done_folds
    )
    eta = None
    if epoch_seconds and status == "running":
        eta = round(remaining_epochs * sum(epoch_seconds) / len(epoch_seconds), 1)
    elif status == "done":
        eta = 0.0
    return {
        "status": status,
        "fraction": round(fraction, 4),
        "fold": last_epoch.get("fold") if last_epoch else None,
        "epoch": last_epoch.get("epoch") if last_epoch else None,
        "max_epochs": max_epochs,
        "folds_done": len(done_folds),
        "folds_total": total,
        "eta_seconds": eta,
        "last": last_epoch,
        "message": message,
        "fold_metrics": done_folds,
    }
