"""Benchmark: what ``summary.csv`` costs a 10,000-subject cohort (issue 25, item 7).

Before issue 25 the cohort runner rewrote ``summary.csv`` after every subject: 2,000 rows
took 31 s, 8,000 did not finish in 75 s. Now :class:`FCDDetectLib.cohort.summary.SummaryWriter`
rewrites it in batches (each rewrite is timed; the next waits until the summary has cost
about its budget of the run) and once at the end.

Three runs of the real runner (``run_cohort``, a real tiny bundle loaded once), each
timing every write of ``summary.csv``:

- **rerun**: 10,000 subjects whose folders hold a finished detection of the same bundle,
  scan and options (the rerun of a finished or interrupted cohort): each subject is checked
  the real way (input checksums, the folder read and every file's checksum verified) and
  resumed. This is the gated figure: the summary must cost less than 1% of the run.
- **instant failures**: 10,000 subjects whose image files do not exist, so each ends at once
  as an ``error`` row: the pathological lower bound of a run's length, reported, not gated
  (any design has to write the 10,000 rows once).
- **real detections**: a few subjects detected for real on the tiny model, for the
  per-subject time a real run pays (a real 10,000-subject run lasts hours).

And the old way (rewrite after every subject) timed on the same rows, scaled by the square.

Usage:
    python benchmarks/bench_summary_scale.py [--subjects 10000] [--old-subjects 2000]

Prints the figures and writes ``benchmarks/results-summary-scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for part in ("FCDDetect", "FCDTrain", ""):
    if str(ROOT / part) not in sys.path:
        sys.path.insert(0, str(ROOT / part))

from FCDDetectLib.cohort import summary as summary_module  # noqa: E402
from FCDDetectLib.cohort.discovery import CohortSubject  # noqa: E402
from FCDDetectLib.cohort.runner import run_cohort  # noqa: E402
from FCDDetectLib.cohort.summary import summary_row, write_summary  # noqa: E402

from Testing.builders.hostile_fixtures import tiny_bundle  # noqa: E402


def timed_writes() -> dict:
    """Wrap the module's write_summary to time every call (the runner's writer calls it)."""
    stats = {"writes": 0, "seconds": 0.0, "last_rows": 0}
    real = summary_module.write_summary

    def write(rows, path):
        started = time.perf_counter()
        result = real(rows, path)
        stats["seconds"] += time.perf_counter() - started
        stats["writes"] += 1
        stats["last_rows"] = len(rows)
        return result

    summary_module.write_summary = write
    return stats


def run(work: Path, bundle: Path, subjects: list, name: str) -> dict:
    """``run_cohort`` over ``subjects`` into ``work/name``, every summary write timed."""
    stats = timed_writes()
    started = time.perf_counter()
    rows = run_cohort(bundle, subjects, work / name, device="cpu")
    total = time.perf_counter() - started
    written = (work / name / "summary.csv").read_text(encoding="utf-8").count("\n") - 1
    assert written == len(subjects), written
    statuses = sorted({row["status"] for row in rows})
    return {"subjects": len(subjects), "statuses": statuses, "run_seconds": round(total, 3),
            "seconds_per_subject": round(total / len(subjects), 5), "summary_seconds": round(stats["seconds"], 3),
            "summary_writes": stats["writes"], "summary_share_percent": round(100 * stats["seconds"] / total, 3)}


def rerun_case(work: Path, bundle: Path, count: int) -> tuple[dict, dict]:
    """(a few real detections, then ``count`` subjects resumed from copies of one finished folder)."""
    from Testing.builders.hostile_fixtures import head, save_nifti

    scan = save_nifti(work / "scan.nii.gz", head((30, 34, 30), seed=1))
    real = run(work, bundle, [CohortSubject(f"sub-{i:05d}", [scan]) for i in range(5)], "out-rerun")
    assert real["statuses"] == ["done"], real
    finished = work / "out-rerun" / "sub-00000"
    for i in range(5, count):
        shutil.copytree(finished, work / "out-rerun" / f"sub-{i:05d}")
    os.sync()  # the set-up's 50,000 copied files: their dirty pages are not the run's to flush
    rerun = run(work, bundle, [CohortSubject(f"sub-{i:05d}", [scan]) for i in range(count)], "out-rerun")
    assert rerun["statuses"] == ["resumed"], rerun
    return real, rerun


def failures_case(work: Path, bundle: Path, count: int) -> dict:
    subjects = [CohortSubject(f"sub-{i:05d}", [work / "missing" / f"sub-{i:05d}_FLAIR.nii.gz"]) for i in range(count)]
    result = run(work, bundle, subjects, f"out-failures-{count}")
    assert result["statuses"] == ["error"], result
    return result


def old_way(work: Path, count: int) -> dict:
    """The pre-issue-25 cost: summary.csv rewritten after each of ``count`` subjects (the rows as the runner has them)."""
    rows = {f"sub-{i:05d}": summary_row(f"sub-{i:05d}", None, None, "pending") for i in range(count)}
    path = work / "old-summary.csv"
    started = time.perf_counter()
    for subject in list(rows):
        rows[subject] = summary_row(subject, None, None, "error", f"{subject}: file not found")
        write_summary(list(rows.values()), path)
    seconds = time.perf_counter() - started
    return {"subjects": count, "summary_seconds": round(seconds, 3), "summary_writes": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--old-subjects", type=int, default=2_000, help="subjects for the old way (quadratic)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results-summary-scale.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fcd-summary-") as tmp:
        work = Path(tmp)
        bundle = tiny_bundle(work / "tiny.fcdbundle")
        real, rerun = rerun_case(work, bundle, args.subjects)
        failures = failures_case(work, bundle, args.subjects)
        old = old_way(work, args.old_subjects)
    # the old way grows with the square of the cohort: scale the measured figure to the large cohort
    old_estimate = old["summary_seconds"] * (args.subjects / args.old_subjects) ** 2
    result = {
        "benchmark": "summary.csv cost of a cohort run (issue 25, item 7)",
        "command": f"python benchmarks/bench_summary_scale.py --subjects {args.subjects} "
                   f"--old-subjects {args.old_subjects}",
        "rerun_resumed": rerun,
        "instant_failures": failures,
        "real_detections_tiny_model": real,
        "old_way_measured": old,
        "old_way_estimated": {"subjects": args.subjects, "seconds": round(old_estimate, 1),
                              "how": f"measured at {args.old_subjects} x ({args.subjects}/{args.old_subjects})^2"},
        "bound": "rerun_resumed.summary_share_percent < 1",
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s), {platform.system()}, "
                   f"Python {platform.python_version()}, shared with other jobs",
        "date": time.strftime("%Y-%m-%d"),
    }
    for label, row in (("real detections", real), ("rerun (resumed)", rerun), ("instant failures", failures)):
        print(f"{label:17} {row['subjects']:>6} subjects  run {row['run_seconds']:8.2f} s "
              f"({1000 * row['seconds_per_subject']:.1f} ms/subject)  summary {row['summary_seconds']:6.3f} s in "
              f"{row['summary_writes']:3d} writes = {row['summary_share_percent']:.2f}% of the run")
    print(f"old way           {old['subjects']:>6} subjects  summary {old['summary_seconds']:.2f} s in "
          f"{old['summary_writes']} writes; at {args.subjects}: about {old_estimate:.0f} s")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if rerun["summary_share_percent"] < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
