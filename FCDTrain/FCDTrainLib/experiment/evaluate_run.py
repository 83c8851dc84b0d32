"""Recompute the metrics of a finished run, on its own test folds or on an external set.

Without ``data``: each fold's bundle is tested again on that fold's test subjects
(``RUN/folds.json``), which re-checks the saved bundles and regenerates the numbers.

With ``data`` (an external dataset, folder or CSV manifest): every subject goes through
every fold's model. Reported per fold (accuracy, ROC-AUC, Heat-Score and the lesion-level
figures: detection rate, cluster specificity, FP clusters per patient and per control,
peak-in-ROI rate, Dice; see ``FCDDetectLib.maps.lesion_metrics``) with mean +/- std over folds,
and for the ensemble: the mean of the folds' FCD probabilities (thresholded
at the bundles' threshold) and, per patient, the mean of the folds' Heat-Scores. The
model grid, the input modalities and the threshold are read from the fold bundles (what
``fcd detect`` uses), not from ``config.json``; bundles that disagree are an error.

Results go to ``OUT`` (default ``RUN/evaluation`` or ``RUN/evaluation-<data name>``):
``predictions.csv`` and ``metrics.json``. ``OUT`` is never the run folder itself nor inside
a fold folder, the cache or the lock (a fold's training ``metrics.json`` and
``predictions.csv`` would be overwritten).

The run folder is untrusted input: a link in it that leads outside is refused, and so is a
damaged ``config.json``, ``folds.json`` or ``dataset.json``
(:mod:`FCDTrainLib.run_folder.run_files`). Without ``data`` the dataset at the run's data
path must be the one the run was trained on (:mod:`FCDTrainLib.run_folder.dataset_record`;
for runs older than that record, the same fold splits), as ``fcd train`` requires on a resume.

Example:
    >>> report = evaluate_run("runs/r18-flair", data="external-cohort/")  # doctest: +SKIP
    >>> report["ensemble"]["accuracy"], report["folds_summary"]["accuracy"]["mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.run_folder.layout import CACHE_NAME, METRICS_NAME, PREDICTIONS_NAME, RunLayout, is_fold_name
from FCDTrainLib.run_folder.run_files import check_links, inside
from FCDTrainLib.run_folder.run_lock import LOCK_DIR


def _bundles(layout: RunLayout, n_folds: int, allow_missing: bool = False) -> tuple[dict[int, Path], list[int]]:
    """The fold bundles, and the folds without one (an error unless ``allow_missing``)."""
    from FCDDetectLib.networks.bundle_metadata import METADATA_FILE

    wanted = {k: layout.bundle(k) for k in range(n_folds)}
    found = {k: p for k, p in wanted.items() if (p / METADATA_FILE).is_file()}
    if not found:
        raise FCDInputError(f"{layout.root}: no fold has a model bundle yet ({layout.bundle(0).relative_to(layout.root)}"
                            " for fold 0); train first")
    missing = sorted(set(wanted) - set(found))
    if missing and not allow_missing:
        raise FCDInputError(
            f"{wanted[missing[0]]}: missing (fold{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} of {n_folds} not trained yet); finish the run with fcd train, "
            "or pass --allow-missing to evaluate the other folds")
    return found, missing


def _shared(values: dict[int, Any], what: str, run_dir: Path) -> Any:
    """The one value every fold bundle has for ``what`` (grid, modalities, threshold)."""
    distinct = {json.dumps(v) for v in values.values()}
    if len(distinct) != 1:
        raise FCDInputError(f"{run_dir}: the fold bundles differ in {what} ({'; '.join(sorted(distinct))})")
    return next(iter(values.values()))


def _test_ids(run_dir: Path, config: Any, subjects: list[Any]) -> dict[int, list[str]]:
    """Each fold's test subject ids (``RUN/folds.json``), the dataset checked against the run first.

    The dataset must be the one the run was trained on: its ``dataset.json`` record, or for
    older runs the same fold splits (what ``fcd train`` compares on a resume).
    """
    from FCDTrainLib.experiment.train_run import plan_folds
    from FCDTrainLib.run_folder.dataset_record import check_dataset, dataset_record
    from FCDTrainLib.training.folds import read_folds

    folds_path = RunLayout(run_dir).folds
    if not folds_path.is_file():
        raise FCDInputError(f"{folds_path}: not found; is {run_dir} a training run folder?")
    recorded = read_folds(folds_path, config.folds)
    if not check_dataset(run_dir, dataset_record(subjects, config.modalities), config.data):
        by_id = {s.subject_id for s in subjects}
        missing = sorted({i for split in recorded for i in split.test} - by_id)
        if missing:
            raise FCDInputError(f"{config.data}: test subjects of the run are gone: {', '.join(missing[:5])}")
        try:
            same = plan_folds(subjects, config) == recorded
        except FCDInputError:
            same = False
        if not same:
            raise FCDInputError(f"{config.data}: the dataset changed since this run was trained (its subjects or "
                                f"labels give other fold splits than {folds_path}); restore that data")
    return {split.fold: split.test for split in recorded}


def check_evaluation_out(out_dir: Path, layout: RunLayout) -> None:
    """Refuse an ``--out`` that is the run folder or lies in one of its folds, its cache or its lock.

    ``fcd evaluate`` writes ``metrics.json`` and ``predictions.csv``, the names of a fold's
    own training results: written into a fold folder they would replace them.

    Example:
        >>> check_evaluation_out(Path("runs/r18/fold-0"), RunLayout("runs/r18"))
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: --out runs/r18/fold-0: lies inside fold-0 of the run runs/r18; fcd evaluate never writes into the run's own folders (a fold's metrics.json and predictions.csv would be replaced): use RUN/evaluation (the default) or a folder outside the run
    """
    if not inside(layout.root, out_dir):
        return
    parts = out_dir.resolve().relative_to(layout.root.resolve()).parts
    if parts and not (parts[0] in (CACHE_NAME, LOCK_DIR) or is_fold_name(parts[0])):
        return
    where = f"lies inside {parts[0]} of the run" if parts else "is the run folder"
    raise FCDInputError(f"--out {out_dir}: {where} {layout.root}; fcd evaluate never writes into the run's own "
                        "folders (a fold's metrics.json and predictions.csv would be replaced): use RUN/evaluation "
                        "(the default) or a folder outside the run")


def run_test_sets(run_dir: str | Path) -> tuple[Any, dict[int, Path], dict[int, list[Any]]]:
    """A run's config, its fold bundles and each fold's test subjects (fold -> [Subject]).

    Example:
        >>> config, bundles, tests = run_test_sets("runs/r18-flair")  # doctest: +SKIP
    """
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.experiment.train_run import select_subjects
    from FCDTrainLib.run_folder.run_config import load_config

    run_dir = Path(run_dir)
    check_links(run_dir)
    config = load_config(run_dir)
    bundles, _ = _bundles(RunLayout(run_dir), config.folds)
    subjects, _ = select_subjects(load_dataset(config.data), config)
    by_id = {s.subject_id: s for s in subjects}
    test_ids = _test_ids(run_dir, config, subjects)
    return config, bundles, {fold: [by_id[i] for i in test_ids.get(fold, [])] for fold in bundles}


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, out: str | Path | None = None,
                 device: str = "auto", method: str | None = None, allow_missing: bool = False,
                 layer: str | None = None) -> dict[str, Any]:
    """Evaluate every fold bundle of ``run_dir``; see the module docstring. Returns the report.

    A fold without a bundle is an error (FCDInputError naming it) unless ``allow_missing``:
    then the report lists it under ``missing_folds``. ``layer`` is the stage of the CAM
    methods (None: each bundle's default, else layer4).
    """
    from FCDDetectLib.io.atomic_files import csv_text
    from FCDDetectLib.io.output_folder import check_output_folder
    from FCDDetectLib.io.output_set import OutputSet
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.evaluation.fold_eval import PREDICTION_COLUMNS, SUMMARY_METRICS, evaluate_subjects
    from FCDTrainLib.evaluation.metrics import classification_metrics, summarise_folds, summarise_heat
    from FCDTrainLib.experiment.train_run import resolve_device, select_subjects
    from FCDTrainLib.run_folder.run_config import load_config
    from FCDTrainLib.training.input_cache import VolumeCache

    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    check_links(run_dir)  # before anything of the run is read or written
    config = load_config(run_dir)
    method = method or config.explain_method
    device = resolve_device(device)
    options = config.detect_options(device).replace(method=method, layer=layer)  # layer None: each bundle's
    bundles, missing_folds = _bundles(layout, config.folds, allow_missing)
    name = None if data is None else (Path(str(data)).stem or "external")
    out_dir = Path(out) if out is not None else layout.evaluation(name)
    check_evaluation_out(out_dir, layout)
    check_output_folder(out_dir, (PREDICTIONS_NAME, METRICS_NAME), option="--out")  # before computing
    # The grid, the inputs and the threshold are the bundles' (what detection uses), not config.json's.
    metadata = {k: read_bundle_metadata(p) for k, p in bundles.items()}
    spacing = _shared({k: list(m.target_spacing) for k, m in metadata.items()}, "grid spacing", run_dir)
    shape = _shared({k: list(m.target_shape) for k, m in metadata.items()}, "grid shape", run_dir)
    modalities = _shared({k: list(m.modalities) for k, m in metadata.items()}, "modalities", run_dir)
    threshold = float(_shared({k: m.threshold for k, m in metadata.items()}, "threshold", run_dir))
    dataset = load_dataset(data if data is not None else config.data)
    subjects, skipped = select_subjects(dataset, config)
    by_id = {s.subject_id: s for s in subjects}
    if data is None:
        test_sets = _test_ids(run_dir, config, subjects)
    elif not subjects:
        raise FCDInputError(f"{data}: no subject has the run's modalities ({'+'.join(modalities)})")
    cache = VolumeCache(layout.cache, spacing, shape, modalities)

    per_fold: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    by_subject: dict[str, dict[str, Any]] = {}
    for fold, path in sorted(bundles.items()):
        bundle = load_bundle(path, device=device)
        fold_subjects = [by_id[i] for i in test_sets[fold]] if data is None else subjects
        fold_rows, metrics = evaluate_subjects(bundle, fold_subjects, cache, options,
                                               batch_size=config.batch_size)
        per_fold[fold] = metrics
        for row in fold_rows:
            rows.append({"fold": fold, **row})
            entry = by_subject.setdefault(row["subject"], {"subject": row["subject"], "label": row["label"],
                                                           "probs": [], "heats": []})
            entry["probs"].append(row["probability"])
            if row["heat_score"] is not None:
                entry["heats"].append(row["heat_score"])
    report: dict[str, Any] = {
        "run": str(run_dir), "data": str(data if data is not None else config.data),
        "external": data is not None, "method": method, "layer": layer, "skipped": skipped,
        "missing_folds": missing_folds,
        "folds": {str(k): v for k, v in per_fold.items()},
        "folds_summary": summarise_folds(per_fold, SUMMARY_METRICS),
        "threshold": threshold,
    }
    columns = ["fold", *PREDICTION_COLUMNS]
    if data is not None:
        ensemble_rows = []
        for entry in by_subject.values():
            prob = float(np.mean(entry["probs"]))
            ensemble_rows.append({"fold": "ensemble", "subject": entry["subject"], "label": entry["label"],
                                  "probability": prob, "prediction": int(prob >= threshold),
                                  "heat_score": float(np.mean(entry["heats"])) if entry["heats"] else None})
        ensemble = classification_metrics([r["label"] for r in ensemble_rows],
                                          [r["probability"] for r in ensemble_rows], threshold)
        ensemble.update(summarise_heat({r["subject"]: r["heat_score"] for r in ensemble_rows}))
        report["ensemble"] = ensemble
        rows.extend(ensemble_rows)
    with OutputSet(out_dir, manifest_name=METRICS_NAME) as staged:  # both files as one unit
        (staged.folder / PREDICTIONS_NAME).write_text(csv_text(rows, columns), encoding="utf-8")
        staged.manifest = report
    report["out"] = str(out_dir)
    return report
