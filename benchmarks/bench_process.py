"""Benchmark: the whole ``fcd detect`` process against the same work in-process, as a ratio.

What a user waits for is the process: Python start, imports, then the work. On a 1 mm
197x233x189 scan (nilearn's MNI152 2009 template, as in bench_detect.py), ResNet-18 at the
default grid, Grad-CAM, it measures in one run:

- the wall time of ``python -m FCDDetectLib.cli detect ...`` (a fresh process each time);
- the same ``fcd detect`` call in this process after a warm-up (imports already paid);
- ``fcd --help`` and ``fcd detect --help`` as processes;
- the peak RSS of those processes (by depth and grid size: ``bench_memory.py``);
- the heatmap's gzip level: seconds to write and bytes on disk at levels 1, 6 and 9.

The machine's load average is recorded beside the figures: on a shared machine the
absolute seconds are unreliable, the ratios (measured back to back) much less so.

Usage:
    nice -n 10 python benchmarks/bench_process.py [--repeats 2]
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
from pathlib import Path

# The peak RSS is the child's own peak since its exec, read by bench_memory.status_kb (VmHWM;
# ru_maxrss would also hold this benchmark's own peak at the child's start: see bench_memory.py).
_HARNESS = (
    "import json, sys\n"
    f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
    "from bench_memory import status_kb\n"
    "from FCDDetectLib.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps({'code': code, 'peak_rss_mb': status_kb('VmHWM') / 1024}), file=sys.stderr)\n"
)


def seeded_bundle(folder: Path, depth: int, spacing, shape) -> Path:
    import torch
    from bench_detect import SEEDED_WEIGHTS
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(SEEDED_WEIGHTS)  # a Grad-CAM non-zero in the whole head, as in bench_detect.py
    meta = BundleMetadata(name=f"bench-resnet{depth}", depth=depth, geometry="paper", modalities=["t1"],
                          target_spacing=list(spacing), target_shape=list(shape))
    name = f"resnet{depth}-{'x'.join(str(s) for s in shape)}.fcdbundle"
    return save_bundle(folder / name, build_resnet(depth, in_channels=1, geometry="paper"), meta)


def _process(args: list[str], harness: bool = False) -> tuple[float, dict]:
    command = [sys.executable, "-c", _HARNESS, *args] if harness else [sys.executable, "-m", "FCDDetectLib.cli", *args]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    info = json.loads(result.stderr.strip().splitlines()[-1]) if harness else {}
    return seconds, info


def _help_seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def _gzip_levels(heatmap, affine, folder: Path) -> list[dict]:
    import nibabel as nib
    from nibabel.openers import Opener

    rows = []
    default = Opener.default_compresslevel
    try:
        for level in (1, 6, 9):
            Opener.default_compresslevel = level
            path = folder / f"heat-{level}.nii.gz"
            start = time.perf_counter()
            nib.save(nib.Nifti1Image(heatmap, affine), path)
            rows.append({"level": level, "write_seconds": round(time.perf_counter() - start, 3),
                         "megabytes": round(path.stat().st_size / 1e6, 2)})
    finally:
        Opener.default_compresslevel = default
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from bench_detect import _mni_volume  # the same 1 mm scan as bench_detect.py
    from FCDDetectLib.cli import main as fcd_main
    from FCDTrainLib.run_folder.run_config import RunConfig  # the model grid's defaults are declared there

    DEFAULT_SPACING, DEFAULT_SHAPE = RunConfig.defaults()["spacing"], RunConfig.defaults()["shape"]

    load_before = os.getloadavg()
    report: dict = {
        "benchmark": "fcd detect as a process vs in-process, Grad-CAM, MNI152 1 mm 197x233x189, ResNet-18",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU",
        "python": platform.python_version(),
    }
    report["help_seconds"] = {"fcd --help": _help_seconds(["--help"], 3),
                              "fcd detect --help": _help_seconds(["detect", "--help"], 3)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = _mni_volume(folder)
        bundle = seeded_bundle(folder, 18, DEFAULT_SPACING, DEFAULT_SHAPE)

        def detect_args(model: Path, out: str) -> list[str]:
            return ["detect", "--model", str(model), "--image", str(image), "--device", "cpu", "--out", str(folder / out)]

        process_s, rss = [], []
        for i in range(args.repeats):
            seconds, info = _process(detect_args(bundle, f"p{i}"), harness=True)
            process_s.append(seconds)
            rss.append(info["peak_rss_mb"])
        fcd_main(detect_args(bundle, "warm"))  # warm-up: imports, allocator
        inproc_s = []
        for i in range(args.repeats):
            start = time.perf_counter()
            if fcd_main(detect_args(bundle, f"i{i}")) != 0:
                raise RuntimeError("in-process fcd detect failed")
            inproc_s.append(time.perf_counter() - start)
        process, inproc = statistics.median(process_s), statistics.median(inproc_s)
        report["detect"] = {
            "process_seconds": [round(t, 2) for t in process_s],
            "in_process_seconds": [round(t, 2) for t in inproc_s],
            "ratio_process_to_in_process": round(process / inproc, 2),
            "process_overhead_seconds": round(process - inproc, 2),
        }

        report["detect"]["process_peak_rss_mb"] = [round(value) for value in rss]  # by depth and grid: bench_memory.py

        import nibabel as nib

        heat = nib.load(folder / "i0" / "heatmap.nii.gz")
        report["heatmap_gzip"] = _gzip_levels(heat.get_fdata(dtype="float32"), heat.affine, folder)
    report["load_average_before_after"] = [round(load_before[0], 1), round(os.getloadavg()[0], 1)]
    text = json.dumps(report, indent=2)
    print(text)
    out = Path(__file__).with_name("results-process.json")
    out.write_text(text + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
