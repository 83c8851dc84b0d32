"""Training throughput of the real pipeline against its limit, and CPU trials (issue 15 item 3).

One run, one network, one grid, one batch size (``RunConfig.preset("demo")`` by default,
``--grid default`` for RunConfig's defaults), on one device:

- **limit**: a bare loop of forward + cross-entropy + backward + Adam on random tensors
  already on the device, under the Trainer's own precision policy
  (:func:`FCDTrainLib.trainer._autocast`: bf16 on CUDA, fp32 on CPU); no augmentation,
  no batch assembly.
- **variants** of that loop on the same tensors: ``fp32`` (plain), ``channels_last``
  (``channels_last_3d`` model and input), ``bf16`` (``torch.autocast`` bf16 on the
  device), ``compile`` (``torch.compile`` of the model, in a child process with a time
  limit, so a compiler that hangs or fails is recorded, not fatal), ``fp32_fill`` (what
  ``fcd train`` did on the CPU before :func:`FCDTrainLib.train_run.deterministic_cpu`).
  The variants' steps are interleaved; each reports its fastest step (the machine may be
  shared: the quickest step is the least disturbed one) and its median.
- **pipeline**: the project's :class:`FCDTrainLib.trainer.Trainer` (``fit()`` for
  ``--epochs`` epochs, checkpoints and all) on a real small cohort: written by the
  project's synthetic generator (:func:`FCDTrainLib.data.synth.synth_cohort`, what
  ``fcd synth`` runs), planned into folds and preprocessed through the real
  :class:`FCDTrainLib.cache.VolumeCache` and :func:`FCDTrainLib.train_run.fold_data`, as
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

Usage:
    nice -n 10 python benchmarks/bench_train_pipeline.py                  # demo grid, CPU
    python benchmarks/bench_train_pipeline.py --grid default --device cuda --subjects 60
    python benchmarks/bench_train_pipeline.py --variants fp32 bf16 --no-compile --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from FCDTrainLib.run_config import RunConfig

RESULTS = Path(__file__).with_name("results-train.json")
VARIANTS = ("fp32", "fp32_fill", "channels_last", "bf16", "compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_config(grid: str, cohort: Path, device: str, epochs: int, batch_size: int | None) -> RunConfig:
    """The run's config: the demo preset or RunConfig's defaults, ``epochs`` epochs, fold 0 only."""
    overrides: dict[str, Any] = {"data": str(cohort), "device": device, "max_epochs": epochs,
                                 "early_stop_patience": epochs + 1}
    if batch_size:
        overrides["batch_size"] = batch_size
    if grid == "demo":
        return RunConfig.preset("demo", **overrides)
    return RunConfig(**overrides)


# ------------------------------------------------------------------------ the limit
def _variant_context(variant: str, device: torch.device):
    from FCDTrainLib.trainer import _autocast

    if variant == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if variant in ("policy", "fp32_fill"):
        return _autocast(device)
    return nullcontext()


class BareLoop:
    """Forward + CE + backward + Adam on random tensors on ``device``, one variant.

    ``policy``: the Trainer's precision (the limit); ``fp32``; ``fp32_fill`` (fp32 with
    ``torch.utils.deterministic.fill_uninitialized_memory`` on, as ``fcd train`` ran before
    :func:`FCDTrainLib.train_run.deterministic_cpu`); ``channels_last``; ``bf16``; ``compile``.
    Each :meth:`step` returns its wall time; the first step (for ``compile``: the
    compilation) is timed in ``first_step_seconds``.
    """

    def __init__(self, config: RunConfig, device: torch.device, variant: str) -> None:
        from FCDTrainLib.trainer import build_model

        self.config, self.device, self.variant = config, device, variant
        model, _ = build_model(config, 0)  # the fold's very network and initialisation
        model.to(device).train()
        self.x = torch.randn(config.batch_size, len(config.modalities), *config.shape, device=device)
        self.y = torch.randint(0, 2, (config.batch_size,), device=device)
        if variant == "channels_last":
            model = model.to(memory_format=torch.channels_last_3d)
            self.x = self.x.contiguous(memory_format=torch.channels_last_3d)
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.forward = torch.compile(model) if variant == "compile" else model
        self.times: list[float] = []
        self.first_step_seconds = self.step(record=False)

    def step(self, record: bool = True) -> float:
        fill = torch.utils.deterministic.fill_uninitialized_memory
        if self.variant == "fp32_fill":
            torch.utils.deterministic.fill_uninitialized_memory = torch.are_deterministic_algorithms_enabled()
        try:
            _sync(self.device)
            started = time.perf_counter()
            with _variant_context(self.variant, self.device):
                logits = self.forward(self.x)
            loss = F.cross_entropy(logits.float(), self.y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            _sync(self.device)
            seconds = time.perf_counter() - started
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = fill
        if record:
            self.times.append(seconds)
        return seconds

    def figures(self) -> dict[str, Any]:
        """Fastest and median step (the fastest is the least disturbed on a shared machine)."""
        fastest, median = min(self.times), statistics.median(self.times)
        batch = self.config.batch_size
        return {"variant": self.variant, "steps": len(self.times), "step_seconds_min": round(fastest, 4),
                "step_seconds_median": round(median, 4), "volumes_per_second": round(batch / fastest, 3),
                "volumes_per_second_median": round(batch / median, 3),
                "first_step_seconds": round(self.first_step_seconds, 2)}


def bare_loops(config: RunConfig, device: torch.device, variants: list[str], iters: int,
               warmup: int) -> dict[str, dict[str, Any]]:
    """Every variant's :class:`BareLoop`, their steps interleaved (one of each in turn), so a
    change of the machine's load falls on all of them alike."""
    loops = [BareLoop(config, device, variant) for variant in variants]
    for _ in range(max(0, warmup - 1)):
        for loop in loops:
            loop.step(record=False)
    for _ in range(iters):
        for loop in loops:
            loop.step()
    return {loop.variant: loop.figures() for loop in loops}


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


# --------------------------------------------------------------------- the pipeline
def timed_trainer_class(device: torch.device, limit: BareLoop, limit_steps: int):
    """A :class:`Trainer` whose hooks add their wall time to ``self.seconds`` (the real hooks run).

    After each training epoch (outside its timers) ``limit`` takes ``limit_steps`` steps, so
    each epoch has a measurement of the limit taken under the same load.
    """
    from FCDTrainLib.trainer import Trainer

    class TimedTrainer(Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.epochs: list[dict[str, Any]] = []
            self.seconds: dict[str, Any] = {}

        def _timed(self, name: str, call, *args: Any):
            _sync(device)
            started = time.perf_counter()
            result = call(*args)
            _sync(device)
            seconds = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            if name in ("batch_train", "augment", "step") and self.seconds.get("iterations"):
                self.seconds["iterations"][-1][1] += seconds  # this batch's input + step time
            return result

        def batch(self, x, y, index, part):
            if part == "train":
                self.seconds["iterations"] = [*self.seconds.get("iterations", []), [int(index.numel()), 0.0]]
            return self._timed(f"batch_{part}", super().batch, x, y, index, part)

        def augment(self, batch, generator):
            return self._timed("augment", super().augment, batch, generator)

        def step(self, batch):
            return self._timed("step", super().step, batch)

        def validation_metrics(self):
            return self._timed("validation", super().validation_metrics)

        def save_checkpoint(self, payload):
            return self._timed("checkpoint", super().save_checkpoint, payload)

        def _train_epoch(self, generator):
            self.seconds = {}
            result = self._timed("train_epoch", super()._train_epoch, generator)
            self.seconds["limit_steps"] = [limit.step() for _ in range(limit_steps)]
            self.epochs.append(self.seconds)
            return result

    return TimedTrainer


def pipeline(config: RunConfig, work: Path, device: torch.device, n_subjects: int,
             cohort: Path | None, limit_steps: int = 2) -> dict[str, Any]:
    """Cohort -> folds -> VolumeCache -> fold_data -> Trainer.fit(), timed (see the module docstring)."""
    from FCDTrainLib.cache import VolumeCache
    from FCDTrainLib.data.synth import synth_cohort
    from FCDTrainLib.events import EventLog
    from FCDTrainLib.layout import RunLayout
    from FCDTrainLib.train_run import fold_data, prepare

    figures: dict[str, Any] = {}
    if cohort is None:
        cohort = work / "cohort"
        started = time.perf_counter()
        synth_cohort(cohort, n_subjects, seed=0, size="small")
        figures["synth_seconds"] = round(time.perf_counter() - started, 1)
    run_dir = work / "run"
    subjects, _, folds = prepare(config, run_dir)
    split = folds[0]
    by_id = {s.subject_id: s for s in subjects}
    layout = RunLayout(run_dir)
    cache = VolumeCache(layout.cache, config.spacing, config.shape, config.modalities)
    started = time.perf_counter()
    cache.build([by_id[i] for i in (*split.train, *split.val)])
    figures["cache_build_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    data = fold_data(config, split, by_id, cache, device.type)
    figures["fold_data_seconds"] = round(time.perf_counter() - started, 2)
    limit = BareLoop(config, device, "policy")
    trainer = timed_trainer_class(device, limit, limit_steps)(
        config, 0, data, layout.fold(0), EventLog(run_dir / "events.jsonl"), device=device, progress=False)
    started = time.perf_counter()
    outcome = trainer.fit()
    _sync(device)
    fit_seconds = time.perf_counter() - started
    n_train, n_val = int(data.train_x.shape[0]), int(data.val_x.shape[0])
    steady = trainer.epochs[1:] or trainer.epochs  # the first epoch carries the first allocations
    total = {key: sum(epoch.get(key, 0.0) for epoch in steady) for key in
             ("train_epoch", "batch_train", "augment", "step", "validation", "checkpoint")}
    train_volumes = n_train * len(steady)
    full = [seconds for epoch in steady for size, seconds in epoch.get("iterations", []) if size == config.batch_size]
    epoch_seconds = [h["seconds"] for h in outcome.history]
    # per epoch: the pipeline's training volumes/s against the limit's fastest step right after it
    ratios = [(n_train / epoch["train_epoch"]) / (config.batch_size / min(epoch["limit_steps"]))
              for epoch in steady if epoch["limit_steps"]]
    figures.update({
        "ratio_per_epoch_to_adjacent_limit": [round(r, 3) for r in ratios],
        "ratio_to_adjacent_limit_median": round(statistics.median(ratios), 3) if ratios else None,
        "adjacent_limit_volumes_per_second": [round(config.batch_size / min(e["limit_steps"]), 3)
                                              for e in steady if e["limit_steps"]],
        "subjects": len(subjects), "n_train": n_train, "n_val": n_val, "epochs": outcome.epochs_run,
        "epochs_timed": len(steady), "fit_seconds": round(fit_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "train_volumes_per_second": round(train_volumes / total["train_epoch"], 3),
        "epoch_volumes_per_second": round(train_volumes / sum(epoch_seconds[-len(steady):]), 3),
        "seconds_per_train_epoch": {key: round(value / len(steady), 3) for key, value in total.items()},
        "input_share": round((total["batch_train"] + total["augment"]) / total["train_epoch"], 3),
        "augment_share": round(total["augment"] / total["train_epoch"], 3),
        "batch_share": round(total["batch_train"] / total["train_epoch"], 3),
        "step_share": round(total["step"] / total["train_epoch"], 3),
        "first_epoch_train_seconds": round(trainer.epochs[0]["train_epoch"], 2),
        "fastest_epoch_train_volumes_per_second": round(n_train / min(e["train_epoch"] for e in steady), 3),
        "fastest_full_batch_seconds": round(min(full), 4) if full else None,
        "fastest_full_batch_volumes_per_second": round(config.batch_size / min(full), 3) if full else None,
    })
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("demo", "default"), default="demo",
                        help="demo: RunConfig.preset('demo') (ResNet-18 x0.25, 4 mm, 48x56x48, batch 8); "
                             "default: RunConfig's defaults (2 mm, 96x112x96)")
    from FCDDetectLib.choices import DEVICES

    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--subjects", type=int, default=50,
                        help="synthetic cohort size (fold 0 of 5 is trained: 32 training volumes of 50)")
    parser.add_argument("--cohort", type=Path, default=None, help="use this cohort folder instead of a new one")
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
        from FCDTrainLib.train_run import deterministic_cpu

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
        config = make_config(args.grid, args.cohort or work / "cohort", args.device, args.epochs, args.batch_size)
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
        "grid": args.grid, "depth": config.depth, "widen_factor": config.widen_factor, "geometry": config.geometry,
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
    _merge(args.out, f"{device.type}-{args.grid}", result)


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
    results = json.loads(out.read_text()) if out.is_file() else {}
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
