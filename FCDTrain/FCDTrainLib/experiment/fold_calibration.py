"""A trained fold's last steps: its lesion operating point and evidence on validation, then its test figures.

:func:`calibrate_and_test` is what ``fcd train`` does after a fold's last epoch
(:func:`FCDTrainLib.experiment.train_run.run_fold`): a lesion model's operating point and
lesion-evidence threshold are chosen on the fold's validation subjects
(:mod:`FCDTrainLib.evaluation.calibration`), then the fold's test subjects are evaluated with
them. :func:`FCDTrainLib.experiment.recalibrate.recalibrate_fold` does the same again on a
finished fold. A lesion model trained with left-right flips (``--flip``) is first told to mirror
its lesion map along that axis (the bundle's ``lesion_mirror_axes``), so that its calibration and
test figures, and every later ``fcd detect``, read the mean of the scan and its mirror.

Example:
    >>> rows, metrics = calibrate_and_test(config, split, subjects, cache, bundle, log, "cpu")  # doctest: +SKIP
    >>> metrics["operating_point"]["cluster_threshold"]  # doctest: +SKIP
    0.6
"""

from __future__ import annotations

from typing import Any

from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.run_config import RunConfig

__all__ = ["calibrate_and_test"]


def calibrate_and_test(config: RunConfig, split: Any, subjects: dict[str, Any], cache: Any, bundle: Any,
                       log: EventLog, device: str) -> tuple[list[dict], dict[str, Any]]:
    """Calibrate a lesion fold's bundle on its validation subjects (in place), then evaluate its test subjects.

    Returns the test rows and metrics of :func:`FCDTrainLib.evaluation.fold_eval.evaluate_subjects`
    with ``operating_point`` and ``lesion_evidence`` added (None for a model without a lesion head
    or a run without an FP target).
    """
    from FCDTrainLib.evaluation.fold_eval import evaluate_subjects

    meta = bundle.metadata
    if config.supervision == "lesion":
        from FCDDetectLib.grid.preprocess import LEFT_RIGHT_AXIS

        # a model trained with left-right flips maps a scan as the mean of it and its mirror
        # (test-time mirroring); set before calibrating, so the operating point fits that mean
        meta.lesion_mirror_axes = [LEFT_RIGHT_AXIS] if config.flip else None
        if config.operating_fp_per_control is not None:
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
