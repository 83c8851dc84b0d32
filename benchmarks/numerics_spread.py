"""Spread of the planted-model figures the numerics-sensitive tests judge, over seeds and threads.

The planted-evidence tests (``Testing/engine/test_explain.py``, ``Testing/engine/test_detect.py``)
train a tiny network; its floats, hence its heatmaps, differ between CPUs, BLAS builds,
thread counts and seeds. This script trains it for each seed x torch thread count and
prints, per test figure, the worst case over all of them, so that each test's margin is
a measurement (written in the test's comment), not a guess. Figures go to
``benchmarks/results-numerics.json``.

Usage::

    PYTHONPATH=FCDDetect:FCDTrain:. .venv/bin/python benchmarks/numerics_spread.py --seeds 0 1 2 3 4 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from FCDDetectLib.choices import EXPLANATION_METHODS

RESULTS = Path(__file__).with_name("results-numerics.json")


def explain_figures(planted) -> dict:
    from FCDDetectLib.choices import EXPLANATION_METHODS as METHODS
    from FCDDetectLib.explain.cams import explain

    from Testing.builders.planted_cases import CENTERS, local_heat_score

    out = {"accuracy": planted.accuracy,
           "p_blob_min": min(planted.probability(planted.make_volume(c, seed=sum(c))) for c in CENTERS),
           "p_control": planted.probability(planted.make_volume(None, seed=5))}
    for method in METHODS:
        rows = []
        for center in CENTERS:
            heat = explain(planted.model, planted.to_input(planted.make_volume(center, seed=sum(center))), method)
            roi = planted.blob_mask(center)
            top = heat >= np.quantile(heat, 0.99)
            peak = np.unravel_index(np.argmax(heat), heat.shape)
            rows.append({
                "peak_in_blob": bool(roi[peak]),
                "roi_max": float(heat[roi].max()),
                "centroid_vox": float(np.linalg.norm(np.argwhere(top).mean(0) - np.asarray(center))),
                "heat_score": local_heat_score(heat, roi),
                "in_out_ratio": float(heat[roi].mean() / heat[~roi].mean()),
            })
        out[method] = rows
    return out


def detect_figures(planted, folder: Path) -> dict:
    from FCDDetectLib.detection.detect import detect

    from Testing.builders.planted_cases import MODEL_SPACING, grid_case, model_affine
    from Testing.builders.planted_model import save_planted_bundle

    n = planted.shape[0]
    index_map = np.eye(4)
    index_map[:3, :3] = [[0, -1, 0], [0, 0, -1], [0.5, 0, 0]]
    index_map[:3, 3] = [n - 1, n - 1, 0]
    image, roi, control, blob_world = grid_case(planted, model_affine(planted.shape) @ index_map, (2 * n - 1, n, n))
    bundle = save_planted_bundle(planted, folder / f"p{id(planted)}.fcdbundle", target_spacing=(MODEL_SPACING,) * 3)
    out = {"p_control": detect(bundle, [control], device="cpu").probability}
    for method in EXPLANATION_METHODS:
        result = detect(bundle, [image], roi=roi, method=method, device="cpu")
        top = result.heatmap >= np.quantile(result.heatmap, 0.99)
        centroid = image.affine[:3, :3] @ np.argwhere(top).mean(0) + image.affine[:3, 3]
        out[method] = {"probability": result.probability, "roi_max": float(result.heatmap[roi.array].max()),
                       "centroid_mm": float(np.linalg.norm(centroid - blob_world)),
                       "heat_score": result.heat_score}
    return out


def main() -> None:
    import tempfile

    from Testing.builders import planted_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for seed in args.seeds:
                planted_model._CACHE.clear()
                started = time.perf_counter()
                planted = planted_model.train_planted_model(seed=seed)
                row = {"seed": seed, "threads": threads, "explain": explain_figures(planted),
                       "detect": detect_figures(planted, Path(folder)),
                       "seconds": round(time.perf_counter() - started, 1)}
                runs.append(row)
                print(json.dumps(row), flush=True)
    methods = EXPLANATION_METHODS
    worst = {
        "explain_accuracy_min": min(r["explain"]["accuracy"] for r in runs),
        "explain_p_blob_min": min(r["explain"]["p_blob_min"] for r in runs),
        "explain_p_control_max": max(r["explain"]["p_control"] for r in runs),
        "detect_p_control_max": max(r["detect"]["p_control"] for r in runs),
    }
    for m in methods:
        rows = [x for r in runs for x in r["explain"][m]]
        worst[f"explain_{m}"] = {
            "peak_outside_blob_and_centroid_max": max((x["centroid_vox"] for x in rows if not x["peak_in_blob"]),
                                                      default=None),
            "centroid_vox_max": max(x["centroid_vox"] for x in rows),
            "roi_max_min": min(x["roi_max"] for x in rows),
            "centroid_vox_max_when_roi_max_below_1": max(
                (x["centroid_vox"] for x in rows if x["roi_max"] < 0.999), default=None),
            "heat_score_min": min(x["heat_score"] for x in rows),
            "in_out_ratio_min": min(x["in_out_ratio"] for x in rows),
        }
        d = [r["detect"][m] for r in runs]
        worst[f"detect_{m}"] = {"probability_min": min(x["probability"] for x in d),
                                "roi_max_min": min(x["roi_max"] for x in d),
                                "centroid_mm_max": max(x["centroid_mm"] for x in d),
                                "heat_score_min": min(x["heat_score"] for x in d if x["heat_score"] is not None)}
    report = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpu_count": __import__("os").cpu_count(),
              "torch": torch.__version__, "seeds": args.seeds, "threads": args.threads, "worst": worst, "runs": runs}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(worst, indent=2))


if __name__ == "__main__":
    main()
