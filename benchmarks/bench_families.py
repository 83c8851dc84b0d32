"""Issue 26's bar: lesion models on out-of-distribution scan families, and test-retest on rescans.

Two lesion models (``fcd train --supervision lesion``, T1 + FLAIR, the same options) are
trained on synthetic cohorts of the same size and seed: ``standard`` (``fcd synth``) and
``randomized`` (``fcd synth --randomize``); optionally ``randomized-aug`` (the randomised
cohort plus ``--scanner-augment``). Neither ever sees the benchmark cohorts below: each is a
new ``fcd synth`` cohort (its own seed; every family but ``full-1mm`` the same seed, so the
same anatomy, lesions and labels, only the scans differ):

==================  ========================================================
family              ``fcd synth`` options (besides ``--subjects --seed --subtlety``)
==================  ========================================================
standard            (none): int16, skull and scalp, ~3 mm, 1/8 of FLAIRs 2D
brain-extracted     ``--brain-extracted``
thick-2d-flair      ``--flair-2d 5`` (every FLAIR 2D, 5 mm slices, any plane)
rescaled-unit       ``--rescale unit`` (floats 0-1)
rescaled-12bit      ``--rescale 12bit`` (integers 0-4095)
separate-grids      ``--separate-grids`` (sagittal T1, oblique off-centre FLAIR)
full-1mm            ``--size full`` (0.8 mm T1, 1 mm FLAIR, full-size grids)
==================  ========================================================

Per model and family: ``fcd detect``'s pipeline (:func:`FCDDetectLib.detection.detect.detect`)
on every subject, the lesion map's clusters (at the bundle's operating point, chosen on its
validation subjects; the engine's 0.5 and 50 mm3 for a bundle without one), the
cohort figures (:func:`FCDDetectLib.maps.lesion_metrics.cohort_lesion_metrics`) and the share
of subjects the out-of-distribution check flags, with its reasons. Hostile inputs made from
the standard family's first subjects (a noise volume, a CT-like intensity range, a head cut
by the field of view) check that the OOD check flags them.

Test-retest: ``fcd synth --rescans 2`` (same anatomy and lesion, new noise, bias field,
position and intensity scale); ``fcd detect --data`` (:func:`FCDDetectLib.cohort.runner.run_cohort`)
writes every session's outputs; per pair the benchmark reads ``lesion_clusters.nii.gz`` /
``.json`` and ``result.json``: Dice of the two sessions' clusters on session 1's grid
(session 2's resampled through the affines, nearest neighbour: the sessions share the world
frame, a perfect registration), the distance between the top clusters' peaks (mm), and
whether detection agrees (patients: detected in both or neither; controls: a cluster in both
or neither).

Everything resumes: cohorts, runs and each (model, family) evaluation are reused when present.
Figures go to ``benchmarks/results-families-cpu.json``.

Example:
    $ OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_families.py --work /tmp/bench-families
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

FAMILIES: dict[str, dict[str, Any]] = {
    "standard": {},
    "brain-extracted": {"brain_extracted": True},
    "thick-2d-flair": {"flair_2d": 5.0},
    "rescaled-unit": {"rescale": "unit"},
    "rescaled-12bit": {"rescale": "12bit"},
    "separate-grids": {"separate_grids": True},
    "full-1mm": {"size": "full"},
}
MODELS = {"standard": {"randomize": False, "augment": False}, "randomized": {"randomize": True, "augment": False},
          "randomized-aug": {"randomize": True, "augment": True}}
BAR = {"detection_gap": 0.10, "fp_per_patient": 0.5, "retest_dice": 0.6, "retest_peak_mm": 5.0,
       "retest_agreement": 0.9, "standard_gap": 0.05}
FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "peak_in_roi_rate", "dice_mean",
           "n_patients", "n_controls")


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="benchmarks/.bench-families", help="cohorts, runs and outputs")
    parser.add_argument("--train-subjects", type=int, default=120)
    parser.add_argument("--test-subjects", type=int, default=40, help="per family (half patients)")
    parser.add_argument("--full-subjects", type=int, default=20, help="subjects of the full-1mm family")
    parser.add_argument("--rescan-subjects", type=int, default=20)
    parser.add_argument("--subtlety", type=float, default=0.3)
    parser.add_argument("--train-seed", type=int, default=26)
    parser.add_argument("--test-seed", type=int, default=261)
    parser.add_argument("--rescan-seed", type=int, default=262)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--folds", type=int, default=10, help="fold 0's test part is held out (10: 10 %%)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[4.0, 4.0, 4.0])
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 56, 48])
    parser.add_argument("--models", nargs="+", default=["standard", "randomized"], choices=list(MODELS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--no-rescans", action="store_true", help="skip the test-retest part")
    parser.add_argument("--train-only", action="store_true", help="train the models, evaluate nothing")
    parser.add_argument("--synth-only", action="store_true", help="write the benchmark cohorts, train nothing")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --results and exit")
    parser.add_argument("--results", default="benchmarks/results-families-cpu.json")
    return parser.parse_args()


def _config(cohort: Path, args: argparse.Namespace, augment: bool):
    from FCDTrainLib.run_folder.run_config import RunConfig

    # The demo network (quarter-width ResNet-18 + lesion head) on a 4 mm grid, T1 + FLAIR (the
    # separate-grids family needs both), the lesion protocol's lr and batch (bench_lesion.py);
    # early stopping off: dense supervision needs its epochs (DESIGN.md).
    return RunConfig.preset(
        "demo", data=str(cohort), modality="t1+flair", supervision="lesion", widen_factor=0.25, folds=args.folds,
        seed=0, max_epochs=args.epochs, lr=args.lr, batch_size=2, spacing=list(args.spacing), shape=list(args.shape),
        early_stop_patience=args.epochs, device="cpu", shift_mm=8.0,
        **({"scanner_augment": True} if augment else {}))


def _synth(path: Path, n: int, seed: int, subtlety: float, size: str = "small", **variant: Any) -> Path:
    from FCDTrainLib.data.synth.variants import SynthVariant
    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    if not (path / "participants.tsv").is_file():
        synth_cohort(path, n, seed=seed, size=size, subtlety=subtlety, overlays=1,
                     variant=SynthVariant(**variant) if variant else None)
    return path


def _evaluate(bundle_path: Path, cohort: Path) -> dict[str, Any]:
    """detect() on every subject of ``cohort``: lesion-map figures, OOD flags, seconds."""
    from FCDDetectLib.detection.detect import detect, load_model
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics
    from FCDTrainLib.data.dataset_loader import load_dataset

    bundle = load_model(bundle_path, "cpu")
    modalities = list(bundle.metadata.modalities)
    rows, flagged, reasons, errors, started = [], 0, {}, [], time.perf_counter()
    subjects = load_dataset(cohort).subjects
    for subject in subjects:
        roi = subject.roi if int(subject.label) == 1 else None
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=roi, device="cpu")
        except FCDInputError as error:  # counted, and left out of the figures
            errors.append(f"{subject.subject_id}: {error}")
            continue
        rows.append({**result.lesion_map_metrics, "label": int(subject.label), "subject": subject.subject_id,
                     "probability": result.probability, "max_lesion_probability": float(result.lesion_map.max())})
        if result.out_of_distribution:
            flagged += 1
            for reason in result.ood_reasons:
                key = reason.split(" ")[0]
                reasons[key] = reasons.get(key, 0) + 1
    figures = cohort_lesion_metrics(rows)
    return {**{k: figures.get(k) for k in FIGURES}, "errors": errors, "ood_flagged": flagged / max(1, len(rows)),
            "ood_reasons": reasons, "seconds_per_subject": round((time.perf_counter() - started) / len(subjects), 2),
            "subjects": [{k: r.get(k) for k in ("subject", "label", "detected", "n_clusters", "fp_clusters", "dice",
                                                 "max_lesion_probability")} for r in rows]}


def _hostile(bundle_path: Path, cohort: Path, n: int = 4) -> dict[str, Any]:
    """Share of hostile inputs (made from the cohort's first ``n`` subjects) the OOD check flags."""
    import numpy as np
    from FCDDetectLib.detection.detect import detect, load_model
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.io.image_io import Image, load_image
    from FCDTrainLib.data.dataset_loader import load_dataset

    bundle = load_model(bundle_path, "cpu")
    modalities = list(bundle.metadata.modalities)
    rng = np.random.default_rng(0)

    def noise(image: Image) -> Image:
        return Image(rng.random(image.array.shape).astype(np.float32) * 1000, image.affine)

    def ct_like(image: Image) -> Image:
        head = head_mask(image.array)
        tissue = np.clip(image.array / max(float(np.percentile(image.array[head], 99)), 1e-6), 0, 1) * 80
        return Image(np.where(head, tissue, -1000.0).astype(np.float32), image.affine)

    def cropped(image: Image) -> Image:
        axis = int(np.argmax(np.abs(image.affine[2, :3])))  # the voxel axis closest to S
        keep = [slice(None)] * 3
        size = image.array.shape[axis]
        keep[axis] = slice(size // 2, size) if image.affine[2, axis] > 0 else slice(0, size - size // 2)
        start = np.array([s.start or 0 for s in keep] + [1.0])
        affine = image.affine.copy()
        affine[:3, 3] = (image.affine @ start)[:3]
        return Image(image.array[tuple(keep)], affine)

    out: dict[str, Any] = {}
    subjects = load_dataset(cohort).subjects[:n]
    for name, change in (("noise", noise), ("ct-range", ct_like), ("cropped-head", cropped)):
        flags, reasons = 0, []
        for subject in subjects:
            images = [change(load_image(subject.images[m])) for m in modalities]
            try:
                result = detect(bundle, images, device="cpu")
            except Exception as error:  # noqa: BLE001 - a refused input counts as flagged
                flags += 1
                reasons.append(f"refused: {str(error).splitlines()[0][:80]}")
                continue
            flags += bool(result.out_of_distribution)
            reasons.extend(r.split(" ")[0] for r in result.ood_reasons)
        out[name] = {"flagged": flags / max(1, len(subjects)), "reasons": sorted(set(reasons))}
    return out


def _label_map(path: Path) -> Any:
    """A cluster label map we wrote (nibabel: an empty one is all zero), as an engine ``Image``."""
    import nibabel as nib
    import numpy as np
    from FCDDetectLib.io.image_io import Image

    image = nib.load(str(path))
    return Image(np.asarray(image.dataobj), image.affine)


def _retest(bundle_path: Path, cohort: Path, out: Path) -> dict[str, Any]:
    """fcd detect --data on the rescan cohort, then the per-pair figures (see the module docstring)."""
    import numpy as np
    from FCDDetectLib.cohort.discovery import discover_subjects
    from FCDDetectLib.cohort.runner import run_cohort
    from FCDDetectLib.grid.geometry import mask_onto_grid
    from FCDDetectLib.io.image_io import Image
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDTrainLib.data.dataset_loader import load_dataset

    modalities = list(load_bundle(bundle_path).metadata.modalities)
    subjects = discover_subjects(cohort, modalities)
    run_cohort(bundle_path, subjects, out, device="cpu")
    labels = {s.subject_id: int(s.label) for s in load_dataset(cohort).subjects}
    by_subject: dict[str, list[Any]] = {}
    for entry in subjects:
        by_subject.setdefault(entry.info["subject"], []).append(entry)
    pairs = []
    for subject_id, sessions in sorted(by_subject.items()):
        first, second = (out / s.subject_id for s in sessions[:2])
        results = [json.loads((folder / "result.json").read_text(encoding="utf-8")) for folder in (first, second)]
        lesion = [r["lesion_map"] for r in results]
        # a label map, all zero when a session has no cluster (load_image refuses constant images)
        masks = [_label_map(folder / "lesion_clusters.nii.gz") for folder in (first, second)]
        a = masks[0].array > 0
        b = mask_onto_grid(Image(masks[1].array > 0, masks[1].affine), Image(a, masks[0].affine))
        listed = [json.loads((folder / "lesion_clusters.json").read_text(encoding="utf-8"))["clusters"] for folder in (first, second)]
        peaks = [np.array(c[0]["peak_ras"]) if c else None for c in listed]
        patient = labels[subject_id] == 1
        hits = [bool(x.get("detected")) if patient else bool(x.get("n_clusters")) for x in lesion]
        pairs.append({
            "subject": subject_id, "label": labels[subject_id],
            "n_clusters": [x.get("n_clusters") for x in lesion],
            "dice": None if not (a.any() or b.any()) else float(2 * (a & b).sum() / (a.sum() + b.sum())),
            "peak_distance_mm": None if peaks[0] is None or peaks[1] is None else float(np.linalg.norm(peaks[0] - peaks[1])),
            "detected": hits, "agree": hits[0] == hits[1],
        })
    dice = [p["dice"] for p in pairs if p["dice"] is not None]
    distance = [p["peak_distance_mm"] for p in pairs if p["peak_distance_mm"] is not None]
    patients = [p for p in pairs if p["label"] == 1]
    return {
        "pairs": len(pairs),
        "dice_mean": float(np.mean(dice)) if dice else None, "dice_median": float(np.median(dice)) if dice else None,
        "dice_pairs": len(dice),
        "patient_dice_mean": float(np.mean([p["dice"] for p in patients if p["dice"] is not None] or [np.nan])),
        "peak_distance_median_mm": float(np.median(distance)) if distance else None, "peak_pairs": len(distance),
        "agreement": float(np.mean([p["agree"] for p in pairs])) if pairs else None,
        "patient_agreement": float(np.mean([p["agree"] for p in patients])) if patients else None,
        "per_pair": pairs,
    }


def _verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar, per item, for the randomised model (value, target, met)."""
    verdict: dict[str, Any] = {}
    families = results.get("families", {})
    model = "randomized-aug" if "randomized-aug" in families and "randomized" not in families else "randomized"
    own = families.get(model, {})
    base = own.get("standard", {}).get("detection_rate")
    for family, figures in own.items():
        if family == "standard" or base is None or figures.get("detection_rate") is None:
            continue
        gap = base - figures["detection_rate"]
        verdict[f"{family}: detection within {BAR['detection_gap']} of standard"] = {
            "value": round(gap, 3), "met": gap <= BAR["detection_gap"] + 1e-9}
        verdict[f"{family}: FP clusters per patient <= {BAR['fp_per_patient']}"] = {
            "value": figures.get("fp_per_patient"), "met": (figures.get("fp_per_patient") or 0) <= BAR["fp_per_patient"]}
    plain = families.get("standard", {}).get("standard", {}).get("detection_rate")
    if base is not None and plain is not None:
        verdict[f"standard family: randomised no worse than standard model by {BAR['standard_gap']}"] = {
            "value": round(plain - base, 3), "met": plain - base <= BAR["standard_gap"] + 1e-9}
    retest = results.get("retest", {}).get(model)
    if retest:
        for key, target, sense in (("dice_mean", BAR["retest_dice"], ">="),
                                   ("peak_distance_median_mm", BAR["retest_peak_mm"], "<="),
                                   ("agreement", BAR["retest_agreement"], ">=")):
            value = retest.get(key)
            met = None if value is None else (value >= target if sense == ">=" else value <= target)
            verdict[f"test-retest {key} {sense} {target}"] = {"value": value, "met": met}
    return {"model": model, "items": verdict}


def markdown(results: dict[str, Any]) -> str:
    """The per-family table and the test-retest lines as Markdown (README, docs/lesion-level.md)."""
    def cell(value: Any, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    models = list(results.get("families", {}))
    lines = ["| family | " + " | ".join(f"{m}: detection / FP per patient / specificity / OOD flagged" for m in models)
             + " |", "| --- |" + " --- |" * len(models)]
    for family in FAMILIES:
        row = [results["families"][m].get(family) for m in models]
        if all(r is None for r in row):
            continue
        lines.append(f"| {family} | " + " | ".join(
            "not run" if r is None else f"{cell(r['detection_rate'])} / {cell(r['fp_per_patient'])} / "
            f"{cell(r['specificity'])} / {cell(r['ood_flagged'])}" for r in row) + " |")
    for model, retest in results.get("retest", {}).items():
        lines.append(f"\n{model}, test-retest ({retest['pairs']} pairs): cluster Dice mean {cell(retest['dice_mean'])} "
                     f"(median {cell(retest['dice_median'])}, {retest['dice_pairs']} pairs with a cluster), median "
                     f"top-peak distance {cell(retest['peak_distance_median_mm'], 1)} mm ({retest['peak_pairs']} pairs), "
                     f"detection agreement {cell(retest['agreement'])} (patients {cell(retest['patient_agreement'])})")
    return "\n".join(lines)


def main() -> int:
    args = _options()
    if args.table:
        print(markdown(json.loads(Path(args.results).read_text(encoding="utf-8"))))
        return 0
    import torch
    from FCDDetectLib.io.atomic_files import write_json_atomic
    from FCDTrainLib.experiment.train_run import train_run
    from FCDTrainLib.run_folder.layout import RunLayout

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = Path(args.results)
    results: dict[str, Any] = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    results.update({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, torch threads "
        f"{torch.get_num_threads()}, no GPU (CPU shared with other jobs)",
        "note": "synthetic data (fcd synth); lesion models at the demo's network scale on a 4 mm grid; not clinical "
        "performance",
        "options": {k: getattr(args, k) for k in ("train_subjects", "test_subjects", "full_subjects", "rescan_subjects",
                                                   "subtlety", "train_seed", "test_seed", "rescan_seed", "epochs", "lr",
                                                   "folds", "spacing", "shape")},
    })
    results.setdefault("models", {})
    results.setdefault("families", {})
    results.setdefault("hostile", {})
    results.setdefault("retest", {})

    def save() -> None:
        results["bar"] = _verdict(results)
        write_json_atomic(results_path, results)

    cohorts = {}
    for family in args.families:
        variant = dict(FAMILIES[family])
        size = variant.pop("size", "small")
        n = args.full_subjects if size == "full" else args.test_subjects
        if not args.train_only:
            cohorts[family] = _synth(work / f"family-{family}", n, args.test_seed, args.subtlety, size, **variant)
    rescans = None if args.no_rescans or args.train_only else _synth(
        work / "rescans", args.rescan_subjects, args.rescan_seed, args.subtlety, rescans=2)
    if args.synth_only:
        return 0

    bundles = {}
    for name in args.models:
        spec = MODELS[name]
        cohort = _synth(work / ("train-randomized" if spec["randomize"] else "train-standard"), args.train_subjects,
                        args.train_seed, args.subtlety, **({"randomize": True} if spec["randomize"] else {}))
        run_dir = work / f"run-{name}"
        started = time.perf_counter()
        train_run(_config(cohort, args, spec["augment"]), run_dir, only_fold=0, progress=False)
        metrics = json.loads(RunLayout(run_dir).metrics(0).read_text(encoding="utf-8"))
        history = json.loads((run_dir / "fold-0" / "history.json").read_text(encoding="utf-8"))
        lesion = metrics.get("lesion_level", {}).get("lesion_map", {})
        results["models"][name] = {
            "cohort": str(cohort), "scanner_augment": spec["augment"], "epochs_run": metrics.get("epochs_run"),
            "best_epoch": metrics.get("best_epoch"),
            "seconds_per_epoch": round(sum(h["seconds"] for h in history) / max(1, len(history)), 1),
            "first_epoch_val_dice_above_0": next((h["epoch"] for h in history if (h.get("val_dice") or 0) > 0), None),
            "held_out_fold0": {k: lesion.get(k) for k in FIGURES},
            "wall_seconds_this_call": round(time.perf_counter() - started, 1),
        }
        bundles[name] = RunLayout(run_dir).bundle(0)
        save()
    if args.train_only:
        return 0

    for name, bundle in bundles.items():
        for family, cohort in cohorts.items():
            if family in results["families"].get(name, {}):
                continue
            results["families"].setdefault(name, {})[family] = _evaluate(bundle, cohort)
            print(json.dumps({name: {family: {k: results["families"][name][family].get(k) for k in (
                "detection_rate", "fp_per_patient", "specificity", "ood_flagged")}}}), flush=True)
            save()
        if name not in results["hostile"] and "standard" in cohorts:
            results["hostile"][name] = _hostile(bundle, cohorts["standard"])
            save()
    if rescans is not None:
        for name, bundle in bundles.items():
            if name not in results["retest"]:
                results["retest"][name] = _retest(bundle, rescans, work / f"retest-{name}")
                print(json.dumps({name: {k: v for k, v in results["retest"][name].items() if k != "per_pair"}}),
                      flush=True)
                save()
    save()
    print(markdown(results))
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
