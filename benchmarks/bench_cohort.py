"""Benchmark: cohort detection against a shell loop of single ``fcd detect`` calls, and DICOM vs NIfTI reading.

1. Throughput. 20 synthetic subjects (3 mm heads, 64x72x60 int16 NIfTI) and a tiny
   ResNet-18 bundle (width 1/8, 32^3 model grid at 5 mm, untrained: speed does not depend on
   the weights). In one run it times, as whole processes:
   - a loop of 20 ``python -m FCDDetectLib.cli detect --image ...`` calls (what a shell loop does:
     every call imports torch/MONAI and loads the model again);
   - one ``fcd detect --data FOLDER`` with ``--workers 1`` and with ``--workers 2``.
   It prints subjects per minute for each and the ratio to the loop.
2. Reading. One 1 mm scan (192x224x192 int16) as a DICOM series (192 files), as ``.nii.gz``
   and as ``.nii``: seconds of ``load_image`` (median of 3 after a warm-up), and for DICOM
   the header scan/checks (pydicom) apart from the voxel reading (SimpleITK).

Results go to ``benchmarks/results-cohort.json`` with the machine named. Run it with
``nice -n 10 python benchmarks/bench_cohort.py`` (a few minutes on a 2-core CPU).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "FCDDetect"), str(ROOT / "FCDTrain"), str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _bundle(folder: Path) -> Path:
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(0)
    meta = BundleMetadata(name="bench-tiny", depth=18, geometry="medicalnet", modalities=["flair"],
                          target_spacing=[5.0, 5.0, 5.0], target_shape=[32, 32, 32])
    return save_bundle(folder / "tiny.fcdbundle", build_resnet(18, 1, widen_factor=0.125), meta)


def _subjects(folder: Path, n: int) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    from Testing.builders.geometry_fixtures import centred_affine, head_phantom, write_nifti

    shape = (64, 72, 60)
    affine = centred_affine((3.0, 3.0, 3.0), shape)
    paths = []
    for number in range(n):
        scan = np.round(head_phantom(affine, shape, radii_mm=(70.0, 85.0, 65.0), seed=number)).astype(np.int16)
        paths.append(write_nifti(folder / "images" / f"s{number:02d}.nii.gz", scan, affine))
    return paths


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_throughput(folder: Path, n: int) -> dict:
    bundle = _bundle(folder)
    images = _subjects(folder, n)
    cli = [sys.executable, "-m", "FCDDetectLib.cli", "detect", "--model", str(bundle), "--device", "cpu"]
    loop = sum(_run([*cli, "--image", str(p), "--out", str(folder / "loop" / p.name.split(".")[0])]) for p in images)
    figures = {"subjects": n, "shell_loop_s": round(loop, 2), "shell_loop_subjects_per_min": round(60 * n / loop, 2)}
    for workers in (1, 2):
        seconds = _run([*cli, "--data", str(folder / "images"), "--out", str(folder / f"cohort{workers}"),
                        "--workers", str(workers)])
        figures[f"cohort_workers{workers}_s"] = round(seconds, 2)
        figures[f"cohort_workers{workers}_subjects_per_min"] = round(60 * n / seconds, 2)
        figures[f"cohort_workers{workers}_speedup_vs_loop"] = round(loop / seconds, 2)
    return figures


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_reading(folder: Path, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from FCDDetectLib.io.dicom_series import find_series, read_series
    from FCDDetectLib.io.image_io import load_image

    from Testing.builders.format_fixtures import write_dicom_series
    from Testing.builders.geometry_fixtures import centred_affine, head_phantom, write_nifti

    shape = (192, 224, 192)
    affine = centred_affine((1.0, 1.0, 1.0), shape, lps=True)
    scan = np.round(head_phantom(affine, shape, radii_mm=(70.0, 85.0, 65.0))).astype(np.int16)
    dicom = write_dicom_series(folder / "dicom1mm", scan, affine)[0].parent
    gz = write_nifti(folder / "scan1mm.nii.gz", scan, affine)
    raw = write_nifti(folder / "scan1mm.nii", scan, affine)
    series = find_series(dicom, None, "bench")
    return {
        "shape": list(shape),
        "dicom_files": len(series.files),
        "dicom_load_image_s": round(_median_time(lambda: load_image(dicom), repeats), 3),
        "dicom_headers_and_checks_s": round(_median_time(lambda: find_series(dicom, None, "bench"), repeats), 3),
        "dicom_voxels_simpleitk_s": round(_median_time(lambda: read_series(series, "bench"), repeats), 3),
        "nifti_gz_load_image_s": round(_median_time(lambda: load_image(gz), repeats), 3),
        "nifti_load_image_s": round(_median_time(lambda: load_image(raw), repeats), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results-cohort.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        folder = Path(tmp)
        reading = bench_reading(folder, args.repeats)
        print("reading:", json.dumps(reading, indent=2), flush=True)
        throughput = bench_throughput(folder, args.subjects)
        print("throughput:", json.dumps(throughput, indent=2), flush=True)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "python": platform.python_version(),
        "note": "one run; ratios are measured in the same run, absolute times are this machine's",
        "throughput": throughput,
        "reading": reading,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
