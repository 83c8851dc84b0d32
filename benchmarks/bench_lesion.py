"""The lesion bar over every fold: single fold models, their ensemble on a fresh cohort, the paper protocol beside.

One ``fcd synth --subtlety 0.5`` cohort (seed 11 by default) is split into ``--folds`` folds
(seed 0); every fold trains one model per protocol (``--supervision lesion`` and, for the
comparison, ``none``), each fold's test part held out from its training and validation.
Stages (``--stage``, default ``all``; each resumes what is done):

- ``train``: every fold of every protocol, one after the other (``fcd train --fold K`` into one
  run folder per protocol; a fold killed half-way resumes exactly);
- ``recalibrate`` (only when asked): every finished fold's operating point, lesion evidence and
  test figures chosen and computed again with the current code, weights untouched
  (:func:`FCDTrainLib.experiment.recalibrate.recalibrate_fold`), so folds finished under
  an older calibration rule are compared under one;
- ``evaluate``: each fold's own figures (``fold-K/metrics.json``: the lesion map's clusters at
  the operating point chosen on the fold's validation subjects, detection rate, specificity,
  FP clusters per patient and per control, cluster PPV, Dice, the lesion evidence's and the
  classifier's ROC-AUC), re-computed with the current code from the fold's bundle (a fold
  trained before the calibration existed is calibrated here first);
- ``heldout``: every fold model alone and the fold ensemble (``fcd detect --model RUN``) on a
  freshly generated cohort of another seed (``--heldout``, 20 + 20 subjects by default).

Each figure is reported per fold, with its mean and minimum, against the bar of issue 27;
the entry is merged into ``benchmarks/results-lesion-cpu.json`` under ``--key`` (older
entries are kept). CPU only unless a GPU is there (machine named in the entry).

Example:
    $ nice -n 10 python benchmarks/bench_lesion.py --cohort /tmp/cohort --heldout /tmp/heldout \\
          --folds 4 --epochs 100 --lr 3e-3 --batch-size 2 --spacing 3 3 3 --shape 64 72 64 --shift 8 \\
          --lesion-schedule poly --patch 32 32 32 --stage train
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
    "detection_rate": (">=", 0.85),
    "specificity": (">=", 0.80),
    "fp_per_patient": ("<=", 0.3),
    "cluster_ppv": (">=", 0.70),
    "dice_mean": (">=", 0.40),
    "lesion_evidence_roc_auc": (">=", 0.90),
}
"""Issue 27's bar on every held-out fold (lesion map)."""
FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "cluster_ppv", "peak_in_roi_rate",
           "dice_mean", "n_patients", "n_controls")


def _options() -> argparse.Namespace:
    from FCDDetectLib.choices import INPUT_MODALITIES, LESION_SCHEDULES, SUPERVISION

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="benchmarks/.bench-lesion", help="cohorts and run folders")
    parser.add_argument("--cohort", help="an existing fcd synth cohort to use instead of generating one")
    parser.add_argument("--heldout", help="the fresh held-out cohort (generated with --heldout-seed when absent)")
    parser.add_argument("--subjects", type=int, default=160)
    parser.add_argument("--heldout-subjects", type=int, default=40)
    parser.add_argument("--subtlety", type=float, default=0.5)
    parser.add_argument("--size", choices=("small", "full"), default="small",
                        help="voxel size of the generated cohorts (fcd synth --size; full: 0.8-1 mm, for finer grids)")
    parser.add_argument("--seed", type=int, default=11, help="cohort seed")
    parser.add_argument("--heldout-seed", type=int, default=12, help="seed of the fresh held-out cohort")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--only-folds", type=int, nargs="+", help="train these folds only (default: all)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lesion-weight", type=float, default=1.0)
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.0, 3.0, 3.0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 72, 64])
    parser.add_argument("--widen-factor", type=float, default=0.25)
    parser.add_argument("--modality", choices=INPUT_MODALITIES, default="flair", help="input channels of the models")
    parser.add_argument("--shift", type=float, default=8.0, help="random shifts in mm")
    parser.add_argument("--patience", type=int, default=None, help="ReduceLROnPlateau patience (plateau schedules)")
    parser.add_argument("--lesion-schedule", choices=LESION_SCHEDULES, default="poly")
    parser.add_argument("--patch", type=int, nargs=3, default=None, help="lesion training patches (voxels)")
    parser.add_argument("--foreground-fraction", type=float, default=0.33)
    parser.add_argument("--protocols", nargs="+", default=["lesion"], choices=SUPERVISION)
    parser.add_argument("--stage", choices=("train", "recalibrate", "evaluate", "heldout", "all"), default="all")
    parser.add_argument("--key", default="fold_bar_run", help="entry of the results file to write")
    parser.add_argument("--results", default="benchmarks/results-lesion-cpu.json")
    return parser.parse_args()


def _config(cohort: Path, args: argparse.Namespace, supervision: str):
    from FCDTrainLib.run_folder.run_config import RunConfig

    # The demo's network (ResNet-18, medicalnet geometry, quarter width), flips; early stopping
    # is off for the plateau schedule (patience = epochs); the poly schedule never stops early.
    values: dict[str, Any] = dict(
        data=str(cohort), widen_factor=args.widen_factor, folds=args.folds, seed=0, max_epochs=args.epochs,
        lr=args.lr, batch_size=args.batch_size, spacing=list(args.spacing), shape=list(args.shape),
        early_stop_patience=args.epochs, device="cpu", supervision=supervision, shift_mm=args.shift,
        modality=args.modality)
    if supervision == "lesion":
        values.update(lesion_weight=args.lesion_weight, lesion_schedule=args.lesion_schedule,
                      patch=list(args.patch) if args.patch else None, foreground_fraction=args.foreground_fraction)
    if args.patience is not None:
        values["patience"] = args.patience
    return RunConfig.preset("demo", **values)


def _bar(figures: dict[str, Any]) -> dict[str, Any]:
    verdict = {}
    for name, (sense, target) in BAR.items():
        value = figures.get(name)
        met = None if value is None else (value >= target if sense == ">=" else value <= target)
        verdict[name] = {"value": value, "target": f"{sense} {target}", "met": met}
    return verdict


def _spread(per_fold: dict[int, dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """Mean and minimum (and maximum) over folds of each figure."""
    out = {}
    for name in names:
        values = [f[name] for f in per_fold.values() if isinstance(f.get(name), (int, float))]
        out[name] = ({"mean": sum(values) / len(values), "min": min(values), "max": max(values), "folds": len(values)}
                     if values else None)
    return out


def _train(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from FCDTrainLib.experiment.train_run import train_run

    seconds: dict[str, Any] = {}
    for supervision in args.protocols:
        config = _config(data, args, supervision)
        run_dir = work / f"run-{supervision}"
        for fold in args.only_folds or range(args.folds):
            t0 = time.perf_counter()
            train_run(config, run_dir, only_fold=fold, progress=False)
            seconds[f"{supervision}/fold-{fold}"] = round(time.perf_counter() - t0, 1)
            print(f"{supervision} fold {fold}: {seconds[f'{supervision}/fold-{fold}']} s", flush=True)
    return seconds


def _recalibrate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from FCDTrainLib.experiment.recalibrate import recalibrate_fold

    done: dict[str, Any] = {}
    for supervision in args.protocols:
        run_dir = work / f"run-{supervision}"
        for fold in range(args.folds):
            if (run_dir / f"fold-{fold}" / "metrics.json").is_file():
                t0 = time.perf_counter()
                point = recalibrate_fold(run_dir, fold)["operating_point"]
                done[f"{supervision}/fold-{fold}"] = {"seconds": round(time.perf_counter() - t0, 1),
                                                      "operating_point": point and {k: point[k] for k in (
                                                          "cluster_threshold", "min_cluster_mm3")}}
                print(f"recalibrated {supervision} fold {fold}: {done[f'{supervision}/fold-{fold}']}", flush=True)
    return done


def _fold_training(run_dir: Path, fold: int, poly: bool) -> dict[str, Any]:
    """A fold's training summary; ``poly``: the run's lesion head followed the poly schedule."""
    history = json.loads((run_dir / f"fold-{fold}" / "history.json").read_text(encoding="utf-8"))
    dice = [h.get("val_dice") for h in history]
    first = next((h["epoch"] for h in history if (h.get("val_dice") or 0) > 0), None)
    # the poly schedule lowers the rate every epoch, to 0 after the last: it has no plateau cuts
    cuts = [] if poly else [h["epoch"] for h in history if h.get("next_lr", h["lr"]) < h["lr"] * 0.5]
    return {"epochs_run": len(history), "seconds_per_epoch": round(sum(h["seconds"] for h in history) / len(history), 2),
            "val_dice_first_above_0_at_epoch": first, "val_dice_last": dice[-1] if dice else None,
            "lr_schedule": "poly" if poly else "plateau", "plateau_cuts_after_epochs": cuts}


def _evaluate(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    """Each finished fold's own figures (``fold-K/metrics.json``: test subjects, operating point from validation)."""
    out: dict[str, Any] = {}
    for supervision in args.protocols:
        run_dir = work / f"run-{supervision}"
        per_fold = {}
        config_file = run_dir / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        poly = config.get("supervision") == "lesion" and config.get("lesion_schedule") == "poly"
        for fold in range(args.folds):
            path = run_dir / f"fold-{fold}" / "metrics.json"
            if not path.is_file():
                continue
            metrics = json.loads(path.read_text(encoding="utf-8"))
            primary = metrics.get("lesion_level", {}).get(metrics.get("lesion_level_map", "heatmap"), {})
            figures = {k: primary.get(k) for k in FIGURES}
            figures.update(roc_auc=metrics.get("roc_auc"), accuracy=metrics.get("accuracy"),
                           lesion_evidence_roc_auc=metrics.get("lesion_evidence_roc_auc"),
                           lesion_evidence_accuracy=metrics.get("lesion_evidence_accuracy"),
                           lesion_map_heat_score=metrics.get("lesion_map_heat_score"),
                           cluster_threshold=metrics.get("cluster_threshold"), min_cluster_mm3=metrics.get("min_cluster_mm3"),
                           operating_point=metrics.get("operating_point"), lesion_evidence=metrics.get("lesion_evidence"),
                           training=_fold_training(run_dir, fold, poly))
            figures["bar"] = _bar(figures)
            per_fold[fold] = figures
            print(json.dumps({supervision: {fold: {k: v for k, v in figures.items() if k != "bar"}}}, default=str),
                  flush=True)
        out[supervision] = {"per_fold": per_fold,
                            "spread": _spread(per_fold, (*FIGURES, "roc_auc", "lesion_evidence_roc_auc")),
                            "folds_missing": [k for k in range(args.folds) if k not in per_fold]}
    return out


def _cohort_figures(model: Any, subjects: list[Any]) -> dict[str, Any]:
    """Lesion-level figures, lesion-evidence and classifier ROC-AUC of ``model`` (a bundle or an ensemble).

    The figures are the lesion map's, or the heatmap's for a model without one (``--supervision none``).
    """
    import numpy as np
    from FCDDetectLib.detection.ensemble_detect import detect_any
    from FCDDetectLib.detection.options import DetectOptions
    from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics
    from FCDTrainLib.training.fold_model import roc_auc_or_nan

    rows, scores, decisions, probabilities, labels, spreads = [], [], [], [], [], []
    for subject in subjects:
        patient = int(subject.label) == 1
        result = detect_any(model, [subject.images[m] for m in model.metadata.modalities],
                            roi=subject.roi if patient else None, options=DetectOptions(device="cpu"))
        # the lesion map's figures; a model without one (the paper's protocol) is scored on its heatmap
        primary = result.lesion_map_metrics if result.lesion_map_metrics is not None else result.lesion
        rows.append({**primary, "label": int(subject.label)})
        scores.append((result.lesion_evidence or {}).get("score"))
        decisions.append(result.prediction == "fcd")
        probabilities.append(result.probability)
        labels.append(int(subject.label))
        if result.lesion_clusters is not None:
            spreads += [(c.folds_found, c.mean_uncertainty, bool(result.lesion_map_metrics["cluster_overlaps"].get(c.id)))
                        for c in result.lesion_clusters.clusters if c.folds_found is not None]
    figures = {k: v for k, v in cohort_lesion_metrics(rows).items() if k in FIGURES}
    labels_array = np.asarray(labels)
    evidence = all(score is not None for score in scores)  # none for a model without a lesion map
    accuracy = float(np.mean([d == bool(y) for d, y in zip(decisions, labels, strict=True)]))
    figures.update(lesion_evidence_roc_auc=roc_auc_or_nan(labels_array, np.asarray(scores, float)) if evidence else None,
                   lesion_evidence_accuracy=accuracy if evidence else None, accuracy=accuracy,
                   roc_auc=roc_auc_or_nan(labels_array, np.asarray(probabilities)))
    if spreads:  # ensemble clusters: how sure the folds were about true and false clusters
        true_clusters = [s for s in spreads if s[2]]
        false_clusters = [s for s in spreads if not s[2]]
        figures["clusters_touching_a_lesion"] = {
            "n": len(true_clusters), "folds_found_mean": float(np.mean([s[0] for s in true_clusters])) if true_clusters else None,
            "mean_uncertainty_mean": float(np.mean([s[1] for s in true_clusters])) if true_clusters else None}
        figures["false_positive_clusters"] = {
            "n": len(false_clusters), "folds_found_mean": float(np.mean([s[0] for s in false_clusters])) if false_clusters else None,
            "mean_uncertainty_mean": float(np.mean([s[1] for s in false_clusters])) if false_clusters else None}
    return figures


def _heldout(args: argparse.Namespace, work: Path, heldout: Path) -> dict[str, Any]:
    """Every fold model alone and their ensemble (``fcd detect --model RUN``'s) on the fresh cohort."""
    from FCDDetectLib.detection.ensemble_detect import load_models
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDTrainLib.data.dataset_loader import load_dataset

    subjects = load_dataset(heldout).subjects
    out: dict[str, Any] = {}
    for supervision in args.protocols:
        run_dir = work / f"run-{supervision}"
        per_fold = {}
        for fold in range(args.folds):
            bundle = run_dir / f"fold-{fold}" / "model.fcdbundle"
            if (run_dir / f"fold-{fold}" / "metrics.json").is_file():
                t0 = time.perf_counter()
                per_fold[fold] = _cohort_figures(load_bundle(bundle, device="cpu"), subjects)
                per_fold[fold]["seconds"] = round(time.perf_counter() - t0, 1)
                print(json.dumps({supervision: {f"heldout fold {fold}": per_fold[fold]}}), flush=True)
        entry: dict[str, Any] = {"per_fold": per_fold, "spread": _spread(per_fold, (*FIGURES, "lesion_evidence_roc_auc",
                                                                                      "roc_auc"))}
        if per_fold:
            t0 = time.perf_counter()
            ensemble = load_models([run_dir], device="cpu")
            entry["ensemble"] = _cohort_figures(ensemble, subjects)
            entry["ensemble"].update(members=ensemble.labels, missing_folds=ensemble.missing,
                                     seconds=round(time.perf_counter() - t0, 1))
            best = {name: (max if sense == ">=" else min)(f[name] for f in per_fold.values() if f.get(name) is not None)
                    for name, sense in (("detection_rate", ">="), ("fp_per_patient", "<="))}
            entry["ensemble_vs_best_fold"] = {
                name: {"ensemble": entry["ensemble"].get(name), "best_fold": value,
                       "at_least_as_good": entry["ensemble"].get(name) is not None and (
                           entry["ensemble"][name] >= value if name == "detection_rate" else entry["ensemble"][name] <= value)}
                for name, value in best.items()}
            print(json.dumps({supervision: {"heldout ensemble": entry["ensemble"]}}), flush=True)
        out[supervision] = entry
    return out


def _merge(path: str, key: str, entry: dict[str, Any]) -> None:
    from FCDDetectLib.io.atomic_files import write_json_atomic

    target = Path(path)
    results = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
    previous = results.get(key, {})
    results[key] = {**previous, **entry}
    write_json_atomic(target, results)


def main() -> int:
    args = _options()
    import torch
    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cohort = Path(args.cohort) if args.cohort else work / "cohort"
    heldout = Path(args.heldout) if args.heldout else work / "heldout"
    if not (cohort / "participants.tsv").is_file():
        synth_cohort(cohort, args.subjects, seed=args.seed, size=args.size, subtlety=args.subtlety, overlays=0)
    entry: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"torch threads {torch.get_num_threads()}, "
        f"{'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'} "
        "(CPU shared with other jobs, run with nice -n 10)",
        "note": "synthetic data (fcd synth); not clinical performance",
        "date": time.strftime("%Y-%m-%d"),
        "cohort": {"subjects": args.subjects, "subtlety": args.subtlety, "size": args.size, "seed": args.seed,
                   "split_seed": 0, "folds": args.folds},
        "options": {k: getattr(args, k) for k in ("epochs", "spacing", "shape", "lr", "batch_size", "widen_factor", "modality",
                                                  "lesion_weight", "shift", "patience", "lesion_schedule", "patch",
                                                  "foreground_fraction")},
        "bar": {name: f"{sense} {target}" for name, (sense, target) in BAR.items()},
    }
    if args.stage in ("train", "all"):
        entry["train_seconds"] = _train(args, cohort, work)
    if args.stage == "recalibrate":
        entry["recalibrated"] = _recalibrate(args, work)
    if args.stage in ("recalibrate", "evaluate", "all"):
        entry["folds"] = _evaluate(args, cohort, work)
    if args.stage in ("heldout", "all"):
        if not (heldout / "participants.tsv").is_file():
            synth_cohort(heldout, args.heldout_subjects, seed=args.heldout_seed, size=args.size,
                         subtlety=args.subtlety, overlays=0)
        entry["heldout"] = {"cohort": {"subjects": args.heldout_subjects, "seed": args.heldout_seed},
                            **_heldout(args, work, heldout)}
    _merge(args.results, args.key, entry)
    print(f"wrote {args.results} [{args.key}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
