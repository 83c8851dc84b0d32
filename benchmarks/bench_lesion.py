"""Issue 11's bar: lesion-supervised model vs the paper's protocol on thin synthetic lesions.

One ``fcd synth --subtlety 0.5`` cohort; the same fold split (5 folds, fold 0: its test
part is held out from training and validation) trains two models with identical options
except ``--supervision``: ``none`` (the paper's classifier + Grad-CAM) and ``lesion``
(the same ResNet with the lesion head, cross-entropy + Dice/BCE). Each fold's own
evaluation (``fcd train``'s ``fold-0/metrics.json``: ``fcd detect`` on every held-out
subject, clusters with the engine defaults, lesion metrics) gives the figures:

- detection rate (target >= 0.80), FP clusters per control (<= 1), peak-in-ROI rate
  (>= 0.80; the lesion map's, or the heatmap's when better), lesion-map Heat-Score (>= 3),

and the paper protocol's (Grad-CAM heatmap) figures beside them. Runs resume (the cohort
and each finished run are reused). Figures and timings go to
``benchmarks/results-lesion-cpu.json`` (machine named there; CPU only, no GPU figure).

Example:
    $ nice -n 10 python benchmarks/bench_lesion.py --subjects 160 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

BAR = {
    "detection_rate": (">=", 0.80),
    "fp_per_control": ("<=", 1.0),
    "peak_in_roi_rate": (">=", 0.80),
    "lesion_map_heat_score": (">=", 3.0),
}
FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "peak_in_roi_rate",
           "peak_voxels_median", "peak_share_in_roi_median", "dice_mean", "n_patients", "n_controls")


def _options() -> argparse.Namespace:
    from FCDDetectLib.choices import SUPERVISION

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="benchmarks/.bench-lesion", help="cohort and run folders")
    parser.add_argument("--cohort", help="an existing fcd synth cohort to use instead of generating one")
    parser.add_argument("--subjects", type=int, default=160)
    parser.add_argument("--subtlety", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=11, help="cohort seed")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--use-subjects", type=int, help="train/test on the first N/2 patients and N/2 controls "
                        "of the cohort only (a CSV manifest over the same files)")
    parser.add_argument("--folds", type=int, default=5, help="fold 0's test part is held out (default 5: 20 %%)")
    parser.add_argument("--fold", type=int, default=0, help="the fold to train and hold out (default 0)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=2, help="volumes per step (2: four times the optimizer "
                        "steps of the demo's 8 per epoch; dense supervision needs steps, see DESIGN.md)")
    parser.add_argument("--seed-cache", help="a RUN/cache folder of the same grid and files to start from "
                        "(saves preprocessing the cohort again)")
    parser.add_argument("--lesion-weight", type=float, default=1.0)
    parser.add_argument("--spacing", type=float, nargs=3, default=[4.0, 4.0, 4.0])
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 56, 48])
    parser.add_argument("--widen-factor", type=float, default=0.25)
    parser.add_argument("--shift", type=float, default=None, help="random shifts in mm (default: the demo preset's)")
    parser.add_argument("--patience", type=int, default=None, help="ReduceLROnPlateau patience in epochs "
                        "(default: the demo preset's)")
    parser.add_argument("--protocols", nargs="+", default=list(reversed(SUPERVISION)), choices=SUPERVISION)
    parser.add_argument("--results", default="benchmarks/results-lesion-cpu.json")
    return parser.parse_args()


def _config(cohort: Path, args: argparse.Namespace, supervision: str):
    from FCDTrainLib.run_folder.run_config import RunConfig

    # The demo's network and augmentation (RunConfig.preset("demo")) at the demo's grid;
    # early stopping is off (patience = epochs): dense supervision needs its epochs (DESIGN.md).
    return RunConfig.preset(
        "demo", data=str(cohort), widen_factor=args.widen_factor, folds=args.folds, seed=0, max_epochs=args.epochs,
        lr=args.lr, batch_size=args.batch_size, spacing=list(args.spacing), shape=list(args.shape), early_stop_patience=args.epochs,
        device="cpu", supervision=supervision, lesion_weight=args.lesion_weight,
        **({} if args.shift is None else {"shift_mm": args.shift}),
        **({} if args.patience is None else {"patience": args.patience}),
    )


def _manifest(cohort: Path, n: int, out: Path) -> Path:
    """A CSV manifest over the first n/2 patients and n/2 controls of a BIDS cohort."""
    import csv

    from FCDTrainLib.data.dataset_loader import load_dataset

    subjects = load_dataset(cohort).subjects
    chosen = [s for s in subjects if s.label == 1][: n // 2] + [s for s in subjects if s.label == 0][: n - n // 2]
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject", "label", "flair", "roi"])
        writer.writeheader()
        for s in chosen:
            writer.writerow({"subject": s.subject_id, "label": "fcd" if s.label else "control",
                             "flair": str(s.images["flair"]), "roi": str(s.roi) if s.roi else ""})
    return out


def _seed_cache(run_dir: Path, config: Any, cache: Path) -> None:
    """Start ``run_dir`` as a run killed right after caching: its config plus a copy of the arrays."""
    import shutil

    from FCDTrainLib.run_folder.run_config import write_config

    if run_dir.exists() or not cache.is_dir():
        return
    config.validate()
    write_config(run_dir, config)
    shutil.copytree(cache, run_dir / "cache")


def _bar(figures: dict[str, Any]) -> dict[str, Any]:
    verdict = {}
    for name, (sense, target) in BAR.items():
        value = figures.get(name)
        met = None if value is None else (value >= target if sense == ">=" else value <= target)
        verdict[name] = {"value": value, "target": f"{sense} {target}", "met": met}
    return verdict


def main() -> int:
    args = _options()
    import torch
    from FCDDetectLib.io.atomic_files import write_json_atomic
    from FCDTrainLib.data.synth.write_cohort import synth_cohort
    from FCDTrainLib.experiment.train_run import train_run

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cohort = Path(args.cohort) if args.cohort else work / "cohort"
    started = time.perf_counter()
    if not (cohort / "participants.tsv").is_file():
        synth_cohort(cohort, args.subjects, seed=args.seed, size="small", subtlety=args.subtlety, overlays=0)
    synth_seconds = time.perf_counter() - started
    data = _manifest(cohort, args.use_subjects, work / "subjects.csv") if args.use_subjects else cohort
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"torch threads {torch.get_num_threads()}, no GPU (shared 2-core CPU, run with nice -n 10)",
        "note": "synthetic data (fcd synth); CPU figures at the demo's scale; not clinical performance",
        "cohort": {"path": str(cohort), "subjects": args.subjects, "used_subjects": args.use_subjects or args.subjects,
                   "subtlety": args.subtlety, "size": "small", "seed": args.seed},
        "options": {"epochs": args.epochs, "spacing": args.spacing, "shape": args.shape, "lr": args.lr,
                    "widen_factor": args.widen_factor, "lesion_weight": args.lesion_weight, "folds": args.folds,
                    "batch_size": args.batch_size, "shift_mm": args.shift, "patience": args.patience,
                    "held_out": f"fold {args.fold}'s test part (never seen in training or validation)"},
        "synth_seconds": round(synth_seconds, 1),
        "protocols": {},
    }
    for supervision in args.protocols:
        config = _config(data, args, supervision)
        run_dir = work / f"run-{supervision}"
        if args.seed_cache:
            _seed_cache(run_dir, config, Path(args.seed_cache))
        t0 = time.perf_counter()
        train_run(config, run_dir, only_fold=args.fold, progress=False)
        metrics = json.loads((run_dir / f"fold-{args.fold}" / "metrics.json").read_text())
        history = json.loads((run_dir / f"fold-{args.fold}" / "history.json").read_text())
        per_map = metrics.get("lesion_level", {})
        entry = {
            "seconds": round(time.perf_counter() - t0, 1),
            "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
            "seconds_per_epoch": round(sum(h["seconds"] for h in history) / max(1, len(history)), 2),
            "accuracy": metrics.get("accuracy"), "roc_auc": metrics.get("roc_auc"),
            "heatmap_heat_score": metrics.get("heat_score"),
            "lesion_map_heat_score": metrics.get("lesion_map_heat_score"),
            "heatmap": {k: per_map.get("heatmap", {}).get(k) for k in FIGURES},
        }
        if "lesion_map" in per_map:
            entry["lesion_map"] = {k: per_map["lesion_map"].get(k) for k in FIGURES}
        primary = entry.get("lesion_map", entry["heatmap"])
        peak = max((v for v in (entry["heatmap"].get("peak_in_roi_rate"), primary.get("peak_in_roi_rate"))
                    if v is not None), default=None)
        entry["bar"] = _bar({**primary, "peak_in_roi_rate": peak,
                             "lesion_map_heat_score": entry["lesion_map_heat_score"]})
        results["protocols"][supervision] = entry
        print(json.dumps({supervision: entry}, indent=2), flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(args.results, results)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
