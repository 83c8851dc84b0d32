"""Benchmark: ``fcd detect`` seconds on a 1 mm 197x233x189 brain, against a bare forward pass.

The scan is nilearn's MNI152 2009 T1 template (shipped inside the package). For
ResNet-18 and ResNet-50, and a ResNet-18 with the lesion head (untrained weights, seeded:
see SEEDED_WEIGHTS) at the default model grid, it times

- ``in_process``: detection as the cohort runner, Ray workers and scripts run it, the bundle
  loaded once per process: :func:`~FCDDetectLib.detection.detect.detect` on the loaded bundle
  + :func:`~FCDDetectLib.outputs.detection_files.write_detection` (the committed output set);
- ``baseline``: the least any detection costs: reading the scan (nibabel), a bare forward pass
  of the same network on the preprocessed tensor (both outputs of a lesion network) and
  writing the same images (the detection's own arrays) and a JSON file with plain nibabel /
  ``json``, in the same run;
- ``end_to_end``: the whole ``fcd detect`` command run in-process (bundle loading included,
  as in Slicer's background process, which starts fresh for each detection);

and their ratios (issue 30's goal: ``in_process`` at most 1.5x ``baseline``), a bare forward
+ backward pass, and one timed pass of each stage (the profile table). It prints and writes
the figures to ``benchmarks/results-detect-<device>.json``.

Usage:
    python benchmarks/bench_detect.py [--device cpu|cuda] [--repeats 3] [--depths 18 50] [--no-lesion]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _mni_volume(folder: Path) -> Path:
    """nilearn's 1 mm MNI152 2009 T1 as ``load_mni152_template(resolution=1)`` gives it (float32, max 1).

    Read from nilearn's package data by the synthetic generator's reader, without importing
    ``nilearn.datasets`` (4 s, and it needs ``requests``, which the GPU machine may lack).
    """
    import nibabel as nib
    from FCDTrainLib.data.synth.template import read_1mm

    data, affine = read_1mm("t1")
    path = folder / "mni152_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.array(data, dtype=np.float32), affine), path)
    return path


# Speed does not depend on the weights, but the work after the network does on the map: an
# untrained network's Grad-CAM (ReLU'd) may be zero in the whole head, and then mapping back and
# clusters have nothing to do. Seed 0 gives ResNet-18 and ResNet-50 maps that are non-zero in the
# whole head (21.6 % and 21.8 % of the 1 mm volume, the head's share; seeds 1 and 3 of ResNet-18
# gave 1.4 % and 0 %), as a trained model's map is: the case a user waits longest for. Each
# result records the share (``heatmap_nonzero_fraction``).
SEEDED_WEIGHTS = 0


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocator, cuDNN autotune, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_depth(depth: int, device: str, repeats: int, image: Path, folder: Path, lesion: bool = False) -> dict:
    import json as json_module

    import nibabel as nib
    import torch
    from FCDDetectLib.cli import main as fcd_main
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.networks.bundle import load_bundle, save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.outputs.detection_files import write_detection
    from FCDTrainLib.run_folder.run_config import RunConfig

    DEFAULT_SPACING, DEFAULT_SHAPE = RunConfig.defaults()["spacing"], RunConfig.defaults()["shape"]
    from FCDDetectLib.grid.preprocess import preprocess
    from FCDDetectLib.io.image_io import load_image
    from FCDDetectLib.networks.lesion_resnet import build_lesion_resnet
    from FCDDetectLib.networks.resnets import build_resnet

    torch.manual_seed(SEEDED_WEIGHTS)  # untrained weights whose Grad-CAM covers the whole head
    model = (build_lesion_resnet if lesion else build_resnet)(depth, in_channels=1, geometry="paper")
    name = f"resnet{depth}" + ("-lesion" if lesion else "")
    meta = BundleMetadata(
        name=f"bench-{name}",
        depth=depth,
        geometry="paper",
        modalities=["t1"],
        target_spacing=list(DEFAULT_SPACING),
        target_shape=list(DEFAULT_SHAPE),
        head="lesion" if lesion else "none",
    )
    bundle_path = save_bundle(folder / f"{name}.fcdbundle", model, meta)
    out = folder / f"out-{name}"
    args = ["detect", "--model", str(bundle_path), "--image", str(image), "--device", device, "--out", str(out)]

    def end_to_end() -> None:
        if fcd_main(args) != 0:
            raise RuntimeError("fcd detect failed")

    end_to_end_s = _timed(end_to_end, repeats)
    nonzero = float((np.asarray(nib.load(out / "heatmap.nii.gz").dataobj) > 0).mean())

    bundle = load_bundle(bundle_path, device=device)
    net = bundle.model
    in_process_out = folder / f"in-process-{name}"
    results = []

    def in_process() -> None:
        results[:] = [detect(bundle, [image], device=device)]
        write_detection(results[0], in_process_out)

    in_process_s = _timed(in_process, repeats)
    x = preprocess([load_image(image)], DEFAULT_SPACING, DEFAULT_SHAPE).tensor.unsqueeze(0).to(device)

    def forward() -> None:
        with torch.no_grad():
            net.forward_with_lesion(x) if lesion else net(x)
        if device == "cuda":
            torch.cuda.synchronize()

    written = {"heatmap.nii.gz": (results[0].heatmap, np.float32),
               "clusters.nii.gz": (results[0].clusters.labels, np.int16)}
    if lesion:
        written.update({"lesion_map.nii.gz": (results[0].lesion_map, np.float32),
                        "lesion_clusters.nii.gz": (results[0].lesion_clusters.labels, np.int16)})
    affine = results[0].affine
    baseline_out = folder / f"baseline-{name}"
    baseline_out.mkdir(exist_ok=True)

    def baseline() -> None:
        np.asarray(nib.load(image).get_fdata(dtype=np.float32))
        forward()
        for file_name, (array, dtype) in written.items():
            nib.save(nib.Nifti1Image(np.asarray(array, dtype=dtype), affine), baseline_out / file_name)
        (baseline_out / "result.json").write_text(json_module.dumps(results[0].to_json()), encoding="utf-8")

    baseline_s = _timed(baseline, repeats)

    def forward_backward() -> None:
        # a full backward (to every parameter and the input), more than Grad-CAM needs
        inputs = x.clone().requires_grad_(True)
        net(inputs)[:, -1].sum().backward()
        net.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    forward_s = _timed(forward, repeats)
    forward_backward_s = _timed(forward_backward, repeats)
    e2e, fwd = statistics.median(end_to_end_s), statistics.median(forward_s)
    fwd_bwd = statistics.median(forward_backward_s)
    inner, base = statistics.median(in_process_s), statistics.median(baseline_s)
    return {
        "depth": depth,
        "model": name,
        "in_process_seconds_median": round(inner, 3),
        "in_process_seconds_all": [round(t, 3) for t in in_process_s],
        "baseline_seconds_median": round(base, 3),
        "baseline_seconds_all": [round(t, 3) for t in baseline_s],
        "ratio_in_process_to_baseline": round(inner / base, 2),
        "end_to_end_seconds_median": round(e2e, 3),
        "end_to_end_seconds_all": [round(t, 3) for t in end_to_end_s],
        "ratio_end_to_end_to_baseline": round(e2e / base, 2),
        "forward_seconds_median": round(fwd, 3),
        "forward_backward_seconds_median": round(fwd_bwd, 3),
        "ratio_end_to_end_to_forward": round(e2e / fwd, 2),
        "ratio_end_to_end_to_forward_backward": round(e2e / fwd_bwd, 2),
        "heatmap_nonzero_fraction": round(nonzero, 3),
        "stages_seconds": _stages(bundle_path, image, device, out),
    }


def _stages(bundle_path: Path, image: Path, device: str, out: Path) -> dict:
    """One timed pass of each stage of ``detect`` + ``write_detection``, in their order."""
    import torch

    times: dict[str, float] = {}

    def stage(name: str, fn):
        start = time.perf_counter()
        value = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times[name] = round(time.perf_counter() - start, 3)
        return value

    run_stages(bundle_path, image, device, out, stage)
    return times


def run_stages(bundle_path: Path, image: Path, device: str, out: Path, stage) -> None:
    """Run each stage of ``detect`` + ``write_detection`` once, in their order, as ``stage(name, fn)``.

    ``stage`` calls ``fn`` and returns its value; it measures what it likes around the call
    (seconds here, peak memory in ``bench_memory.py``).
    """
    from FCDDetectLib.detection.detect import explain_and_classify
    from FCDDetectLib.detection.lesion_map import lesion_map_of
    from FCDDetectLib.explain.cams import explain, minmax_normalise
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.grid.input_grid import to_input_grid
    from FCDDetectLib.grid.preprocess import LEFT_RIGHT_AXIS, preprocess
    from FCDDetectLib.io.atomic_files import write_json_atomic, write_text_atomic
    from FCDDetectLib.io.image_io import load_image, save_image
    from FCDDetectLib.maps.clusters import find_clusters
    from FCDDetectLib.maps.lesion_metrics import subject_lesion_metrics
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDDetectLib.outputs.cluster_files import clusters_csv

    bundle = stage("load bundle", lambda: load_bundle(bundle_path, device=device))
    scan = stage("read NIfTI.gz (1 mm)", lambda: load_image(image))
    meta = bundle.metadata
    prep = stage("preprocess (orient, resample, head mask, crop, z-score)",
                 lambda: preprocess([scan], meta.target_spacing, meta.target_shape))
    x = prep.tensor.unsqueeze(0).to(device)
    features: list | None = [] if meta.has_lesion_head else None
    heat, _ = stage("Grad-CAM (forward + backward to layer4, upsampling)",
                    lambda: explain_and_classify(bundle.model, x, "gradcam", 1, explain, features=features))
    mapped = stage("map back to the 1 mm grid", lambda: to_input_grid(heat, prep))
    head = stage("head mask on the 1 mm grid", lambda: head_mask(scan.array))
    heatmap = stage("restrict to the head + min-max", lambda: minmax_normalise(np.where(head, mapped, np.float32(0))))
    clusters = stage("clusters (threshold, 26-connected labels, ranking)",
                     lambda: find_clusters(heatmap, scan.affine, head_mask=head))
    stage("lesion figures (no ROI)", lambda: subject_lesion_metrics(heatmap, scan.affine, clusters, None))
    if meta.has_lesion_head:
        lesion = stage("lesion map (decoder on Grad-CAM's features, map back, head)",
                       lambda: lesion_map_of(bundle.model, x, prep, head, features))
        # what a model trained with --flip costs: one more encoder + decoder pass, on the mirror
        stage("lesion map mirrored left-right (lesion_mirror_axes [0]: + one whole pass)",
              lambda: lesion_map_of(bundle.model, x, prep, head, features, [LEFT_RIGHT_AXIS]))
        lesion_clusters = stage("lesion clusters", lambda: find_clusters(lesion, scan.affine, head_mask=head))
    stage("write heatmap.nii.gz", lambda: save_image(out / "stage-heatmap.nii.gz", heatmap, scan.affine))
    stage("write clusters.nii.gz/.csv", lambda: (
        save_image(out / "stage-clusters.nii.gz", clusters.labels, scan.affine, dtype=np.int16),
        write_text_atomic(out / "stage-clusters.csv", clusters_csv(clusters))))
    if meta.has_lesion_head:
        stage("write lesion_map.nii.gz, lesion_clusters.nii.gz", lambda: (
            save_image(out / "stage-lesion_map.nii.gz", lesion, scan.affine),
            save_image(out / "stage-lesion_clusters.nii.gz", lesion_clusters.labels, scan.affine, dtype=np.int16)))
    stage("write result.json", lambda: write_json_atomic(out / "stage-result.json", {"x": 1}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--no-lesion", action="store_true", help="skip the ResNet-18 with the lesion head")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target machine has 2)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results-detect-<device>.json")
    args = parser.parse_args(argv)

    import torch
    from FCDTrainLib.run_folder.run_config import RunConfig

    DEFAULT_SPACING, DEFAULT_SHAPE = RunConfig.defaults()["spacing"], RunConfig.defaults()["shape"]

    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = _mni_volume(folder)
        rows = [bench_depth(depth, args.device, args.repeats, image, folder) for depth in args.depths]
        if not args.no_lesion:
            rows.append(bench_depth(18, args.device, args.repeats, image, folder, lesion=True))
    report = {
        "benchmark": "fcd detect in-process and end to end against a bare forward + read + write, Grad-CAM, MNI152 1 mm 197x233x189",
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "cpu_threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model_grid_spacing_mm": list(DEFAULT_SPACING),
        "model_grid_shape": list(DEFAULT_SHAPE),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": round(load_at_start, 1),
        "results": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    out = args.out or Path(__file__).with_name(f"results-detect-{args.device}.json")
    out.write_text(text + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
