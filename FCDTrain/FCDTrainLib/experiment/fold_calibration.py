"""A trained fold's last steps: its lesion operating point and evidence on validation, then its test figures.

:func:`calibrate_and_test` is what ``fcd train`` does after a fold's last epoch
(:func:`FCDTrainLib.experiment.train_run.run_fold`): a lesion model's operating point and
lesion-evidence threshold are chosen on the fold's validation subjects
(:mod:`FCDTrainLib.evaluation.calibration`), then the fold's test subjects are evaluated with
them. :func:`recalibrate_fold` does the same again on a finished fold with the current code
(its weights untouched), so that folds finished under an older calibration rule are compared
under one rule (``benchmarks/bench_lesion.py --stage recalibrate``).

Example:
    >>> metrics = recalibrate_fold("runs/r18-lesion", 0)  # doctest: +SKIP
    >>> metrics["operating_point"]["cluster_threshold"]  # doctest: +SKIP
    0.6
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic, write_text_atomic

from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import RunLayout
from FCDTrainLib.run_folder.run_config import RunConfig, load_config

__all__ = ["calibrate_and_test", "recalibrate_fold"]

_TRAINING_FIGURES = ("fold", "best_epoch", "best_val_loss", "epochs_run", "stopped_early")
"""The training outcome's figures in ``metrics.json`` (kept by a recalibration)."""


def calibrate_and_test(config: RunConfig, split: Any, subjects: dict[str, Any], cache: Any, bundle: Any,
                       log: EventLog, device: str) -> tuple[list[dict], dict[str, Any]]:
    """Calibrate a lesion fold's bundle on its validation subjects (in place), then evaluate its test subjects.

    Returns the test rows and metrics of :func:`FCDTrainLib.evaluation.fold_eval.evaluate_subjects`
    with ``operating_point`` and ``lesion_evidence`` added (None for a model without a lesion head
    or a run without an FP target).
    """
    from FCDTrainLib.evaluation.fold_eval import evaluate_subjects

    meta = bundle.metadata
    if config.supervision == "lesion" and config.operating_fp_per_control is not None:
        from FCDTrainLib.evaluation.calibration import calibrate_lesion_model

        # chosen on the fold's validation subjects only; the test subjects stay held out
        meta.operating_point, meta.lesion_evidence, notes = calibrate_lesion_model(
            bundle, [subjects[i] for i in split.val], config.operating_fp_per_control, device)
        for note in notes:
            log.emit("warning", fold=split.fold, message=note)
    rows, metrics = evaluate_subjects(bundle, [subjects[i] for i in split.test], cache,
                                      config.detect_options(device), batch_size=config.batch_size)
    for warning in metrics["warnings"]:
        log.emit("warning", fold=split.fold, message=warning)
    metrics.update(operating_point=meta.operating_point, lesion_evidence=meta.lesion_evidence)
    return rows, metrics


def recalibrate_fold(run_dir: str | Path, fold: int, device: str = "cpu") -> dict[str, Any]:
    """Calibrate and test a finished fold again with the current code; rewrites its bundle and figures.

    The weights stay; ``model.fcdbundle``'s operating point, lesion evidence and metrics,
    ``predictions.csv`` and ``metrics.json`` are rewritten (each atomically). Raises
    FCDInputError for a fold that has not finished or a run that cannot be read.
    """
    from FCDDetectLib.networks.bundle import load_bundle

    from FCDTrainLib.evaluation.fold_eval import predictions_csv
    from FCDTrainLib.experiment.train_run import prepare, write_bundle
    from FCDTrainLib.run_folder.run_files import read_json_object
    from FCDTrainLib.training.input_cache import VolumeCache

    run_dir, layout = Path(run_dir), RunLayout(run_dir)
    config = load_config(run_dir)
    if not 0 <= int(fold) < config.folds:
        raise FCDInputError(f"fold {fold}: expected 0..{config.folds - 1} ({run_dir} has {config.folds} folds)")
    if not layout.fold_done(fold):
        raise FCDInputError(f"{layout.metrics(fold)}: fold {fold} has not finished; nothing to recalibrate")
    subjects, _, folds = prepare(config, run_dir)
    split = next(f for f in folds if f.fold == fold)
    by_id = {s.subject_id: s for s in subjects}
    cache = VolumeCache(layout.cache, config.spacing, config.shape, config.modalities)
    previous = read_json_object(layout.metrics(fold), "fold metrics")
    bundle = load_bundle(layout.bundle(fold), device=device)
    rows, metrics = calibrate_and_test(config, split, by_id, cache, bundle, EventLog(layout.events), device)
    metrics.update({k: previous.get(k) for k in _TRAINING_FIGURES})
    bundle.metadata.metrics = {k: v for k, v in metrics.items() if k != "warnings"}
    write_bundle(layout.bundle(fold), bundle.model.cpu(), bundle.metadata)
    write_text_atomic(layout.predictions(fold), predictions_csv(rows))
    write_json_atomic(layout.metrics(fold), metrics)
    return metrics
