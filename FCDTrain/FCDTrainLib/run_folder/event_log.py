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

from FCDDetectLib.io.atomic_files import json_text, write_text_atomic

try:  # POSIX; on Windows only one process writes a run's log (the local executor)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


MAX_EVENT_BYTES = 1 << 20
"""Longest event line read (1 MiB): ours are under 4 kB (a ``fold_done`` with its metrics)."""

_INTEGERS = ("fold", "epoch", "max_epochs", "slots", "folds_skipped")
_NUMBERS = ("time", "seconds")


def _integer(value: Any) -> bool:
    return type(value) is int


def _well_formed(event: Any) -> bool:
    """Whether ``event`` has the shape the readers rely on (a run file is untrusted; others are skipped)."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return False
    if any(key in event and not _integer(event[key]) for key in _INTEGERS):
        return False
    if any(event.get(key) is not None and (isinstance(event[key], bool) or not isinstance(event[key], (int, float)))
           for key in _NUMBERS):
        return False
    if any(key in event and not (isinstance(event[key], list) and all(map(_integer, event[key])))
           for key in ("folds", "pending")):
        return False
    if "metrics" in event and not isinstance(event["metrics"], dict):
        return False
    tasks = event.get("tasks", [])
    return isinstance(tasks, list) and all(
        isinstance(t, dict) and isinstance(t.get("run"), str) and _integer(t.get("fold")) for t in tasks)


def _lines(handle: Any) -> Iterator[str]:
    """Complete lines of at most :data:`MAX_EVENT_BYTES`; a longer one is skipped, a last one without newline ends."""
    while True:
        line = handle.readline(MAX_EVENT_BYTES + 1)
        if not line.endswith("\n"):
            if len(line) <= MAX_EVENT_BYTES:
                return  # end of file, or a half-written last line
            while line and not line.endswith("\n"):  # an over-long line: skip to its end
                line = handle.readline(MAX_EVENT_BYTES + 1)
            continue
        yield line


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of ``path`` in order; a missing file gives ``[]``.

    A line that is not valid JSON (the tail of a write cut short by a kill), an over-long,
    too deeply nested or otherwise ill-formed event (wrong types of the fields the readers
    use) is skipped: the log is a run file, read as untrusted input.
    """
    path = Path(path)
    if not path.is_file():
        return []
    events = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in _lines(handle):
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if _well_formed(event):
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
        write_text_atomic(self.path, "".join(json_text(event, indent=None) + "\n" for event in events))

    def _repair(self) -> None:
        if not self.path.is_file():
            return
        with _locked(self.path):
            newlines, ends_with_newline, size = 0, True, 0
            with self.path.open("rb") as handle:  # in blocks: no line of the file is held whole
                for block in iter(lambda: handle.read(1 << 20), b""):
                    newlines += block.count(b"\n")
                    ends_with_newline = block.endswith(b"\n")
                    size += len(block)
            events = read_events(self.path)
            if size and (not ends_with_newline or newlines != len(events)):
                self._rewrite(events)  # drops a half-written last line and lines no reader could use

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event ``{"event": kind, "time": ..., **fields}`` and return it."""
        event = {"event": kind, "time": round(time.time(), 3), **fields}
        data = (json_text(event, indent=None) + "\n").encode("utf-8")
        with _locked(self.path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    written = 0
                    while written < len(data):
                        written += os.write(fd, data[written:])
                except BaseException:  # a full disk or an interrupt mid-line: take the part back
                    os.ftruncate(fd, size)
                    raise
                try:
                    os.fsync(fd)
                except OSError:  # the disk refused it: the line may not be stored, take it back
                    os.ftruncate(fd, size)
                    raise
                # A Ctrl-C or SIGTERM during the fsync leaves the line: it is whole, and a reader
                # may already have acted on it (the Slicer panel's Stop right after an epoch).
            finally:
                os.close(fd)
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
                    number = event.get("epoch", 0)
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
