"""Training from Slicer: ``fcd train`` / ``fcd experiment`` in a separate, stoppable process.

:class:`TrainSettings` holds what the FCDTrain panel asks for and builds the command
line; :class:`TrainLogic` starts it with the given Python (inside Slicer: Slicer's own
Python, ``PythonSlicer``), follows ``events.jsonl`` for the progress bar and the log,
stops the whole process tree, and on a later start lets the CLI resume by itself (it
continues from the last completed epoch). ``train(..., wait=True)`` blocks, for scripts.

No Qt and no ``slicer.app`` here: the Qt module polls :meth:`TrainLogic.poll` from a timer.

Example (Slicer Python console or any Python)::

    from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings
    settings = TrainSettings(data="/data/ds004199", out="/runs/r18-flair", depths=[18],
                             pretrained=["none"], modalities=["flair"], folds=5, max_epochs=50)
    progress = TrainLogic().train(settings, wait=True, on_progress=lambda p: print(p["fraction"]))
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.background_task import KILL_AFTER_SECONDS
from FCDDetectLib.slicer_support.tree_process import TreeProcess

from FCDTrainLib.cli.config_options import config_arguments
from FCDTrainLib.experiment.progress import experiment_progress
from FCDTrainLib.run_folder.event_log import progress_from_events, read_events
from FCDTrainLib.run_folder.layout import EVENTS_NAME
from FCDTrainLib.run_folder.run_config import PRESETS, check_overrides
from FCDTrainLib.run_folder.run_lock import describe, holder

# Runs `fcd` through its Python entry point, so no console script needs to be on PATH.
_CLI_BOOTSTRAP = "import sys; from FCDTrainLib.cli import main; sys.exit(main())"


@dataclass
class TrainSettings:
    """One training run (one depth, strategy and modality) or an experiment grid.

    With exactly one value in each of ``depths``, ``pretrained`` and ``modalities`` the
    command is ``fcd train`` (``weights`` is the MedicalNet file); with more it is
    ``fcd experiment`` (``weights_dir`` holds the MedicalNet files by their official names).
    ``geometry``, ``folds``, ``max_epochs``, ``device``, ``seed`` and ``config`` are overrides
    of :class:`~FCDTrainLib.run_folder.run_config.RunConfig` fields (None: RunConfig's default, which
    is not repeated here), over the named ``preset`` (``--preset``) when one is given;
    ``extra_args`` are appended unchanged.
    An experiment may run on a Ray cluster: ``executor="ray"`` with ``ray_address`` and
    ``gpus_per_run`` (see docs/cluster.md); its progress reads the same either way.
    """

    data: str | Path
    out: str | Path
    depths: list[int] = field(default_factory=lambda: [18])
    pretrained: list[str] = field(default_factory=lambda: ["none"])
    modalities: list[str] = field(default_factory=lambda: ["flair"])
    weights: str | Path | None = None
    weights_dir: str | Path | None = None
    fold: int | None = None
    geometry: str | None = None
    folds: int | None = None
    max_epochs: int | None = None
    device: str | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    executor: str = "local"
    ray_address: str | None = None
    gpus_per_run: float | None = None
    extra_args: list[str] = field(default_factory=list)

    def overrides(self) -> dict[str, Any]:
        """The RunConfig fields these settings set (the named ones, then ``config``)."""
        named = {"geometry": self.geometry, "folds": self.folds, "max_epochs": self.max_epochs,
                 "device": self.device, "seed": self.seed}
        return {**{k: v for k, v in named.items() if v is not None}, **self.config}

    @property
    def is_experiment(self) -> bool:
        return len(self.depths) * len(self.pretrained) * len(self.modalities) > 1

    @property
    def n_runs(self) -> int:
        return max(1, len(self.depths) * len(self.pretrained) * len(self.modalities))

    def check(self) -> None:
        """Refuse settings that cannot work, before a process is started."""
        if not str(self.data) or not Path(self.data).exists():
            raise FCDInputError(f"dataset {self.data}: no such folder or file")
        if not str(self.out):
            raise FCDInputError("no output folder chosen")
        if not (self.depths and self.pretrained and self.modalities):
            raise FCDInputError("choose at least one depth, one transfer strategy and one modality")
        if self.preset is not None and self.preset not in PRESETS:
            raise FCDInputError(f"preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        check_overrides(self.overrides())
        if self.executor != "local" and not self.is_experiment:
            raise FCDInputError(f"executor {self.executor}: only for an experiment (several grid points)")
        for path, what in ((self.weights, "weights file"), (self.weights_dir, "weights folder")):
            if path and not Path(path).exists():
                raise FCDInputError(f"{what} {path}: not found")

    def arguments(self) -> list[str]:
        """The ``fcd`` arguments (without the program)."""
        if self.is_experiment:
            args = ["experiment", "--data", str(self.data), "--out", str(self.out),
                    "--depths", *map(str, self.depths), "--pretrained", *self.pretrained,
                    "--modalities", *self.modalities]
            if self.weights_dir:
                args += ["--weights-dir", str(self.weights_dir)]
            if self.executor != "local":
                args += ["--executor", self.executor]
                args += ["--ray-address", self.ray_address] if self.ray_address else []
                args += ["--gpus-per-run", f"{self.gpus_per_run:g}"] if self.gpus_per_run else []
        else:
            args = ["train", "--data", str(self.data), "--out", str(self.out),
                    "--depth", str(self.depths[0]), "--pretrained", self.pretrained[0],
                    "--modality", self.modalities[0]]
            if self.weights:
                args += ["--weights", str(self.weights)]
            if self.fold is not None:
                args += ["--fold", str(self.fold)]
        args += ["--preset", self.preset] if self.preset else []
        args += [*config_arguments(self.overrides()), "--no-progress"]
        return args + [str(a) for a in self.extra_args]


def library_paths() -> list[str]:
    """Folders holding FCDDetectLib and FCDTrainLib, for the child's PYTHONPATH."""
    import FCDDetectLib

    import FCDTrainLib

    return [str(Path(m.__file__).resolve().parent.parent) for m in (FCDDetectLib, FCDTrainLib)]


def event_files(out: str | Path) -> list[Path]:
    """``events.jsonl`` of a run folder, or of every run of an experiment folder."""
    root = Path(out)
    if not root.is_dir():
        return []
    direct = root / EVENTS_NAME
    found = [direct] if direct.exists() else []
    return found + sorted(p for p in root.glob(f"*/**/{EVENTS_NAME}") if p != direct)


def run_progress(out: str | Path, n_runs: int = 1) -> dict[str, Any]:
    """Progress of a run or experiment folder from its event files.

    One run: :func:`FCDTrainLib.run_folder.event_log.progress_from_events`. An experiment (``fcd
    experiment``, local or Ray executor): :func:`FCDTrainLib.experiment.progress.experiment_progress`
    (folds done of its fold tasks, running folds' epochs, ETA), over the latest run's
    fields. Otherwise the mean fraction over the ``n_runs`` expected runs (runs not
    started count 0). ``runs`` lists each run's own progress.
    """
    files = event_files(out)
    runs = {str(path.parent): progress_from_events(read_events(path)) for path in files}
    try:
        experiment = experiment_progress(out) if Path(out).is_dir() else None
    except FCDInputError as error:  # a damaged experiment log: shown as the run's error
        return {**progress_from_events([]), "status": "error", "message": str(error), "runs": runs}
    if experiment is not None:  # an experiment folder: figures over its fold tasks, either executor
        runs.pop(str(Path(out)), None)
        latest = max(runs.values(), key=lambda p: (p["last"] or {}).get("time", 0),
                     default=progress_from_events([]))
        return {**latest, **experiment, "runs": runs}
    if len(files) <= 1 and n_runs <= 1:
        progress = next(iter(runs.values()), progress_from_events([]))
        return {**progress, "runs": runs}
    fractions = sum(p["fraction"] for p in runs.values())
    statuses = [p["status"] for p in runs.values()]
    status = "not started" if not runs else "running"
    if runs and len(runs) >= n_runs and all(s == "done" for s in statuses):
        status = "done"
    if "error" in statuses:
        status = "error"
    latest = max(runs.values(), key=lambda p: (p["last"] or {}).get("time", 0), default=progress_from_events([]))
    return {**latest, "status": status, "fraction": round(min(1.0, fractions / max(n_runs, len(runs))), 4),
            "runs": runs}


def format_event(event: dict[str, Any]) -> str:
    """One human line per event, for the module's log."""
    kind = event.get("event", "?")
    if kind == "epoch":
        parts = [f"fold {event.get('fold')} epoch {event.get('epoch')}"]
        for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
            if isinstance(event.get(key), (int, float)):
                parts.append(f"{key} {event[key]:.4g}")
        return ", ".join(parts)
    if kind == "fold_done":
        metrics = event.get("metrics", {})
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        return f"fold {event.get('fold')} done: {shown}"
    if kind in ("warning", "error"):
        return f"{kind}: {event.get('message', '')}"
    return kind


@dataclass
class PollResult:
    """What changed since the last poll: new log lines, progress, process state."""

    lines: list[str]
    progress: dict[str, Any]
    running: bool
    returncode: int | None


class TrainLogic:
    """Starts, follows, stops and resumes a training process (no Qt).

    ``python_executable`` defaults to ``sys.executable``; inside Slicer pass PythonSlicer.
    """

    def __init__(self, python_executable: str | None = None) -> None:
        self.python_executable = python_executable or sys.executable
        self.process: TreeProcess | None = None
        self.settings: TrainSettings | None = None
        self._seen: dict[str, int] = {}
        self._stop_requested: float | None = None

    def command(self, settings: TrainSettings) -> list[str]:
        """Full command line: the Python, the ``fcd`` bootstrap, the arguments."""
        return [self.python_executable, "-c", _CLI_BOOTSTRAP, *settings.arguments()]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = library_paths() + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env["TQDM_DISABLE"] = "1"  # events.jsonl carries the progress; keep the log readable
        return env

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def start(self, settings: TrainSettings) -> TreeProcess:
        """Start (or resume: the CLI continues a stopped run) training in a new process."""
        if self.running:
            raise FCDInputError("a training process is already running; stop it first")
        settings.check()
        busy = holder(settings.out, None if settings.is_experiment else settings.fold)
        if busy is not None:  # the child takes the lock itself; this gives the panel a clear message first
            raise FCDInputError(f"{settings.out}: this run folder is being written by {describe(busy)}; "
                                "stop that process first")
        Path(settings.out).mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._stop_requested = None
        self._seen = {str(p): len(read_events(p)) for p in event_files(settings.out)}
        self.process = TreeProcess(self.command(settings), env=self.environment())
        self.process.start()
        return self.process

    def stop(self, wait: bool = True) -> int | None:
        """Kill the training process tree; a later :meth:`start` with the same settings resumes.

        ``wait=False`` (the panel's Stop) only sends SIGTERM and returns at once; :meth:`poll`
        SIGKILLs the tree if it still runs :data:`KILL_AFTER_SECONDS` later.
        """
        if self.process is None:
            return None
        if wait:
            return self.process.stop()
        if self.process.terminate():
            self._stop_requested = time.monotonic()
        return None

    def progress(self) -> dict[str, Any]:
        if self.settings is None:
            return progress_from_events([])
        return run_progress(self.settings.out, self.settings.n_runs)

    def poll(self) -> PollResult:
        """New output and event lines since the last poll, and the progress so far."""
        if (self._stop_requested is not None and self.running
                and time.monotonic() - self._stop_requested > KILL_AFTER_SECONDS):
            self.process.kill()  # a Stop the tree did not obey
        lines = self.process.read_lines() if self.process is not None else []
        if self.settings is not None:
            for path in event_files(self.settings.out):
                events = read_events(path)
                start = self._seen.get(str(path), 0)
                prefix = "" if path.parent == Path(self.settings.out) else f"[{path.parent.name}] "
                lines.extend(prefix + format_event(e) for e in events[start:])
                self._seen[str(path)] = len(events)
        return PollResult(lines, self.progress(), self.running,
                          self.process.returncode if self.process is not None else None)

    def wait(self, poll_seconds: float = 1.0, timeout: float | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None,
             on_line: Callable[[str], None] | None = None) -> int | None:
        """Block until the process ends (or ``timeout``), reporting progress; returns the exit code."""
        started = time.monotonic()
        while True:
            result = self.poll()
            for line in result.lines:
                if on_line is not None:
                    on_line(line)
            if on_progress is not None:
                on_progress(result.progress)
            if not result.running:
                return result.returncode
            if timeout is not None and time.monotonic() - started > timeout:
                return None
            time.sleep(poll_seconds)

    def check_finished(self) -> dict[str, Any]:
        """Progress of a finished process; raises if it failed (FCDInputError for bad input)."""
        assert self.process is not None
        code = self.process.returncode
        if code == 0:
            return self.progress()
        tail = self.process.tail(30)
        errors = [line[len("error: "):] for line in tail if line.startswith("error: ")]
        if self.process.stopped:
            raise RuntimeError("training was stopped; start it again to resume")
        if code == 2 and errors:
            raise FCDInputError(errors[-1])
        raise RuntimeError(f"training failed (exit code {code}):\n" + "\n".join(tail[-15:]))

    def train(self, settings: TrainSettings, wait: bool = True,
              on_progress: Callable[[dict[str, Any]], None] | None = None,
              on_line: Callable[[str], None] | None = print) -> dict[str, Any] | TreeProcess:
        """Start training; with ``wait=True`` block until done and return the final progress.

        Bad input reported by the CLI raises :class:`FCDInputError`, any other failure
        RuntimeError with the end of the log. With ``wait=False`` returns the process.
        """
        process = self.start(settings)
        if not wait:
            return process
        try:
            self.wait(on_progress=on_progress, on_line=on_line)
        except BaseException:
            self.stop()
            raise
        return self.check_finished()

    def bundles(self, out: str | Path | None = None):
        """The model bundles a run or experiment folder holds (for FCDDetect's model list)."""
        from FCDDetectLib.slicer_support.models_folder import list_bundles

        folder = out if out is not None else (self.settings.out if self.settings else None)
        if folder is None or not Path(folder).is_dir():
            return []
        return list_bundles(folder).bundles
