"""A child process that can be stopped with everything it started (the whole process tree).

Training, detection, reports, dataset audits and downloads run in their own process (never in
Slicer's GUI thread; see :mod:`.background_task`). On POSIX the child is
started in a new session, so :meth:`TreeProcess.stop` can signal its whole process group
(``os.killpg``): SIGTERM first, SIGKILL if it has not ended after a grace period. On
Windows it is started in a new process group without a console window
(``CREATE_NO_WINDOW``, as ``slicer.util.launchConsoleProcess`` does) and stopped with
``taskkill /T /F``, itself without a window.
The output (stdout and stderr merged) is collected line by line by a reader thread;
:meth:`TreeProcess.read_lines` returns what arrived since the last call.

Example:
    >>> import sys
    >>> proc = TreeProcess([sys.executable, "-c", "print('hello')"])
    >>> proc.start()
    >>> proc.wait(timeout=30)
    0
    >>> proc.read_lines()
    ['hello']
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_MAX_KEPT_LINES = 5000
# Windows process-creation flags (the subprocess constants exist only on Windows).
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000  # what slicer.util.launchConsoleProcess uses: no console window pops up


def popen_options(platform: str = sys.platform) -> dict:
    """Keyword arguments for ``Popen`` of the training child on ``platform``.

    Windows: a new process group (so ``taskkill /T`` reaches the tree) and no console
    window. POSIX: a new session (so ``os.killpg`` reaches the tree).
    """
    if platform == "win32":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def kill_tree_command(pid: int) -> tuple[list[str], dict]:
    """``taskkill`` command line and Popen options (no console window) for Windows."""
    return ["taskkill", "/F", "/T", "/PID", str(pid)], {"creationflags": CREATE_NO_WINDOW}


class TreeProcess:
    """``subprocess.Popen`` wrapper: new process group, line reader, tree kill."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd is not None else None
        self.popen: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._all: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._group: int | None = None
        self.stopped = False

    def start(self) -> None:
        """Start the process; raises RuntimeError if this one is already running."""
        if self.running:
            raise RuntimeError("process already running")
        kwargs = popen_options()
        self.stopped = False
        # the output is read as UTF-8, so the child writes UTF-8 whatever its locale (an ASCII
        # locale, or cp1252 on Windows, would end it at the first non-ASCII character it prints)
        env = {**(self.env if self.env is not None else os.environ), "PYTHONIOENCODING": "utf-8"}
        self.popen = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
        )
        # a new session: its group id is the child's pid, still valid once the child has ended
        self._group = None if sys.platform == "win32" else self.popen.pid
        self._reader = threading.Thread(target=self._read, name="fcd-child-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for raw in self.popen.stdout:
            for line in raw.replace("\r", "\n").splitlines():
                if line.strip():
                    with self._lock:
                        self._lines.append(line)
                        self._all.append(line)
                        del self._all[:-_MAX_KEPT_LINES]

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def read_lines(self) -> list[str]:
        """Output lines that arrived since the previous call."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def tail(self, count: int = 20) -> list[str]:
        """The last ``count`` output lines (kept even after :meth:`read_lines`)."""
        with self._lock:
            return list(self._all[-count:])

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the end; returns the exit code (None if still running after ``timeout``)."""
        if self.popen is None:
            return None
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        """Kill the process and all its children; returns the exit code (blocks up to
        ``grace_seconds`` plus the kill)."""
        if self.popen is None:
            return None
        if not self.terminate():
            return self.wait()
        code = self.wait(timeout=grace_seconds)
        self.kill()  # children that ignored SIGTERM, or a stuck parent
        return code if code is not None else self.wait()

    def terminate(self) -> bool:
        """Ask the process tree to end without waiting (SIGTERM to the group; on Windows
        ``taskkill /T /F``); False when it had already ended. A GUI calls this, then
        :meth:`kill` if the tree is still running after a grace period."""
        if self.popen is None:
            return False
        self.stopped = True
        if self.popen.poll() is not None:
            return False
        if sys.platform == "win32":
            command, options = kill_tree_command(self.popen.pid)
            subprocess.run(command, capture_output=True, check=False, **options)
            return True
        _signal_group(self._group if self._group is not None else os.getpgid(self.popen.pid), signal.SIGTERM)
        return True

    def kill(self) -> None:
        """SIGKILL the process group (POSIX; on Windows :meth:`terminate` already forces)."""
        if self.popen is None or sys.platform == "win32":
            return
        self.stopped = True
        group = self._group if self._group is not None else _group_of(self.popen)
        if group is not None:
            _signal_group(group, signal.SIGKILL)


def _group_of(popen: subprocess.Popen) -> int | None:
    try:
        return os.getpgid(popen.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
