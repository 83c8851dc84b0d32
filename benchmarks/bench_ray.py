"""Experiment grid wall time: the local executor vs Ray with 2 workers, in one run.

The grid is tiny (ResNet-18 at a quarter width, FLAIR and T1, ``--folds`` folds,
``--epochs`` epochs, 12 synthetic subjects on a 5 mm grid, the training tests' cohort):
``fcd experiment`` once with ``--executor local`` and once with ``--executor ray`` on a
local Ray cluster of 2 CPUs, both with one torch thread per fold (``--cpus-per-run 1``).
The figures are this machine's (CPU only; no GPU was used or measured). The two tables
are checked to be identical.

From the measured figures it derives:

- ``speedup``: local wall time / Ray wall time (Ray's start counted apart);
- ``efficiency``: speedup / 2 workers (what the scheduling and the workers' start keep);
- ``folds_per_hour_here``: folds/hour on N workers of this kind, from the measured
  per-fold time x efficiency (an extrapolation for N > 2);
- ``paper_scale``: the 180 folds of the paper's grid with the supervision axis, at the
  paper's *reported* 2-3 h per fold on one RTX 4090, on N GPUs, each task paying the
  per-task overhead measured here. Arithmetic on the paper's figure, not a GPU measurement.

Results go to ``benchmarks/results-ray.json`` and are printed.

Usage:
    nice -n 10 python benchmarks/bench_ray.py [--folds 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results-ray.json")
PAPER_FOLD_HOURS = (2.0, 3.0)  # the paper's reported time per fold on one RTX 4090
PAPER_FOLDS = 180  # 3 depths x 3 strategies x 2 modalities x 2 supervisions x 5 folds
GPU_COUNTS = (1, 4, 8, 16, 32)


def _grid_args(cohort: Path, out: Path, folds: int, epochs: int, *extra: str) -> list[str]:
    from Testing.builders.train_fixtures import TEST_SHAPE, TEST_SPACING

    return ["experiment", "--data", str(cohort), "--out", str(out), "--depths", "18", "--pretrained", "none",
            "--modalities", "flair", "t1", "--folds", str(folds), "--max-epochs", str(epochs),
            "--device", "cpu", "--seed", "3", "--spacing", *TEST_SPACING, "--shape", *TEST_SHAPE,
            "--widen-factor", "0.25", "--cpus-per-run", "1", "--no-progress", *extra]


def _fold_seconds(out: Path) -> list[float]:
    from FCDTrainLib.run_folder.event_log import read_events

    return [float(e["metrics"]["seconds"]) for e in read_events(out / "events.jsonl") if e["event"] == "fold_done"]


def _quiet(fcd, args: list[str]) -> int:
    """``fcd ARGS`` in this process, its JSON output dropped (this script prints its own)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fcd(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import ray
    from FCDDetectLib.cli import main as fcd

    from Testing.builders.train_fixtures import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cohort = write_cohort(root / "cohort", n_fcd=6, n_hc=6)
        # both figures include importing torch and monai once per process (the driver here, each worker)
        started = time.perf_counter()
        assert _quiet(fcd, _grid_args(cohort, root / "local", args.folds, args.epochs)) == 0
        local_wall = time.perf_counter() - started

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
        ray_start = time.perf_counter() - started
        try:
            started = time.perf_counter()
            assert _quiet(fcd, _grid_args(cohort, root / "ray", args.folds, args.epochs, "--executor", "ray")) == 0
            ray_wall = time.perf_counter() - started
        finally:
            ray.shutdown()
        identical = all((root / "local" / n).read_bytes() == (root / "ray" / n).read_bytes()
                        for n in ("results.csv", "results_folds.csv"))
        local_folds, ray_folds = _fold_seconds(root / "local"), _fold_seconds(root / "ray")

    n_folds = len(local_folds)
    speedup = local_wall / ray_wall
    efficiency = speedup / 2
    per_fold = sum(local_folds) / n_folds
    # what Ray's 2 workers spent beyond the local executor's training time, per task
    overhead = max(0.0, 2 * ray_wall - sum(local_folds)) / n_folds
    result = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "ray": ray.__version__,
        "grid": {"runs": 2, "folds_per_run": args.folds, "epochs": args.epochs, "tasks": n_folds,
                 "model": "ResNet-18, widen 0.25, 24x28x24 at 5 mm, 12 subjects"},
        "local_wall_seconds": round(local_wall, 2),
        "ray_start_seconds": round(ray_start, 2),
        "ray_wall_seconds": round(ray_wall, 2),
        "ray_workers": 2,
        "speedup": round(speedup, 3),
        "efficiency": round(efficiency, 3),
        "local_fold_seconds": [round(s, 2) for s in local_folds],
        "ray_fold_seconds": [round(s, 2) for s in ray_folds],
        "results_identical": identical,
        "folds_per_hour_here": {
            "note": "extrapolation: measured per-fold CPU time of this tiny grid x measured efficiency",
            **{f"{n}_workers": round(n * efficiency * 3600 / per_fold, 1) for n in (1, 2, 8, 32)},
        },
        "overhead_seconds_per_task": round(overhead, 2),
        "paper_scale": {
            "note": "extrapolation, not a GPU measurement: the paper's reported 2-3 h per fold on one "
                    "RTX 4090, 180 folds, N GPUs, each task paying the per-task overhead measured here "
                    "(worker start, scheduling, idle tail) once",
            **{f"{n}_gpus": {"folds_per_hour": [round(n / (h + overhead / 3600), 2) for h in PAPER_FOLD_HOURS],
                             "grid_hours": [round(PAPER_FOLDS * (h + overhead / 3600) / n, 1)
                                            for h in PAPER_FOLD_HOURS]} for n in GPU_COUNTS},
        },
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
