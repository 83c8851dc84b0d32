"""The ``fcd`` command line: one sub-command per module, JSON on stdout.

The engine's own commands (``detect``, ``heat-score``) are listed in
:data:`ENGINE_COMMANDS`. Other packages add theirs through the entry-point group
``fcd.commands`` (see :mod:`FCDDetectLib.cli.registry`): the engine never imports them
by name, so dependencies point one way. A command module defines
``register(subparsers)`` (adds its parser and sets ``func``) and keeps heavy imports
(torch, monai) inside the function it runs, so ``fcd --help`` is fast. Bad input
(:class:`FCDInputError`) prints one line ``error: ...`` on stderr and exits with code 2, and so
does an ``OSError`` (a full disk, a name over 255 bytes, a link loop: the file and the system's
reason); Ctrl-C exits with 130, SIGTERM (turned into an exception, so that writers clean up as
after Ctrl-C) with 143;
a command module that fails to import prints ``error:`` naming it and exits with code 1.

Example:
    $ fcd detect --model model.fcdbundle --image sub-01_FLAIR.nii.gz --out result/
"""

from __future__ import annotations

import sys

INTERRUPTED = "error: interrupted; run the same command again to resume"
"""What ``fcd`` prints on Ctrl-C (exit code 130), also while its own modules are still imported."""

try:  # Ctrl-C while `fcd` itself is imported (before main's handler exists): one line, exit 130
    import argparse
    import signal
    import threading
    from collections.abc import Iterable, Sequence

    from FCDDetectLib.cli.registry import ENGINE_COMMANDS, CommandLoadError, Register, register_commands
    from FCDDetectLib.errors import FCDInputError, os_error_line
    from FCDDetectLib.io.interrupts import Terminated, raise_on_sigterm
except KeyboardInterrupt:
    print(INTERRUPTED, file=sys.stderr)
    raise SystemExit(130) from None


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser(extra: Iterable[Register] = ()) -> argparse.ArgumentParser:
    """The full ``fcd`` parser: the engine's commands, every ``fcd.commands`` entry point
    and the ``extra`` registrars (functions ``register(subparsers)``).

    Raises :class:`~FCDDetectLib.cli.registry.CommandLoadError` naming a command module
    that fails to import or register.
    """
    parser = _Parser(prog="fcd", description="FCD-II detection, explanation and training.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    register_commands(subparsers, extra=extra)
    return parser


def main(argv: Sequence[str] | None = None, extra: Iterable[Register] = ()) -> int:
    """Run ``fcd`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    previous = raise_on_sigterm()  # SIGTERM cleans up like Ctrl-C (writers leave a consistent folder)
    _printable_anywhere()
    try:
        return _run(argv, extra)
    except Terminated:
        print("error: terminated (SIGTERM); run the same command again to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:  # also while the command's modules are still being imported
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _printable_anywhere() -> None:
    """Under a locale that cannot encode a character we print (ASCII, cp1252), print it escaped
    (``\\xb1``) rather than end the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding and not encoding.startswith("utf"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, OSError):  # not a text stream we may change: leave it
                pass


def _run(argv: Sequence[str] | None, extra: Iterable[Register]) -> int:
    try:
        parser = build_parser(extra)
    except CommandLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FCDInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the system refused a file operation: a full disk, a name too long, a link loop
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return 2


__all__ = ["ENGINE_COMMANDS", "INTERRUPTED", "CommandLoadError", "build_parser", "main"]
