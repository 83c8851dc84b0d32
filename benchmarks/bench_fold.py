"""Benchmark: the wall time of one ``fcd train`` fold at the paper's scale (issue 15, item 4).

Writes a synthetic cohort of the paper's size (170 subjects: with 5 folds, one fold trains on
136, of which 109 train and 27 validate, and tests on 34) with ``fcd synth`` in parallel
shards (one process per shard, as many as the CPU has cores), lists the shards in one CSV
manifest, then runs the real ``fcd train --fold 0`` as a child process at the default model
grid (2 mm, 96 x 112 x 96) and the trainer's defaults (batch 4, up to 100 epochs, early
stopping after 10 without a lower validation loss), and records:

- the wall time of the cohort, of the fold (start to exit), and of each epoch (from the
  run's ``events.jsonl``);
- the epochs run and the best epoch, the fold's test metrics (``fold-0/metrics.json``);
- whether the fold finished inside ``--time-limit`` (when it did not, the child is stopped
  with SIGINT, the figures say so, and a second call with the same ``--work`` folder reuses
  the cohort and resumes the fold; ``epoch_seconds`` then covers every epoch of both calls).

Figures go to ``--out`` (JSON) and are printed. On the project's 2-core CPU use it only
as a dry run at a tiny scale (the second usage line); the paper-scale figure is for a GPU.

Usage:
    python benchmarks/bench_fold.py --device cuda --depth 50 --out benchmarks/results-fold-cuda.json
    python benchmarks/bench_fold.py --device cpu --subjects 12 --size tiny --depth 18 \\
        --train-args "--max-epochs 2 --spacing 8 8 8 --shape 24 28 24 --widen-factor 0.125"
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from FCDDetectLib.choices import DEPTHS, MODALITIES, SYNTH_SIZES


def _fcd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "FCDDetectLib.cli", *args]


def _synth_shard(folder: Path, subjects: int, seed: int, size: str) -> None:
    done = subprocess.run(_fcd(["synth", "--out", str(folder), "--subjects", str(subjects), "--seed", str(seed),
                                "--size", size, "--overlays", "0", "--quiet"]), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fcd synth (seed {seed}) failed: {done.stderr[-2000:]}")


def write_cohort(root: Path, subjects: int, size: str, shards: int) -> Path:
    """``subjects`` synthetic subjects in ``shards`` ``fcd synth`` folders, and one CSV manifest over them."""
    from FCDTrainLib.data.dataset_loader import load_dataset

    shards = max(1, min(shards, subjects // 2))  # each shard holds at least one patient and one control
    sizes = [subjects // shards + (k < subjects % shards) for k in range(shards)]
    folders = [root / f"shard-{k}" for k in range(shards)]
    with ThreadPoolExecutor(shards) as pool:  # the work is in the child processes
        list(pool.map(_synth_shard, folders, sizes, range(shards), [size] * shards))
    manifest = root / "cohort.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["subject", "label", *MODALITIES, "roi", "protocol"])
        writer.writeheader()
        for k, folder in enumerate(folders):
            for subject in load_dataset(folder).subjects:
                images = {name: Path(subject.images[name]).resolve() for name in MODALITIES}
                writer.writerow({"subject": f"s{k}-{subject.subject_id}", "label": subject.label, **images,
                                 "roi": Path(subject.roi).resolve() if subject.roi else "", "protocol": subject.protocol})
    return manifest


def _events(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip().endswith("}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--depth", type=int, default=50, choices=DEPTHS)
    parser.add_argument("--subjects", type=int, default=170, help="cohort size (170: the paper's)")
    parser.add_argument("--size", default="small", choices=SYNTH_SIZES, help="fcd synth --size")
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1, help="parallel fcd synth processes")
    parser.add_argument("--time-limit", type=float, default=540.0, help="seconds the fold may run before it is stopped")
    parser.add_argument("--train-args", default="", help="more fcd train options, one string")
    parser.add_argument("--work", type=Path, default=None, help="folder for the cohort and run (default: a temporary one)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        manifest = work / "cohort" / "cohort.csv"
        reused = manifest.is_file()  # a second call with the same --work resumes the fold on the same cohort
        if not reused:
            write_cohort(work / "cohort", args.subjects, args.size, args.shards)
        cohort_seconds = time.perf_counter() - started
        print(f"cohort: {args.subjects} subjects in {cohort_seconds:.1f} s{' (reused)' if reused else ''}", flush=True)
        run = work / "run"
        command = _fcd(["train", "--data", str(manifest), "--out", str(run), "--fold", "0", "--depth", str(args.depth),
                        "--device", args.device, "--no-progress", *shlex.split(args.train_args)])
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = child.communicate(timeout=args.time_limit)
            finished = child.returncode == 0
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)  # fcd train stops at the next step and keeps its checkpoint
            output, _ = child.communicate()
            finished = False
        fold_seconds = time.perf_counter() - started
        events = _events(run)
        epochs = [e for e in events if e.get("event") == "epoch"]
        metrics_path = run / "fold-0" / "metrics.json"
        config = json.loads((run / "config.json").read_text(encoding="utf-8")) if (run / "config.json").is_file() else {}
        report = {
            "benchmark": "one fcd train fold (fold 0 of 5) at the default grid, synthetic cohort",
            "command": " ".join(["fcd", *command[3:]]).replace(str(work), "WORK"),
            "device": args.device,
            "gpu": _gpu_name(args.device),
            "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "subjects": args.subjects, "synth_size": args.size,
            "config": {key: config.get(key) for key in ("depth", "spacing", "shape", "batch_size", "max_epochs",
                                                        "early_stop_patience", "lr", "modality", "supervision")},
            "cohort_seconds": round(cohort_seconds, 1),
            "cohort_reused": reused,
            "fold_wall_seconds": round(fold_seconds, 1),
            "finished": finished,
            "exit_code": child.returncode,
            "epochs_run": len(epochs),
            "best_epoch": epochs[-1].get("best_epoch") if epochs else None,
            "epoch_seconds": [e.get("seconds") for e in epochs],
            "epoch_seconds_sum": round(sum(e.get("seconds") or 0.0 for e in epochs), 1),
            "metrics": json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None,
            "output_tail": output[-3000:],
        }
    text = json.dumps(report, indent=2)
    print(text)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(text + "\n")
    os.replace(tmp_out, args.out)
    print(f"written to {args.out}", file=sys.stderr)
    return 0 if finished else 1


def _gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(0)


if __name__ == "__main__":
    sys.exit(main())
