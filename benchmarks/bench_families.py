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

The families, models and their cohorts are in the ``families`` package next to this script
(``benchmarks/families/cohorts.py``), what is measured with each model in
``families/measures.py``, the bar and the Markdown table in ``families/verdict.py``; this
script parses the options, trains, runs the measurements and writes the figures.

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

from families.cohorts import FAMILIES, MODELS, model_config, synth
from families.measures import FIGURES, evaluate_family, hostile_flags, retest_pairs
from families.verdict import bar_verdict, markdown


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
        results["bar"] = bar_verdict(results)
        write_json_atomic(results_path, results)

    cohorts = {}
    for family in args.families:
        variant = dict(FAMILIES[family])
        size = variant.pop("size", "small")
        n = args.full_subjects if size == "full" else args.test_subjects
        if not args.train_only:
            cohorts[family] = synth(work / f"family-{family}", n, args.test_seed, args.subtlety, size, **variant)
    rescans = None if args.no_rescans or args.train_only else synth(
        work / "rescans", args.rescan_subjects, args.rescan_seed, args.subtlety, rescans=2)
    if args.synth_only:
        return 0

    bundles = {}
    for name in args.models:
        spec = MODELS[name]
        cohort = synth(work / ("train-randomized" if spec["randomize"] else "train-standard"), args.train_subjects,
                        args.train_seed, args.subtlety, **({"randomize": True} if spec["randomize"] else {}))
        run_dir = work / f"run-{name}"
        started = time.perf_counter()
        train_run(model_config(cohort, args, spec["augment"]), run_dir, only_fold=0, progress=False)
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
            results["families"].setdefault(name, {})[family] = evaluate_family(bundle, cohort)
            print(json.dumps({name: {family: {k: results["families"][name][family].get(k) for k in (
                "detection_rate", "fp_per_patient", "specificity", "ood_flagged")}}}), flush=True)
            save()
        if name not in results["hostile"] and "standard" in cohorts:
            results["hostile"][name] = hostile_flags(bundle, cohorts["standard"])
            save()
    if rescans is not None:
        for name, bundle in bundles.items():
            if name not in results["retest"]:
                results["retest"][name] = retest_pairs(bundle, rescans, work / f"retest-{name}")
                print(json.dumps({name: {k: v for k, v in results["retest"][name].items() if k != "per_pair"}}),
                      flush=True)
                save()
    save()
    print(markdown(results))
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
