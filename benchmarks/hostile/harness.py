"""The probe's shared runner: ``fcd`` in a subprocess, watched; the result rows; the tiny trained run.

Every case calls :func:`fcd`, which runs ``python -m FCDDetectLib.cli`` with the probe's
environment and notes in ``WATCH`` what the call changed outside its own output folders
(:func:`outputs_of`) and which empty folders it left; :func:`record` turns a call into a row
of ``ROWS`` (the rows of ``benchmarks/results-hostile.json``) and prints it. :func:`setup`
writes the tiny cohort and trains the tiny run every case starts from.

Example:
    >>> WORK.append(work)  # doctest: +SKIP
    >>> ctx = setup(work)  # doctest: +SKIP
    >>> done = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], work / "out"))  # doctest: +SKIP
    >>> record("a plain detect", done, 0, done.returncode == 0, leftovers(work / "out"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hostile import ROOT
from Testing.builders.hostile_fixtures import head, save_nifti
from Testing.builders.train_fixtures import train_args, write_cohort

TEMP = re.compile(r"(^\.fcd-|\.tmp|^\..+\.\d+\.(tmp|old)-)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "default",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "FCDDetect"), str(ROOT / "FCDTrain"), str(ROOT),
                                      os.environ.get("PYTHONPATH", "")])}
ROWS: list[dict] = []

WORK: list[Path] = []  # the probe's work folder: files outside each call's outputs must not change
WATCH: dict = {"changed": [], "empty": []}  # what the last fcd call changed outside its outputs


def outputs_of(args: list[str]) -> list[Path]:
    """The folders an ``fcd`` call may write: its --out and --dicom-out, evaluate's run, train's run."""
    found = [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a in ("--out", "--dicom-out")]
    if args and args[0] == "evaluate" and "--out" not in args:
        found += [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--run"]
    return found


def snapshot(skip: list[Path]) -> tuple[dict, set]:
    """(files outside ``skip``: path -> (size, mtime_ns); empty folders anywhere) of the work folder."""
    if not WORK:
        return {}, set()
    skipped = set()
    for path in skip:
        try:
            skipped.add(os.path.realpath(path))
        except (OSError, ValueError):
            continue
    files, empty = {}, set()
    for folder, dirs, names in os.walk(WORK[0]):
        inside = os.path.realpath(folder) in skipped or any(os.path.realpath(folder).startswith(s + os.sep)
                                                            for s in skipped)
        if not dirs and not names:
            empty.add(folder)
        if inside:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            files[path] = (stat.st_size, stat.st_mtime_ns)
    return files, empty


def watched(args: list[str], run: Callable[[], subprocess.CompletedProcess]) -> subprocess.CompletedProcess:
    """Run ``run`` and record in WATCH what it changed outside ``outputs_of(args)`` and the empty folders it left."""
    skip = outputs_of([str(a) for a in args])
    files, empty = snapshot(skip)
    done = run()
    after, empty_after = snapshot(skip)
    changed = sorted({p for p in files if after.get(p) != files[p]} | {p for p in after if p not in files})
    WATCH["changed"] = [str(Path(p).relative_to(WORK[0])) for p in changed]
    WATCH["empty"] = [str(Path(p).relative_to(WORK[0])) for p in sorted(empty_after - empty)]
    return done


def fcd(args: list[str], timeout: float = 900, env: dict | None = None, **popen: object) -> subprocess.CompletedProcess:
    return watched(args, lambda: subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", *args],
                                                capture_output=True, text=True, timeout=timeout,
                                                env={**ENV, **(env or {})}, **popen))


def leftovers(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        if folder.exists():
            found += [str(p.relative_to(folder)) for p in folder.rglob("*") if TEMP.search(p.name)]
    return found


def record(case: str, done: subprocess.CompletedProcess | None, expect: int | None, ok: bool,
           left: list[str], code: int | None = None, first: str | None = None, traceback: bool | None = None) -> None:
    stderr = done.stderr if done is not None else ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    code = done.returncode if done is not None else code
    lines = [line for line in lines if not line.lstrip().startswith(("fcd detect:", "SmoothGrad:"))]  # tqdm bars
    row = {
        "case": case, "exit": code, "expected_exit": expect,
        "first_stderr": first if first is not None else (lines[0][:110] if lines else ""),
        "stderr_lines": len(lines), "traceback": bool(traceback) if traceback is not None else "Traceback" in stderr,
        "ok": bool(ok), "leftover": left,
        "changed_outside_out": list(WATCH["changed"]) if done is not None else [],
        "empty_folders": list(WATCH["empty"]) if done is not None else [],
    }
    row["pass"] = (not row["traceback"] and row["ok"] and not left
                   and not row["changed_outside_out"] and not row["empty_folders"]
                   and (expect is None or code == expect)
                   and (expect != 2 or (len(lines) == 1 and lines[0].startswith("error: "))))
    ROWS.append(row)
    mark = "ok " if row["pass"] else "BAD"
    outside = len(row["changed_outside_out"]) + len(row["empty_folders"])
    print(f"{mark} {case[:44]:44} exit {str(code):>4}  tb {'yes' if row['traceback'] else 'no ':3}  "
          f"ok {'yes' if ok else 'no ':3}  left {len(left)}  out/empty {outside}  {row['first_stderr'][:70]}",
          flush=True)


def nothing(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


def setup(work: Path) -> dict:
    cohort = write_cohort(work / "cohort", n_fcd=5, n_hc=5)
    run = work / "run"
    args = train_args(cohort, run, "--widen-factor", "0.25", epochs=2)
    started = time.perf_counter()
    done = fcd(args)
    train_seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    bundle = run / "fold-0" / "model.fcdbundle"
    scans = {name: save_nifti(work / f"{name}.nii.gz", head((30, 34, 30), seed=seed))
             for name, seed in (("a", 1), ("b", 2))}
    training_like = next((cohort / "sub-00010" / "anat").glob("*_FLAIR.nii.gz"))
    return {"cohort": cohort, "run": run, "bundle": bundle, "train_args": args, "train_seconds": train_seconds,
            "scans": scans, "training_like": training_like}


def detect_args(bundle: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return ["detect", "--model", str(bundle), "--image", str(image), "--device", "cpu", "--out", str(out), *extra]
