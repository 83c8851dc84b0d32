"""Long work of the Slicer modules in a child process: progress, Cancel, result back in the caller.

Detection, SmoothGrad, the report, batch detection, the installation check, the dataset audit
and network requests never run in Slicer's GUI thread. The caller (the panel, or a script)
makes a :class:`BackgroundTask` naming a *task function* (``"package.module:function"``, in
``FCDDetectLib`` or ``FCDTrainLib``) and its JSON arguments, and :meth:`~BackgroundTask.start`
runs it in a child Python (inside Slicer: ``PythonSlicer``) started as a
:class:`~.tree_process.TreeProcess` (its own process group, so Cancel stops everything it
started). :meth:`~BackgroundTask.start` returns at once; the panel polls
:meth:`~BackgroundTask.poll` from a timer (progress fraction or "busy", a message, new log
lines) and takes :meth:`~BackgroundTask.result` on the main thread when the child has ended;
scripts call :meth:`~BackgroundTask.wait`, which blocks (calling ``on_status`` so Slicer can
repaint). :meth:`~BackgroundTask.cancel` does not block either: SIGTERM to the group at once
(the child's ``finally`` blocks remove half-written files), SIGKILL at a later poll if the
tree is still running after :data:`KILL_AFTER_SECONDS`.

Inputs and the result travel through a private folder the parent makes (``mkdtemp``: only
this user can write it): ``task.json`` (function and arguments), arrays as ``.npz`` files
(read with ``allow_pickle=False``), and the function's return value as ``result.pickle``,
written by the child (:mod:`.task_child`). The pickle is the same trust as
``multiprocessing``'s pipe: written by our own child into a folder nobody else can write,
read once by the process that made the folder, never a file a user hands over.

Example:
    >>> task = BackgroundTask("FCDDetectLib.slicer_support.detect_tasks:installation_task",
    ...                       {"folders": [], "slicer_version": None}).start()  # doctest: +SKIP
    >>> task.poll().running  # doctest: +SKIP
    True
    >>> report = task.wait()  # blocks; a failure raises FCDInputError / RuntimeError  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.tree_process import TreeProcess

TASK_FILE = "task.json"
RESULT_FILE = "result.pickle"
PROGRESS_PREFIX = "@fcd-progress "
"""Output lines of the child starting with this carry ``{"fraction": f | null, "message": m}``."""
TASK_PACKAGES = ("FCDDetectLib", "FCDTrainLib")
"""Task functions must live in these packages (a task file never names arbitrary code)."""
KILL_AFTER_SECONDS = 5.0
_CHILD_BOOTSTRAP = ("import sys; from FCDDetectLib.slicer_support.task_child import main; "
                    "sys.exit(main(sys.argv[1]))")


class TaskCancelled(RuntimeError):
    """The task was cancelled before it finished (not a failure)."""


class ChildProcess(Protocol):
    """What a task needs of its process (a :class:`~.tree_process.TreeProcess`, or a test's fake)."""

    stopped: bool

    def start(self) -> None: ...

    @property
    def running(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def read_lines(self) -> list[str]: ...

    def tail(self, count: int = 20) -> list[str]: ...

    def terminate(self) -> bool: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...


Launcher = Callable[[Sequence[str], Mapping[str, str]], ChildProcess]
"""Makes the (not yet started) child process from a command line and an environment."""


def tree_process_launcher(command: Sequence[str], env: Mapping[str, str]) -> ChildProcess:
    """The default launcher: a :class:`~.tree_process.TreeProcess`."""
    return TreeProcess(command, env=env)


def child_python() -> str:
    """The Python that runs tasks: Slicer's ``PythonSlicer`` inside Slicer, else this one."""
    return shutil.which("PythonSlicer") or sys.executable


def package_root(package: str) -> str | None:
    """The folder holding the top-level ``package`` (for the child's ``PYTHONPATH``), found
    without importing it."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return str(Path(locations[0]).resolve().parent) if locations else None


def check_function_name(function: str) -> str:
    """``"package.module:function"`` in :data:`TASK_PACKAGES`; raises ValueError otherwise."""
    module, _, name = function.partition(":")
    if not name or not name.isidentifier() or module.split(".")[0] not in TASK_PACKAGES:
        raise ValueError(f"task function {function!r}: expected 'FCDDetectLib.x:function' or 'FCDTrainLib.x:function'")
    return function


@dataclass
class TaskStatus:
    """One poll: still running?, progress (``fraction`` None: busy, amount unknown), the last
    progress message, log lines that arrived since the previous poll, seconds since start."""

    running: bool
    fraction: float | None = None
    message: str = ""
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


class BackgroundTask:
    """A task function run in a child process (see the module docstring).

    ``arguments`` must be JSON-able (paths as strings); arrays go through :meth:`write_array`.
    ``launcher`` makes the child process (default :func:`tree_process_launcher`; tests pass a
    fake), ``python`` the interpreter (default :func:`child_python`).
    """

    def __init__(self, function: str, arguments: Mapping[str, Any] | None = None, *, python: str | None = None,
                 launcher: Launcher | None = None, description: str = "") -> None:
        self.function = check_function_name(function)
        self.arguments = dict(arguments or {})
        self.python = python or child_python()
        self.launcher = launcher or tree_process_launcher
        self.description = description or function.rpartition(":")[2]
        self.folder = Path(tempfile.mkdtemp(prefix="fcd-task-"))
        self.process: ChildProcess | None = None
        self.cancelled = False
        self._started = 0.0
        self._cancelled_at: float | None = None
        self._fraction: float | None = None
        self._message = ""
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or exception), once collected

    # -- inputs ---------------------------------------------------------------------------------
    def write_array(self, name: str, array: np.ndarray, affine: np.ndarray | None = None) -> str:
        """Store an array (and its affine) for the child as ``NAME.npz``; returns the file name
        to put in the arguments (the child reads it with :func:`read_array`)."""
        file_name = f"{name}.npz"
        arrays = {"array": np.asarray(array)}
        if affine is not None:
            arrays["affine"] = np.asarray(affine, dtype=np.float64)
        np.savez(self.folder / file_name, **arrays)
        return file_name

    def write_pickle(self, name: str, value: Any) -> str:
        """Store a value made by this process for the child (same trust as the result file)."""
        file_name = f"{name}.pickle"
        (self.folder / file_name).write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return file_name

    # -- the child ------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [self.python, "-c", _CHILD_BOOTSTRAP, str(self.folder)]

    def environment(self) -> dict[str, str]:
        """This environment, with the task's packages first on ``PYTHONPATH``, unbuffered output."""
        env = dict(os.environ)
        packages = ["FCDDetectLib", self.function.split(".")[0]]
        roots = [r for r in dict.fromkeys(package_root(p) for p in packages) if r]
        env["PYTHONPATH"] = os.pathsep.join(roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        env["TQDM_DISABLE"] = "1"
        return env

    def start(self) -> BackgroundTask:
        """Write ``task.json`` and start the child; returns at once (``self``)."""
        if self.process is not None:
            raise RuntimeError("this task was already started")
        (self.folder / TASK_FILE).write_text(json.dumps({"function": self.function, "arguments": self.arguments}),
                                             encoding="utf-8")
        self.process = self.launcher(self.command(), self.environment())
        self._started = time.monotonic()
        try:
            self.process.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def poll(self) -> TaskStatus:
        """Progress and new log lines since the last poll (never blocks)."""
        if self.process is None:
            return TaskStatus(running=False)
        lines: list[str] = []
        for line in self.process.read_lines():
            if line.startswith(PROGRESS_PREFIX):
                try:
                    update = json.loads(line[len(PROGRESS_PREFIX):])
                    fraction = update.get("fraction")
                    self._fraction = None if fraction is None else min(1.0, max(0.0, float(fraction)))
                    self._message = str(update.get("message") or self._message)
                except (ValueError, TypeError, AttributeError):
                    lines.append(line)
            else:
                lines.append(line)
        running = self.process.running
        if running and self._cancelled_at is not None and time.monotonic() - self._cancelled_at > KILL_AFTER_SECONDS:
            self.process.kill()
        return TaskStatus(running, self._fraction, self._message, lines, time.monotonic() - self._started)

    def cancel(self) -> None:
        """Stop the child and everything it started, without waiting (see the module docstring)."""
        self.cancelled = True
        if self.process is not None and self.process.terminate():
            self._cancelled_at = time.monotonic()

    def wait(self, on_status: Callable[[TaskStatus], Any] | None = None, poll_seconds: float = 0.1,
             timeout: float | None = None) -> Any:
        """Block until the child ends and return :meth:`result`. ``on_status(status)`` is called
        at each poll (Slicer: process events, move a progress bar; returning True cancels).
        After ``timeout`` seconds the task is cancelled."""
        if self.process is None:
            self.start()
        while True:
            status = self.poll()
            if on_status is not None and on_status(status) is True and not self.cancelled:
                self.cancel()
            if not status.running:
                return self.result()
            if timeout is not None and status.seconds > timeout and not self.cancelled:
                self.cancel()
            time.sleep(poll_seconds)

    def result(self) -> Any:
        """The task function's return value, once the child has ended; raises
        :class:`TaskCancelled`, :class:`FCDInputError` (the child's ``error:`` line, exit code
        2) or RuntimeError with the end of the log. The private folder is removed; later
        calls give the same value (or raise the same error)."""
        if self._outcome is None:
            if self.process is None or self.process.running:
                raise RuntimeError(f"{self.description}: the task has not ended")
            try:
                self._outcome = (True, self._collect())
            except Exception as error:
                self._outcome = (False, error)
            finally:
                self.cleanup()
        ok, value = self._outcome
        if not ok:
            raise value
        return value

    def _collect(self) -> Any:
        assert self.process is not None
        self.process.wait(timeout=5)  # the output reader has read the last lines
        code = self.process.returncode
        if self.cancelled or self.process.stopped:
            raise TaskCancelled(f"{self.description}: cancelled")
        tail = self.process.tail(40)
        if code == 2:
            errors = [line[len("error: "):] for line in tail if line.startswith("error: ")]
            raise FCDInputError(errors[-1] if errors else f"{self.description}: bad input")
        result_file = self.folder / RESULT_FILE
        if code != 0 or not result_file.is_file():
            shown = "\n".join(line for line in tail if not line.startswith(PROGRESS_PREFIX))
            raise RuntimeError(f"{self.description} failed (exit code {code}):\n{shown}")
        # Our own child wrote it into our private folder (see the module docstring).
        return pickle.loads(result_file.read_bytes())  # noqa: S301

    def cleanup(self) -> None:
        """Remove the private folder (the result is read at most once)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class TaskJob:
    """A job whose work runs in a :class:`BackgroundTask` (``self.task``) and whose result the
    caller turns into something on the main thread with :meth:`finish` (subclasses)."""

    task: BackgroundTask

    @property
    def running(self) -> bool:
        return self.task.running

    def poll(self) -> TaskStatus:
        """Progress and new log lines (never blocks)."""
        return self.task.poll()

    def cancel(self) -> None:
        """Stop the child (returns at once)."""
        self.task.cancel()

    def finish(self) -> Any:
        """On the main thread, once the task has ended: its result made into nodes (or raises)."""
        raise NotImplementedError

    def wait(self, on_status: Callable[[TaskStatus], Any] | None = None) -> Any:
        """Block until the task ends (``on_status`` at each poll; True cancels), then :meth:`finish`."""
        self.task.wait(on_status=on_status)
        return self.finish()


def read_array(folder: str | Path, file_name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An array (and its affine, or None) written by :meth:`BackgroundTask.write_array`."""
    path = Path(folder) / Path(file_name).name  # stays inside the task folder
    with np.load(path, allow_pickle=False) as data:
        return np.array(data["array"]), (np.array(data["affine"]) if "affine" in data else None)


def read_pickle(folder: str | Path, file_name: str) -> Any:
    """A value written by :meth:`BackgroundTask.write_pickle` (the parent's own, see the module docstring)."""
    return pickle.loads((Path(folder) / Path(file_name).name).read_bytes())  # noqa: S301
