"""Probe: the hostile inputs of issue 9 against the real ``fcd`` CLI, each in a subprocess.

Builds its own tiny cohort (ellipsoid heads, 4 mm voxels) and trains a tiny run on it
(ResNet-18 at width 1/4, 2 folds, 2 epochs), then runs every case and prints a table:
case, exit code, first stderr line, traceback yes/no, "nothing written / consistent"
yes/no, leftover temporary files. It includes random SIGKILLs of ``fcd detect`` (each
followed by the consistency check the next reader does) and of ``fcd train`` (each
followed by a resume; the finished run must equal an uninterrupted one).

Issue 25 adds: planted commit journals (confinement), bundles of the same name with other
content, swapped or NaN weights (identity, sanity), the report in the committed set, SIGINT
and SIGTERM at each commit point and at random times, a full disk (a tiny tmpfs where the
probe may mount one, else a file-size limit), NIfTI headers that Slicer reads differently,
spreadsheet manifests, odd subject names, long names, link loops and ``--nt-samples``.
Around every ``fcd`` call it also checks that no file outside the call's output folders
changed (size, modification time, or gone) and that no empty folder was left behind.

Writes ``benchmarks/results-hostile.json``; exits 1 if any case gives a traceback, an
unexpected exit code, a half-written or inconsistent set, a leftover temporary file, a file
changed outside ``--out`` or an empty folder left behind.

The cases live in the ``hostile`` package next to this script (``benchmarks/hostile/``, one
module per kind of input, the shared runner in ``hostile/harness.py``); this script runs them
in order and writes the totals.

Usage:
    python benchmarks/probe_hostile.py [--detect-kills 50] [--train-kills 20] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hostile import ROOT
from hostile.bundle_cases import identity_cases
from hostile.detect_input_cases import full_disk_cases, header_cases, odd_input_cases
from hostile.harness import ROWS, WORK, setup
from hostile.input_data_cases import data_cases
from hostile.interrupts import detect_kills, train_kills
from hostile.refusal_cases import bounds_cases, confinement_cases, fs_cases, security_cases
from hostile.run_folder_cases import trainer_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect-kills", type=int, default=50)
    parser.add_argument("--train-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results-hostile.json"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fcd-probe-"))
    work.mkdir(parents=True, exist_ok=True)
    WORK.append(work)
    started = time.perf_counter()
    try:
        ctx = setup(work)
        steps: list[Callable[[], None]] = [
            lambda: security_cases(work, ctx), lambda: fs_cases(work, ctx), lambda: bounds_cases(work, ctx),
            lambda: data_cases(work, ctx), lambda: confinement_cases(work, ctx), lambda: identity_cases(work, ctx),
            lambda: header_cases(work, ctx), lambda: odd_input_cases(work, ctx), lambda: full_disk_cases(work, ctx),
            lambda: trainer_cases(work, ctx),
            lambda: detect_kills(work, ctx, args.detect_kills, rng),
            lambda: train_kills(work, ctx, args.train_kills, rng),
        ]
        for step in steps:
            step()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in ROWS if not r["pass"]]
    totals = {
        "cases": len(ROWS), "failed": len(failed), "tracebacks": sum(r["traceback"] for r in ROWS),
        "inconsistent_or_written": sum(not r["ok"] for r in ROWS),
        "leftover_temp_files": sum(len(r["leftover"]) for r in ROWS),
        "changed_outside_out": sum(len(r["changed_outside_out"]) for r in ROWS),
        "empty_folders": sum(len(r["empty_folders"]) for r in ROWS),
        "detect_kills": args.detect_kills, "train_kills_requested": args.train_kills,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s), {platform.system()}",
    }
    print(json.dumps(totals, indent=2))
    Path(args.out).write_text(json.dumps({"totals": totals, "rows": ROWS}, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
