"""Training throughput: volumes per second of a full training step, ResNet-18 and ResNet-50.

One step is what ``fcd train`` does per batch: random rotation (on the training device),
forward, cross-entropy, backward and an Adam update; bf16 autocast on CUDA. Inputs are
random tensors on the default model grid (RunConfig's defaults: 2 mm, 96 x 112 x 96).
Figures go to ``benchmarks/results-train.json`` (merged per device) and are printed.
An estimated epoch time at the paper's scale (170 subjects, 5 folds: 109 training and
27 validation volumes per fold) is derived from the measured throughput.

Usage:
    python benchmarks/bench_train.py                       # CPU, and CUDA when available
    python benchmarks/bench_train.py --device cpu --iters 2 --batch-size 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from FCDDetectLib.choices import DEVICES, GEOMETRIES
from FCDDetectLib.networks.resnets import build_resnet
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.training.augment import random_rotate
from FCDTrainLib.training.fold_model import autocast_context

DEFAULT_SPACING, DEFAULT_SHAPE = RunConfig.defaults()["spacing"], RunConfig.defaults()["shape"]

RESULTS = Path(__file__).with_name("results-train.json")
PAPER_TRAIN, PAPER_VAL = 109, 27  # 170 subjects: 4/5 for training, of which 80 % train, 20 % validation


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench(depth: int, device: str, batch_size: int, iters: int, warmup: int, shape, geometry: str) -> dict:
    torch.manual_seed(0)
    model = build_resnet(depth, geometry=geometry).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, *shape, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    generator = torch.Generator().manual_seed(0)

    def step():
        xb = random_rotate(x, 15.0, generator)
        with autocast_context(torch.device(device)):  # training's own policy: bf16 on CUDA, none on CPU
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    train_seconds = (time.perf_counter() - started) / iters

    model.eval()
    with torch.no_grad(), autocast_context(torch.device(device)):
        model(x)
        _sync(device)
        started = time.perf_counter()
        for _ in range(iters):
            model(x)
        _sync(device)
    eval_seconds = (time.perf_counter() - started) / iters
    train_vps = batch_size / train_seconds
    eval_vps = batch_size / eval_seconds
    return {
        "depth": depth, "geometry": geometry, "device": device, "device_name": _device_name(device),
        "shape": list(shape), "spacing": list(DEFAULT_SPACING), "batch_size": batch_size, "iters": iters,
        "warmup": warmup, "train_step_seconds": round(train_seconds, 4),
        "train_volumes_per_second": round(train_vps, 3), "eval_volumes_per_second": round(eval_vps, 3),
        "paper_scale_epoch_seconds": round(PAPER_TRAIN / train_vps + PAPER_VAL / eval_vps, 1),
        "autocast": "bf16" if device == "cuda" else None, "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=[*DEVICES, "all"], default="all")
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--batch-size", type=int, default=None, help="default: 2 on CPU, 8 on CUDA")
    parser.add_argument("--iters", type=int, default=None, help="timed steps (default: 2 on CPU, 20 on CUDA)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--shape", type=int, nargs=3, default=list(DEFAULT_SHAPE))
    parser.add_argument("--geometry", default="paper", choices=GEOMETRIES)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device == "auto":
        devices = ["cuda" if torch.cuda.is_available() else "cpu"]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    for device in devices:
        if device == "cuda":
            torch.backends.cudnn.benchmark = True
        batch = args.batch_size or (8 if device == "cuda" else 2)
        iters = args.iters or (20 if device == "cuda" else 2)
        figures = [bench(depth, device, batch, iters, args.warmup, args.shape, args.geometry) for depth in args.depths]
        for row in figures:
            print(json.dumps(row))
        results[device] = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": figures,
                           "cpu_count": os.cpu_count()}
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
