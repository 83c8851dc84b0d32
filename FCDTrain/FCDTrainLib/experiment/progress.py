"""An experiment's progress from its files: folds done, each running fold's epoch, an ETA.

Read from ``OUT/events.jsonl`` (its ``start`` event lists the experiment's fold tasks and
how many run at once) and each run's ``OUT/runs/NAME/events.jsonl`` (epochs and finished
folds, written by whichever process or node trains the fold). Both executors write the
same files, so the terminal line, the ``progress`` events and the FCDTrain panel
(:func:`FCDTrainLib.slicer_support.train_launcher.run_progress`) show the same figures for both.

The ETA is the remaining epochs (an upper bound: early stopping ends folds sooner) at the
mean epoch time measured so far, divided by the number of folds that run at once.

Example:
    >>> progress = experiment_progress("exp/")  # doctest: +SKIP
    >>> format_progress(progress)  # doctest: +SKIP
    '3/12 folds done (31%); running resnet18-none-flair fold 3 epoch 4/20; ETA 0:12:40'
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, TextIO

from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.run_folder.event_log import read_events
from FCDTrainLib.run_folder.run_files import plain_name

EVENTS_NAME = "events.jsonl"


def _experiment_start(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    starts = [e for e in events if e.get("event") == "start" and "tasks" in e]
    return starts[-1] if starts else None


def experiment_progress(out: str | Path) -> dict[str, Any] | None:
    """Progress of the latest submission of the experiment in ``out``; None if it has none.

    Keys: ``status`` (running, done, error), ``fraction``, ``folds_done``, ``folds_total``,
    ``folds_skipped`` (finished before this submission), ``running`` (list of
    ``{"run", "fold", "epoch", "max_epochs"}``), ``eta_seconds``, ``executor``, ``message``.

    Raises:
        FCDInputError: the ``start`` event names a run that is not a plain folder name under
            ``OUT/runs`` (a planted ``../elsewhere``): nothing outside ``OUT`` is read.
    """
    out = Path(out)
    events = read_events(out / EVENTS_NAME)
    start = _experiment_start(events)
    if start is None:
        return None
    after = events[events.index(start):]
    status, message = "running", None
    for event in after:
        if event.get("event") == "done":
            status = "done"
        elif event.get("event") == "error":
            status, message = "error", event.get("message")
    tasks = [(t["run"], t["fold"]) for t in start.get("tasks", [])]
    stray = next((run for run, _ in tasks if not plain_name(run)), None)
    if stray is not None:
        raise FCDInputError(f"{out / EVENTS_NAME}: names the run {stray[:80]!r}, which is not a folder name under "
                            f"{out / 'runs'}; refused, nothing outside the experiment folder is read")
    max_epochs = max(1, int(start.get("max_epochs") or 1))
    run_events = {run: read_events(out / "runs" / run / EVENTS_NAME) for run in {r for r, _ in tasks}}
    done, epochs, seconds = set(), {}, []
    since = float(start.get("time", 0))
    for run, events_of_run in run_events.items():
        for event in events_of_run:
            kind, fold = event.get("event"), event.get("fold")
            if (run, fold) not in tasks:
                continue
            if kind == "fold_done":
                done.add((run, int(fold)))
            elif kind == "epoch":
                epochs[(run, int(fold))] = max(epochs.get((run, int(fold)), 0), int(event.get("epoch", 0)))
                if event.get("seconds") is not None and float(event.get("time", since)) >= since:
                    seconds.append(float(event["seconds"]))
    undone = [t for t in tasks if t not in done]
    units = len(tasks) - len(undone) + sum(min(1.0, epochs.get(t, 0) / max_epochs) for t in undone)
    running = [{"run": r, "fold": f, "epoch": epochs[(r, f)], "max_epochs": max_epochs}
               for r, f in undone if epochs.get((r, f))]
    eta = None
    if not undone:
        eta = 0.0
    elif seconds:
        at_once = max(1, min(int(start.get("slots") or 1), len(undone)))
        remaining = sum(max_epochs - epochs.get(t, 0) for t in undone)
        eta = round(remaining * (sum(seconds) / len(seconds)) / at_once, 1)
    return {
        "status": status,
        "fraction": 1.0 if not tasks or status == "done" else round(units / len(tasks), 4),
        "folds_done": len(tasks) - len(undone),
        "folds_total": len(tasks),
        "folds_skipped": int(start.get("folds_skipped", 0)),
        "running": running,
        "eta_seconds": eta,
        "executor": start.get("executor"),
        "message": message,
    }


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_progress(progress: dict[str, Any]) -> str:
    """One terminal line: folds done, the running folds' epochs, the ETA."""
    parts = [f"{progress['folds_done']}/{progress['folds_total']} folds done ({100 * progress['fraction']:.0f}%)"]
    running = progress.get("running") or []
    if running:
        shown = ", ".join(f"{r['run']} fold {r['fold']} epoch {r['epoch']}/{r['max_epochs']}" for r in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        parts.append(f"running {shown}{more}")
    if progress.get("eta_seconds") is not None:
        parts.append(f"ETA {_clock(progress['eta_seconds'])}")
    return "; ".join(parts)


class ProgressPrinter:
    """A background thread printing :func:`format_progress` whenever it changes.

    Example:
        >>> with ProgressPrinter("exp/", stream=sys.stderr):  # doctest: +SKIP
        ...     executor.run(tasks, on_done)
    """

    def __init__(self, out: str | Path, stream: TextIO | None, interval: float = 2.0) -> None:
        self.out = Path(out)
        self.stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = ""

    def print_now(self) -> None:
        if self.stream is None:
            return
        try:
            progress = experiment_progress(self.out)
        except FCDInputError:  # a damaged log: the run itself reports its own errors
            return
        if progress is None:
            return
        line = format_progress(progress)
        if line != self._last:
            self._last = line
            print(f"progress: {line}", file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.print_now()

    def __enter__(self) -> ProgressPrinter:
        if self.stream is not None:
            self._thread = threading.Thread(target=self._loop, name="fcd-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
