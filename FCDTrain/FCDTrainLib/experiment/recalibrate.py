"""Calibrate and test a finished fold again with the current code, its weights untouched.

Folds finished under an older calibration rule (the operating point's grid, the lesion
evidence's score) are then compared under one rule (``benchmarks/bench_lesion.py --stage
recalibrate``): :func:`recalibrate_fold` runs what ``fcd train`` runs after a fold's last epoch
(:func:`FCDTrainLib.experiment.fold_calibration.calibrate_and_test`) on the fold's saved bundle.

Example:
    >>> metrics = recalibrate_fold("runs/r18-lesion", 0)  # doctest: +SKIP
    >>> metrics["operating_point"]["cluster_threshold"]  # doctest: +SKIP
    0.6
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

from FCDTrainLib.experiment.fold_calibration import calibrate_and_test
from FCDTrainLib.experiment.train_run import prepare, write_fold_files
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import RunLayout
from FCDTrainLib.run_folder.run_config import load_config

__all__ = ["recalibrate_fold"]

_TRAINING_FIGURES = ("fold", "best_epoch", "best_val_loss", "epochs_run", "stopped_early")
"""The training outcome's figures in ``metrics.json`` (kept by a recalibration)."""


def recalibrate_fold(run_dir: str | Path, fold: int, device: str = "cpu") -> dict[str, Any]:
    """Calibrate and test a finished fold again with the current code; rewrites its bundle and figures.

    The weights stay; ``model.fcdbundle``'s operating point, lesion evidence and metrics,
    ``predictions.csv`` and ``metrics.json`` are rewritten (each atomically, in that order). A
    recalibration stopped between two of them leaves the new bundle beside the old figures;
    running it again completes it (it is deterministic). Raises FCDInputError for a fold that
    has not finished or a run that cannot be read.
    """
    from FCDDetectLib.networks.bundle import load_bundle

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
    write_fold_files(layout, fold, bundle.model, bundle.metadata, rows, metrics)
    return metrics
