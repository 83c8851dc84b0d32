"""Training throughput of the real pipeline against its limit, and CPU trials (issue 15 item 3).

One run, one network, one grid, one batch size (``RunConfig.preset("demo")`` by default,
``--grid default`` for RunConfig's defaults), on one device:

- **limit**: a bare loop of forward + cross-entropy + backward + Adam on random tensors
  already on the device, under the Trainer's own precision policy
  (:func:`FCDTrainLib.training.trainer.autocast_context`: bf16 on CUDA, fp32 on CPU); no augmentation,
  no batch assembly.
- **variants** of that loop on the same tensors: ``fp32`` (plain), ``channels_last``
  (``channels_last_3d`` model and input), ``bf16`` (``torch.autocast`` bf16 on the
  device), ``compile`` (``torch.compile`` of the model, in a child process with a time
  limit, so a compiler that hangs or fails is recorded, not fatal), ``fp32_fill`` (what
  ``fcd train`` did on the CPU before :func:`FCDTrainLib.experiment.train_run.deterministic_cpu`).
  The variants' steps are interleaved; each reports its fastest step (the machine may be
  shared: the quickest step is the least disturbed one) and its median.
- **pipeline**: the project's :class:`FCDTrainLib.training.trainer.Trainer` (``fit()`` for
  ``--epochs`` epochs, checkpoints and all) on a real small cohort: written by the
  project's synthetic generator (:func:`FCDTrainLib.data.synth.synth_cohort`, what
  ``fcd synth`` runs), planned into folds and preprocessed through the real
  :class:`FCDTrainLib.training.input_cache.VolumeCache` and :func:`FCDTrainLib.experiment.train_run.fold_data`, as
  ``fcd train`` does (fold 0). A subclass of the Trainer times its hooks (``batch``,
  ``augment``, ``step``, validation, checkpoint) by calling the real ones; on CUDA each
  timer synchronises the device first, so the split is real time on the device.

Printed and written (merged under ``"pipeline"`` in ``benchmarks/results-train.json``,
with the machine, the date and the load average at start and end, since the machine may
be shared): training volumes/s of the pipeline (training epochs after the first, which
carries the first allocations), the limit's volumes/s, their ratio, and the input
pipeline's share of a training epoch (batch assembly + augmentation against the step).
The headline ratio, ``ratio_to_adjacent_limit_median``, compares each training epoch with
limit steps taken right after it (under the same load) and is the median over epochs.
The other ratios compare with the limit measured after the whole pipeline, so a change of
load between the two moves them; ``ratio_fastest_batch_to_limit`` compares the fastest full batch of the
pipeline (batch + augment + step) with the limit's fastest step, and
``ratio_fastest_epoch_to_limit`` the fastest training epoch (partial last batch included):
figures a shared machine disturbs less.

The loops and the timed pipeline are in ``benchmarks/train_pipeline_timing.py``; this
script parses the options, runs them and writes the results.

Usage:
    nice -n 10 python benchmarks/bench_train_pipeline.py                  # demo grid, CPU
    python benchmarks/bench_train_pipeline.py --grid default --device cuda --subjects 60
    python benchmarks/bench_train_pipeline.py --variants fp32 bf16 --no-compile --epochs 2
    python benchmarks/bench_train_pipeline.py --supervision lesion --no-compile   # the lesion head
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from FCDTrainLib.run_folder.run_config import RunConfig
from train_pipeline_timing import (  # noqa: F401  (the loops and timers: re-exported for callers)
    BareLoop,
    _sync,
    _variant_context,
    bare_loops,
    pipeline,
    timed_trainer_class,
)

RESULTS = Path(__file__).with_name("results-train.json")
VARIANTS = ("fp32", "fp32_fill", "channels_last", "bf16", "compile")


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_config(grid: str, cohort: Path, device: str, epochs: int, batch_size: int | None,
                supervision: str = "none") -> RunConfig:
    """The run's config: the demo preset or RunConfig's defaults, ``epochs`` epochs, fold 0 only."""
    overrides: dict[str, Any] = {"data": str(cohort), "device": device, "max_epochs": epochs,
                                 "early_stop_patience": epochs + 1, "supervision": supervision}
    if batch_size:
        overrides["batch_size"] = batch_size
    if grid == "demo":
        return RunConfig.preset("demo", **overrides)
    return RunConfig(**overrides)


def compile_in_child(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """The ``compile`` variant in a child process (time limit; a failure is recorded, not raised)."""
    command = [sys.executable, __file__, "--child-compile", "--grid", args.grid, "--device", args.device,
               "--iters", str(args.iters), "--warmup", str(args.warmup)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"variant": "compile", "error": f"did not finish within {timeout:.0f} s (compilation included)",
                "wall_seconds": round(time.perf_counter() - started, 1)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"variant": "compile", "error": f"exit {done.returncode}: {tail[:300]}",
                "wall_seconds": round(time.perf_counter() - started, 1)}
    row = json.loads(lines[-1])
    row["wall_seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("demo", "default"), default="demo",
                        help="demo: RunConfig.preset('demo') (ResNet-18 x0.25, 4 mm, 48x56x48, batch 8); "
                             "default: RunConfig's defaults (2 mm, 96x112x96)")
    from FCDDetectLib.choices import DEVICES, SUPERVISION

    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--subjects", type=int, default=50,
                        help="synthetic cohort size (fold 0 of 5 is trained: 32 training volumes of 50)")
    parser.add_argument("--cohort", type=Path, default=None, help="use this cohort folder instead of a new one")
    parser.add_argument("--supervision", choices=SUPERVISION, default="none",
                        help="lesion: the lesion head and its trainer, in the pipeline and the limit alike")
    parser.add_argument("--epochs", type=int, default=6, help="Trainer epochs (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--iters", type=int, default=5, help="timed steps of each bare loop (interleaved)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each bare loop (the first included)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--bare-only", action="store_true",
                        help="only the bare-loop variants (no cohort, no Trainer); written under DEVICE-GRID-bare")
    parser.add_argument("--compile-timeout", type=float, default=300.0, help="seconds for the compile variant")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        from FCDTrainLib.experiment.train_run import deterministic_cpu

        deterministic_cpu()  # what `fcd train` sets on the CPU

    if args.child_compile:
        config = make_config(args.grid, Path("unused"), args.device, 1, args.batch_size)
        print(json.dumps(bare_loops(config, device, ["compile"], args.iters, args.warmup)["compile"]))
        return

    load_start, started = _load(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.bare_only:
        bare_only(args, device, load_start, started)
        return
    with tempfile.TemporaryDirectory(prefix="bench-train-pipeline-") as tmp:
        work = Path(tmp)
        config = make_config(args.grid, args.cohort or work / "cohort", args.device, args.epochs, args.batch_size,
                             args.supervision)
        pipe = pipeline(config, work, device, args.subjects, args.cohort)
    print(json.dumps({"pipeline": pipe}))
    variants = ["policy", *[v for v in args.variants if v not in ("compile", "policy")]]
    if device.type == "cpu":
        variants = [v for v in variants if v != "fp32"]  # the CPU policy is plain fp32: "policy" is that loop
    best = bare_loops(config, device, variants, args.iters, args.warmup)
    for row in best.values():
        print(json.dumps(row))
    if "compile" in args.variants and not args.no_compile:
        best["compile"] = compile_in_child(args, args.compile_timeout)
        print(json.dumps(best["compile"]))
    limit = best["policy"]["volumes_per_second"]
    fp32 = best.get("fp32", best["policy"])["volumes_per_second"]  # on the CPU the policy is fp32
    for row in best.values():
        if "volumes_per_second" in row:
            row["vs_fp32"] = round(row["volumes_per_second"] / fp32, 3)
    result = {
        "measured": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(device), "device": device.type, "torch": torch.__version__,
        "load_average_start": load_start, "load_average_end": _load(),
        "grid": args.grid, "supervision": config.supervision, "depth": config.depth,
        "widen_factor": config.widen_factor, "geometry": config.geometry,
        "spacing": list(config.spacing), "shape": list(config.shape), "batch_size": config.batch_size,
        "precision_policy": "bf16 autocast" if device.type == "cuda" else "fp32",
        "ratio_to_adjacent_limit_median": pipe["ratio_to_adjacent_limit_median"],
        "limit_volumes_per_second": limit,
        "pipeline_train_volumes_per_second": pipe["train_volumes_per_second"],
        "ratio_pipeline_to_limit": round(pipe["train_volumes_per_second"] / limit, 3),
        "ratio_epoch_to_limit": round(pipe["epoch_volumes_per_second"] / limit, 3),
        "ratio_fastest_epoch_to_limit": round(pipe["fastest_epoch_train_volumes_per_second"] / limit, 3),
        "ratio_fastest_batch_to_limit": (round(pipe["fastest_full_batch_volumes_per_second"] / limit, 3)
                                         if pipe["fastest_full_batch_volumes_per_second"] else None),
        "input_share": pipe["input_share"], "pipeline": pipe, "variants": best,
        "command": " ".join(["python", "benchmarks/bench_train_pipeline.py", *sys.argv[1:]]),
    }
    print(json.dumps({k: result[k] for k in ("ratio_to_adjacent_limit_median", "limit_volumes_per_second", "pipeline_train_volumes_per_second",
                                             "ratio_pipeline_to_limit", "ratio_epoch_to_limit",
                                             "ratio_fastest_epoch_to_limit", "ratio_fastest_batch_to_limit",
                                             "input_share")}))
    _merge(args.out, f"{device.type}-{args.grid}" + ("-lesion" if args.supervision == "lesion" else ""), result)


def bare_only(args: argparse.Namespace, device: torch.device, load_start: list[float], started: str) -> None:
    """``--bare-only``: the variants of the bare loop, no pipeline."""
    config = make_config(args.grid, Path("unused"), args.device, 1, args.batch_size)
    variants = ["policy", *[v for v in args.variants if v not in ("compile", "policy", "fp32")]]
    best = bare_loops(config, device, variants, args.iters, args.warmup)
    if "compile" in args.variants and not args.no_compile:
        best["compile"] = compile_in_child(args, args.compile_timeout)
    for row in best.values():
        if "volumes_per_second" in row:
            row["vs_fp32"] = round(row["volumes_per_second"] / best["policy"]["volumes_per_second"], 3)
        print(json.dumps(row))
    result = {
        "measured": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(device), "device": device.type, "torch": torch.__version__,
        "load_average_start": load_start, "load_average_end": _load(), "grid": args.grid, "depth": config.depth,
        "widen_factor": config.widen_factor, "spacing": list(config.spacing), "shape": list(config.shape),
        "batch_size": config.batch_size, "variants": best,
        "command": " ".join(["python", "benchmarks/bench_train_pipeline.py", *sys.argv[1:]]),
    }
    _merge(args.out, f"{device.type}-{args.grid}-bare", result)


def _merge(out: Path, key: str, result: dict[str, Any]) -> None:
    results = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    runs = results.setdefault("pipeline", {})
    if key in runs:  # the machine may be shared: keep the headline figures of the last runs
        previous = runs[key]
        headline = ("measured", "load_average_start", "load_average_end", "ratio_to_adjacent_limit_median",
                    "limit_volumes_per_second", "pipeline_train_volumes_per_second", "input_share")
        earlier = [{k: previous.get(k) for k in headline if k in previous}, *previous.get("earlier", [])]
        result["earlier"] = earlier[:5]
    runs[key] = result
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
