"""Run folders as ``fcd train`` leaves them, made without training, for the hostile-input tests.

:func:`prepared_run` writes what a first ``fcd train`` writes before its first epoch
(``config.json``, ``folds.json``, ``dataset.json``, ``skipped.json``) with the trainer's own
functions, so the same ``fcd train`` command resumes it; :func:`with_tiny_bundles` adds an
untrained bundle per fold, enough for ``fcd evaluate`` to reach its checks.

Example:
    >>> argv = prepared_run(write_cohort(tmp_path / "cohort"), tmp_path / "run")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from Testing.builders.hostile_fixtures import tiny_bundle
from Testing.builders.train_fixtures import train_args


def prepared_run(cohort: Path, out: Path, *extra: str) -> list[str]:
    """Write ``out`` as ``fcd train`` (:func:`train_args` of ``cohort`` + ``extra``) would before training.

    Returns the ``fcd train`` arguments that resume it.
    """
    from FCDDetectLib.cli import build_parser
    from FCDDetectLib.io.atomic_files import write_json_atomic
    from FCDTrainLib.cli import register_commands
    from FCDTrainLib.cli.config_options import config_from_args
    from FCDTrainLib.experiment.train_run import prepare
    from FCDTrainLib.run_folder.dataset_record import dataset_record, write_dataset_record
    from FCDTrainLib.run_folder.layout import RunLayout
    from FCDTrainLib.run_folder.run_config import write_config

    argv = train_args(cohort, out, *extra)
    config = config_from_args(build_parser(extra=(register_commands,)).parse_args(argv))
    subjects, warnings, folds = prepare(config, out)
    layout = RunLayout(out)
    write_config(out, config)
    write_json_atomic(layout.folds, [f.to_dict() for f in folds])
    write_dataset_record(out, dataset_record(subjects, config.modalities))
    write_json_atomic(layout.skipped, warnings)
    return argv


def with_tiny_bundles(run: Path, folds: int = 2) -> Path:
    """Put an untrained tiny bundle in each fold folder of ``run`` (what ``fcd evaluate`` loads)."""
    from FCDTrainLib.run_folder.layout import RunLayout

    for fold in range(folds):
        tiny_bundle(RunLayout(run).bundle(fold))
    return run
