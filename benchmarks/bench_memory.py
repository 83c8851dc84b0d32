"""Benchmark: peak memory of detection and training, by depth and model-grid size.

For ResNet-18 and ResNet-50 and three model grids covering the same field of view (about
192 x 224 x 192 mm: 3 mm 64 x 75 x 64, 2.4 mm 80 x 93 x 80, and the default 2 mm
96 x 112 x 96), each figure is taken in a fresh child process, so one measurement's
allocations cannot raise the next one's peak:

- **detection, whole process**: peak RSS (``VmHWM``: a child's ``ru_maxrss`` also holds its parent's peak) of a real ``fcd detect`` call
  (Grad-CAM, the 1 mm 197 x 233 x 189 MNI152 scan of ``bench_detect.py``), ``--repeats``
  processes each (the allocator's peak varies between identical runs);
- **detection, per stage**: the stages of ``bench_detect.run_stages`` in one process, the
  kernel's peak-RSS counter reset before each stage (``/proc/self/clear_refs``), so each
  stage's own peak is seen, and on CUDA the peak of PyTorch's allocator per stage;
- **training**: peak RSS (and on CUDA peak device memory) of a training step as
  ``fcd train`` takes it (rotation, forward, cross-entropy, backward, Adam; bf16 autocast
  on CUDA) on random tensors, batch 2 on CPU and 8 on CUDA, and the RSS before the first
  step (imports and model), so what the step adds is visible.

Figures go to ``benchmarks/results-memory-<device>.json`` and are printed.

Usage:
    nice -n 10 python benchmarks/bench_memory.py [--device cpu|cuda] [--depths 18 50]
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

HERE = Path(__file__).resolve().parent
# (spacing mm, shape): the same field of view at three voxel counts; the last is RunConfig's default
GRIDS = [((3.0, 3.0, 3.0), (64, 75, 64)), ((2.4, 2.4, 2.4), (80, 93, 80)), ((2.0, 2.0, 2.0), (96, 112, 96))]


# Peak RSS is VmHWM, not getrusage's ru_maxrss: on Linux a child's ru_maxrss also holds the
# parent's peak RSS at the time it was started (subprocess starts children with vfork, and
# exec records the memory it leaves, the parent's, as the child's maximum), so every child of
# a parent that had loaded torch and built ResNet-50 bundles reported that parent's 1.3 GB.
# VmHWM is the peak of the child's own memory since its exec.


def _mb(kilobytes: float) -> float:
    return round(kilobytes / 1024, 1)


def status_kb(field: str) -> int:
    """One ``/proc/self/status`` figure in kB (``VmRSS``: now, ``VmHWM``: peak since the last reset).

    Where the kernel (or a sandbox such as gVisor) does not report ``VmHWM``, the peak falls
    back to ``ru_maxrss``, which can hold the parent's peak (see the note above).
    """
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    if field == "VmHWM":
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset the peak-RSS counter (Linux >= 4.0: VmHWM := VmRSS); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
    except OSError:
        return False
    return True


def _cuda_peak_mb(device: str) -> float | None:
    import torch

    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _child_stages(bundle: Path, image: Path, device: str, out: Path) -> dict:
    import torch
    from bench_detect import run_stages

    rows = []

    def stage(name: str, fn):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = status_kb("VmRSS")
        reset = _reset_peak()
        value = fn()
        rows.append({"stage": name, "rss_before_mb": _mb(before), "peak_rss_mb": _mb(status_kb("VmHWM")),
                     "peak_since": "stage start" if reset else "process start",
                     "cuda_peak_allocated_mb": _cuda_peak_mb(device)})
        return value

    run_stages(bundle, image, device, out, stage)
    return {"stages": rows}


def _child_train(depth: int, shape: tuple[int, ...], device: str, batch_size: int) -> dict:
    import torch
    import torch.nn.functional as F
    from FCDDetectLib.networks.resnets import build_resnet
    from FCDTrainLib.training.augment import random_rotate
    from FCDTrainLib.training.fold_model import autocast_context

    torch.manual_seed(0)
    model = build_resnet(depth, geometry="paper").to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, *shape, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    generator = torch.Generator().manual_seed(0)
    before = status_kb("VmRSS")
    for _ in range(2):  # the second step has Adam's state allocated
        with autocast_context(torch.device(device)):
            logits = model(random_rotate(x, 15.0, generator))
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"rss_before_first_step_mb": _mb(before), "cuda_peak_allocated_mb": _cuda_peak_mb(device)}


def _run_child(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                            cwd=HERE)
    if result.returncode != 0:
        raise RuntimeError(f"child {' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["process", "stages", "train"], required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--shape", type=int, nargs=3)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--image", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    if args.child == "process":
        from FCDDetectLib.cli import main as fcd_main

        code = fcd_main(["detect", "--model", str(args.bundle), "--image", str(args.image), "--device", args.device,
                         "--out", str(args.out)])
        if code != 0:
            raise SystemExit(f"fcd detect exited {code}")
        figures: dict = {"cuda_peak_allocated_mb": _cuda_peak_mb(args.device)}
    elif args.child == "stages":
        figures = _child_stages(args.bundle, args.image, args.device, args.out)
    else:
        figures = _child_train(args.depth, tuple(args.shape), args.device, args.batch_size)
    figures["peak_rss_mb"] = _mb(status_kb("VmHWM"))  # not ru_maxrss (see the note above _mb)
    print(json.dumps(figures))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return _child(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default: 2 on CPU, 8 on CUDA)")
    parser.add_argument("--repeats", type=int, default=2, help="fcd detect processes per depth and grid")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results-memory-<device>.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, str(HERE))
    from bench_detect import _mni_volume  # the same 1 mm scan as bench_detect.py
    from bench_process import seeded_bundle

    batch = args.batch_size or (8 if args.device == "cuda" else 2)
    load_before = os.getloadavg()[0]
    detection, training = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = _mni_volume(folder)
        for depth in args.depths:
            for spacing, shape in GRIDS:
                grid = {"depth": depth, "spacing_mm": list(spacing), "grid": list(shape),
                        "voxels": shape[0] * shape[1] * shape[2]}
                bundle = seeded_bundle(folder, depth, spacing, shape)
                common = ["--device", args.device, "--bundle", str(bundle), "--image", str(image)]
                tag = f"{depth}-{shape[0]}"
                process = [_run_child(["--child", "process", *common, "--out", str(folder / f"p{tag}-{i}")])
                           for i in range(args.repeats)]  # the allocator's peak varies from run to run
                stages = _run_child(["--child", "stages", *common, "--out", str(folder / f"s{tag}")])
                detection.append({**grid, "process_peak_rss_mb": [run["peak_rss_mb"] for run in process],
                                  "process_cuda_peak_allocated_mb": [run["cuda_peak_allocated_mb"] for run in process],
                                  "stages": stages["stages"]})
                train = _run_child(["--child", "train", "--device", args.device, "--depth", str(depth),
                                    "--shape", *map(str, shape), "--batch-size", str(batch)])
                training.append({**grid, "batch_size": batch, **train})
                print(f"resnet{depth} {shape}: detect process {[run['peak_rss_mb'] for run in process]} MB, "
                      f"train step {train['peak_rss_mb']} MB (before the first step {train['rss_before_first_step_mb']} MB)")
    import torch

    report = {
        "benchmark": "peak memory of fcd detect (Grad-CAM, MNI152 1 mm 197x233x189) and of a training step, "
                     "untrained weights, each figure in a fresh process",
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "detection": detection,
        "training": training,
    }
    out = args.out or HERE / f"results-memory-{args.device}.json"
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
