"""The child side of :mod:`.background_task`: run one task function, report progress, store its result.

``python -c "...task_child import main; main(FOLDER)"`` reads ``FOLDER/task.json``, imports the
named function (only in ``FCDDetectLib`` / ``FCDTrainLib``), and calls
``function(folder=FOLDER, progress=progress, **arguments)``. ``progress(fraction, message)``
prints one ``@fcd-progress {...}`` line (``fraction`` None: busy). The return value is pickled
to ``FOLDER/result.pickle`` (atomically). Exit codes: 0 done; 2 bad input (one ``error:``
line, as the CLI); 1 any other failure (traceback on the output); 143 stopped (SIGTERM is
turned into ``SystemExit``, so ``finally`` blocks remove half-written files).

Example:
    $ python -c "import sys; from FCDDetectLib.slicer_support.task_child import main; sys.exit(main(sys.argv[1]))" /tmp/fcd-task-x
"""

from __future__ import annotations

import importlib
import json
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_atomic
from FCDDetectLib.slicer_support.background_task import (
    PROGRESS_PREFIX,
    RESULT_FILE,
    TASK_FILE,
    check_function_name,
)

Progress = Callable[..., None]
"""``progress(fraction=None, message="")``: what a task function reports with."""


def report_progress(fraction: float | None = None, message: str = "") -> None:
    """Print one progress line for the parent (``fraction`` in 0..1, or None: busy)."""
    print(PROGRESS_PREFIX + json.dumps({"fraction": fraction, "message": message}), flush=True)


def resolve(function: str) -> Callable[..., Any]:
    """The function a task names (``package.module:function``, in the allowed packages)."""
    module, _, name = check_function_name(function).partition(":")
    return getattr(importlib.import_module(module), name)


def _stop_on_sigterm() -> None:
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, stop)


def main(folder: str) -> int:
    """Run the task of ``folder``; returns the exit code (see the module docstring)."""
    _stop_on_sigterm()
    root = Path(folder)
    try:
        task = json.loads((root / TASK_FILE).read_text(encoding="utf-8"))
        function = resolve(task["function"])
        value = function(folder=root, progress=report_progress, **task.get("arguments", {}))
        write_atomic(root / RESULT_FILE,
                     lambda tmp: Path(tmp).write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
    except FCDInputError as error:
        print(f"error: {error}", flush=True)
        return 2
    except Exception:  # the parent shows the end of this output
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        return 1
    return 0
