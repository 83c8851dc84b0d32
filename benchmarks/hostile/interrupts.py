"""Interrupted runs: ``fcd detect`` stopped at each commit point and at random, ``fcd train`` killed.

:func:`detect_kills` sends SIGKILL, SIGINT and SIGTERM at each named commit point, then at
random times; after each, the output set must read back consistent (the old set or the new
one). :func:`train_kills` SIGKILLs ``fcd train`` at random times, then resumes it: the
finished run must equal the uninterrupted one.

Example:
    >>> detect_kills(work, ctx, 50, random.Random(0))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from FCDDetectLib.io.output_set import read_output_set

from hostile.harness import ENV, detect_args, fcd, leftovers, record, snapshot

SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM")


def default_sigint() -> None:
    """``preexec_fn``: SIGINT back to its default in the child, as in a terminal.

    A shell starts background jobs (``make probe &``, CI runners) with SIGINT ignored, and
    children inherit that: Ctrl-C would then never reach ``fcd``, and the probe would test nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _startup_seconds() -> float:
    """The slowest of three bare interpreter start-ups (``python -c pass``) with the probe's environment."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=ENV, check=True)
        times.append(time.perf_counter() - started)
    return max(times)


def detect_kills(work: Path, ctx: dict, count: int, rng: random.Random) -> None:
    """SIGKILL, SIGINT and SIGTERM at each named commit point, then ``count`` random ones (the three in turn)."""
    out = work / "out-kill"
    scans = ctx["scans"]
    started = time.perf_counter()
    done = fcd(detect_args(ctx["bundle"], scans["a"], out))
    full = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    # Random signals start after the interpreter's own start-up (the slowest of three bare
    # `python -c pass`): a SIGINT that lands while CPython itself imports `os` for `site`, before
    # the first line of FCDDetectLib runs, gets CPython's traceback, which no program can catch
    # (seen once in 65: `File "<frozen os>", line 58 ... KeyboardInterrupt`). From our first line
    # on (FCDDetectLib/cli/__init__.py's guarded imports), Ctrl-C is one line and exit 130.
    startup = _startup_seconds()
    points = ["staged", "journal", "renamed:heatmap.nii.gz", "renamed:result.json", "committed"]
    plan = [("point", p, name) for p in points for name in SIGNALS]
    plan += [("random", None, SIGNALS[i % len(SIGNALS)]) for i in range(count)]
    bad = 0
    for index, (kind, point, name) in enumerate(plan):
        image = scans["b" if index % 2 == 0 else "a"]
        extra = ["--png"] if index % 2 == 0 else []  # the sets differ in members: overlay.png comes and goes
        before = read_output_set(out)["inputs"] if (out / "result.json").exists() else None
        command = [sys.executable, "-m", "FCDDetectLib.cli", *detect_args(ctx["bundle"], image, out, *extra)]
        env = {**ENV, "FCD_TEST_KILL_AT": point or "", "FCD_TEST_KILL_SIGNAL": name}
        files, empty = snapshot([out])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=default_sigint)
        if kind == "random":
            try:
                process.wait(timeout=rng.uniform(startup, full * 1.05))
            except subprocess.TimeoutExpired:
                process.send_signal(getattr(signal, name))
        process.wait()
        stderr = process.stderr.read()
        process.stderr.close()
        try:
            manifest = read_output_set(out)  # what the next reader does: recover, verify checksums
            consistent = manifest["inputs"] in (before, [str(image)])
            names = {p.name for p in out.iterdir()}
            consistent = consistent and names == {"result.json", *manifest["files"]}
        except Exception as error:  # noqa: BLE001 - a probe reports, it does not stop
            consistent, stderr = False, f"{stderr}\n{error}"
        after, empty_after = snapshot([out])
        outside = sorted(p for p in set(files) | set(after) if files.get(p) != after.get(p)) + sorted(empty_after - empty)
        left = leftovers(out)
        print(f"    detect {name} {index + 1}/{len(plan)} ({point or 'random'}): exit {process.returncode}, "
              f"{'consistent' if consistent else 'INCONSISTENT'}, {len(left)} leftover", flush=True)
        if not consistent or left or "Traceback" in stderr or outside:
            bad += 1
            record(f"detect {name} #{index} ({point or 'random'})", None, None, consistent and not outside, left,
                   code=process.returncode, traceback="Traceback" in stderr, first=stderr.strip()[-110:])
    killed = len(plan)
    record(f"detect interrupted x{killed} ({len(points)} points x 3 signals + {count} random)", None, None,
           bad == 0, [], code=-9, first=f"{killed - bad}/{killed} consistent after recovery, full run {full:.1f} s",
           traceback=False)


def train_kills(work: Path, ctx: dict, count: int, rng: random.Random) -> None:
    run = work / "run-kill"
    args = [str(run) if a == str(ctx["run"]) else a for a in ctx["train_args"]]
    command = [sys.executable, "-m", "FCDDetectLib.cli", *args]
    full = ctx["train_seconds"]
    tracebacks = 0
    kills = 0
    attempts = 0
    while kills < count and attempts < 3 * count:  # an attempt that finishes before its kill does not count
        attempts += 1
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            process.wait(timeout=rng.uniform(0.5, full * 0.6))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        stderr = process.stderr.read()
        process.stderr.close()
        tracebacks += "Traceback" in stderr
        print(f"    train attempt: exit {process.returncode} ({kills} kills so far)", flush=True)
        if process.returncode == 0:
            shutil.rmtree(run)  # finished between kills: start over, so that every kill interrupts something
    done = fcd(args)
    same = done.returncode == 0
    for fold in (0, 1):
        for name in ("metrics.json", "predictions.csv"):
            got, want = (run / f"fold-{fold}" / name), (ctx["run"] / f"fold-{fold}" / name)
            if not got.is_file():
                same = False
                continue
            a, b = got.read_text(encoding="utf-8"), want.read_text(encoding="utf-8")
            if name == "metrics.json":
                a, b = ({k: v for k, v in json.loads(t).items() if k != "seconds"} for t in (a, b))
            same = same and a == b
    record(f"train SIGKILL x{kills} then resume", done, 0, same and tracebacks == 0, leftovers(run),
           first=f"{kills} kills; resumed run {'equals' if same else 'DIFFERS FROM'} the uninterrupted one")
