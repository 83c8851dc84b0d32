"""A whole training run (``fcd train``): data, folds, cache, every fold, results.

The folder's layout (``config.json``, ``folds.json``, ``fold-K/model.fcdbundle``, ...) is
:class:`FCDTrainLib.run_folder.layout.RunLayout`'s. A run folder is untrusted input when it is
resumed: a link in it leading outside, a damaged ``config.json``, ``folds.json``,
``dataset.json``, lock or cache entry is one error naming the file, before any epoch runs; a
dataset whose files changed since the run started is refused
(:mod:`FCDTrainLib.run_folder.dataset_record`).

Example:
    >>> from FCDTrainLib.run_folder.run_config import RunConfig
    >>> summary = train_run(RunConfig(data="cohort/", depth=18, max_epochs=3), "runs/r18")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic, write_text_atomic
from FCDDetectLib.io.checksums import file_sha256
from FCDDetectLib.io.output_folder import check_output_folder
from FCDDetectLib.io.stale_files import remove_stale

from FCDTrainLib.run_folder.dataset_record import check_dataset, dataset_record, write_dataset_record
from FCDTrainLib.run_folder.event_log import EventLog
from FCDTrainLib.run_folder.layout import CONFIG_NAME, DATASET_NAME, RunLayout
from FCDTrainLib.run_folder.run_config import RunConfig, check_same_run, write_config
from FCDTrainLib.run_folder.run_files import check_links, read_json_object
from FCDTrainLib.training.folds import FoldSplit, make_folds, read_folds


def select_subjects(dataset: Any, config: RunConfig) -> tuple[list[Any], list[str]]:
    """Subjects usable by ``config`` and the reasons others were skipped.

    A subject lacking one of the run's modalities (e.g. no FLAIR with ``t1+flair``) is
    skipped with a warning; ``--protocol`` keeps only subjects of that protocol.
    """
    kept, skipped = [], []
    for subject in dataset.subjects:
        missing = [m for m in config.modalities if m not in subject.images or subject.images[m] is None]
        if missing:
            skipped.append(f"{subject.subject_id}: skipped, no {' and no '.join(missing)} image")
        elif config.protocol is not None and subject.protocol != config.protocol:
            skipped.append(f"{subject.subject_id}: skipped, protocol {subject.protocol!r} is not {config.protocol!r}")
        else:
            kept.append(subject)
    if config.protocol is not None and not kept:
        known = sorted({str(s.protocol) for s in dataset.subjects})
        raise FCDInputError(f"--protocol {config.protocol}: no subject has it; protocols: {', '.join(known[:8])}")
    return kept, skipped


def plan_folds(subjects: Sequence[Any], config: RunConfig) -> list[FoldSplit]:
    """The run's fold splits (see :func:`FCDTrainLib.training.folds.make_folds`)."""
    return make_folds(
        [s.subject_id for s in subjects], [s.label for s in subjects], n_folds=config.folds,
        seed=config.seed, val_fraction=config.val_fraction,
        protocols=[s.protocol for s in subjects] if config.stratify_protocol else None,
        fixed_test=[str(s.split or "").lower() == "test" for s in subjects] if config.use_split else None,
        source=str(config.data),
    )


def check_supervision(subjects: Sequence[Any], config: RunConfig) -> list[str]:
    """Lesion supervision needs ROIs: refuse a dataset whose patients have none; warn for some.

    Returns warnings (patients without an ROI train without a lesion loss).
    """
    if config.supervision != "lesion":
        return []
    patients = [s for s in subjects if int(s.label) == 1]
    without = [s.subject_id for s in patients if s.roi is None]
    if patients and len(without) == len(patients):
        raise FCDInputError(
            f"{config.data}: --supervision lesion needs lesion ROIs, but none of its {len(patients)} patients has one "
            "(use --supervision none, or add *_roi masks)"
        )
    return [f"{subject}: no ROI; trains without a lesion loss" for subject in without]


def prepare(config: RunConfig, run_dir: str | Path) -> tuple[list[Any], list[str], list[FoldSplit]]:
    """Every check that needs no writing: options, data, folds, weights, the RUN folder.

    Returns the subjects, the warnings and the fold splits. The dataset must match the run's
    ``dataset.json`` when it has one (:mod:`FCDTrainLib.run_folder.dataset_record`).
    """
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.training.fold_model import build_model

    config.validate()
    check_links(run_dir)  # no name of the run folder may lead outside it
    dataset = load_dataset(config.data)
    subjects, skipped = select_subjects(dataset, config)
    skipped = [*skipped, *check_supervision(subjects, config)]
    if config.weights:
        config.weights_sha256 = file_sha256(config.weights)
        build_model(config, 0)  # loads the weights: wrong depth or a corrupt file fail here
    check_same_run(run_dir, config)
    check_dataset(run_dir, dataset_record(subjects, config.modalities), config.data)  # before its folds
    folds = plan_folds(subjects, config)
    return subjects, [*dataset.warnings, *skipped], folds


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when usable, else ``cpu`` (``cuda`` without a GPU is an error)."""
    from FCDDetectLib.detection.detect import resolve_device as engine_resolve_device

    return engine_resolve_device(device)


def deterministic_cpu() -> None:
    """Deterministic kernels for CPU training (resume is bit-exact), without the NaN fill of new memory.

    ``torch.use_deterministic_algorithms(True)`` also sets
    ``torch.utils.deterministic.fill_uninitialized_memory``, which fills every new tensor
    (``torch.empty``) with NaN to catch reads of memory nobody wrote. That is a debugging
    guard, not a source of determinism: results are the same without it (the same history and
    weights, bit for bit), and on a loaded 2-core CPU it cost 17 % of a training step
    (``benchmarks/bench_train_pipeline.py``, variant ``fp32_fill``; ``aten::fill_``, 521 calls
    per step of the demo network, 15-19 % of a step's CPU time in profiles), so it is switched off.

    Example:
        >>> deterministic_cpu()
        >>> import torch
        >>> torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
        (True, False)
    """
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def _tensors(cache: Any, subjects: Sequence[Any], device: str):
    import torch

    x = torch.from_numpy(cache.stack(subjects))
    y = torch.tensor([int(s.label) for s in subjects], dtype=torch.long)
    if device == "cuda":  # the whole cohort fits easily on a GPU: no host-device copy per batch
        return x.to(device), y.to(device)
    return x, y


def fold_data(config: RunConfig, split: FoldSplit, subjects: dict[str, Any], cache: Any, device: str):
    """The :class:`~FCDTrainLib.training.trainer.FoldData` of a split (with lesion targets when supervised)."""
    import torch

    from FCDTrainLib.training.fold_data import FoldData

    train = [subjects[i] for i in split.train]
    val = [subjects[i] for i in split.val]
    data = FoldData(*_tensors(cache, train, device), *_tensors(cache, val, device))
    if config.supervision == "lesion":
        for part, group in (("train", train), ("val", val)):
            roi, known = cache.stack_rois(group)
            target = torch.from_numpy(roi)
            setattr(data, f"{part}_roi", target.to(device) if device == "cuda" else target)
            setattr(data, f"{part}_roi_known", torch.from_numpy(known))
    return data


def run_fold(config: RunConfig, split: FoldSplit, subjects: dict[str, Any], cache: Any, run_dir: Path,
             log: EventLog, device: str, later_folds: int, progress: bool) -> dict[str, Any]:
    """Train one fold (or resume it), test it, write its bundle, predictions and metrics."""
    from FCDDetectLib.grid.ood import summarise_ranges
    from FCDDetectLib.networks.bundle import ModelBundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata

    from FCDTrainLib.experiment.fold_calibration import calibrate_and_test
    from FCDTrainLib.training.trainer_registry import trainer_class

    layout = RunLayout(run_dir)
    folder = layout.fold(split.fold)
    trainer = trainer_class(config)(config, split.fold, fold_data(config, split, subjects, cache, device), folder,
                                    log, device=device, later_folds=later_folds, progress=progress)
    outcome = trainer.fit()
    trainer.data = None  # the fold's tensors are no longer needed
    model, provenance = trainer.model, trainer.provenance  # built once per fold
    model.load_state_dict(outcome.best_state)
    model.to(device).eval()
    name = f"resnet{config.depth}-{config.pretrained}-{config.modality.replace('+', '-')}-fold{split.fold}"
    if config.supervision != "none":
        name = name.replace(f"-fold{split.fold}", f"-{config.supervision}-fold{split.fold}")
    training = {
        **{k: v for k, v in config.to_dict().items() if k not in ("device", "workers")},
        **provenance, "fold": split.fold, "n_train": len(split.train), "n_val": len(split.val),
        "n_test": len(split.test), "test_subjects": split.test, "best_epoch": outcome.best_epoch,
        "best_val_loss": outcome.best_val_loss, "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early, "device": device,
    }
    meta = BundleMetadata(depth=config.depth, geometry=config.geometry, modalities=config.modalities,
                          target_spacing=list(config.spacing), target_shape=list(config.shape),
                          name=name, training=training, input_ranges=summarise_ranges(
                              cache.statistics(subjects[i]) for i in split.train), head=provenance["head"],
                          explain_method=config.explain_method, explain_layer=config.explain_layer)
    bundle = ModelBundle(metadata=meta, model=model, path=layout.bundle(split.fold))
    rows, metrics = calibrate_and_test(config, split, subjects, cache, bundle, log, device)
    metrics.update(fold=split.fold, best_epoch=outcome.best_epoch, best_val_loss=outcome.best_val_loss,
                   epochs_run=outcome.epochs_run, stopped_early=outcome.stopped_early)
    write_fold_files(layout, split.fold, model, meta, rows, metrics, outcome.history)
    for leftover in [layout.checkpoint(split.fold), *folder.glob("best-*.pt")]:
        leftover.unlink(missing_ok=True)
    return metrics


def write_fold_files(layout: RunLayout, fold: int, model: Any, meta: Any, rows: list[dict], metrics: dict[str, Any],
                     history: list[dict] | None = None) -> None:
    """A tested fold's files: its bundle (``meta`` with ``metrics``), predictions, history, then ``metrics.json``.

    Each file is written atomically; ``metrics.json`` comes last because it marks the fold as done
    (:meth:`RunLayout.fold_done`). ``history`` None leaves ``history.json`` as it is.

    Example:
        >>> write_fold_files(RunLayout("runs/r18"), 0, model, meta, rows, metrics, history)  # doctest: +SKIP
    """
    from FCDTrainLib.evaluation.fold_eval import predictions_csv

    meta.metrics = {k: v for k, v in metrics.items() if k != "warnings"}
    write_bundle(layout.bundle(fold), model.cpu(), meta)
    write_text_atomic(layout.predictions(fold), predictions_csv(rows))
    if history is not None:
        write_json_atomic(layout.fold(fold) / "history.json", history)
    write_json_atomic(layout.metrics(fold), metrics)


def write_bundle(path: Path, model: Any, meta: Any) -> None:
    """:func:`~FCDDetectLib.networks.bundle.save_bundle`, with a full disk reported as ``ENOSPC``.

    torch's writer, given a file name, reports a full disk as ``RuntimeError("... unexpected
    pos ...")``. When the folder then has fewer free bytes than the weights need (the failed
    bundle's temporary folder is already removed), the write failed for lack of space, and the
    ``OSError`` says so; any other ``RuntimeError`` is raised as it is.
    """
    from FCDDetectLib.networks.bundle import save_bundle

    try:
        save_bundle(path, model, meta)
    except RuntimeError:
        needed = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        if shutil.disk_usage(path.parent).free >= needed:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None


RUN_FILES = (CONFIG_NAME, "folds.json", "skipped.json", DATASET_NAME, "events.jsonl", "summary.json")


def _build_cache(cache: Any, subjects: Sequence[Any], run_dir: Path, fresh: bool, with_rois: bool = False) -> None:
    """Preprocess ``subjects`` (and the patients' ROIs when ``with_rois``) into the cache; a refused
    fresh run removes what it created."""
    created = [p for p in (run_dir, run_dir / "cache", cache.folder) if not p.exists()]
    try:
        cache.build(subjects, with_rois=with_rois)
    except (FCDInputError, OSError):  # OSError: a full disk
        if fresh:
            for path in reversed(created):  # deepest first; only what this invocation made
                shutil.rmtree(path, ignore_errors=True)
        raise


def summarise_run(run_dir: str | Path, n_folds: int) -> dict[str, Any] | None:
    """Per-fold metrics and their mean/std (sample sd), or None while a fold is missing."""
    from FCDTrainLib.evaluation.metrics import summarise_folds

    layout = RunLayout(run_dir)
    folds = []
    for fold in range(n_folds):
        if not layout.fold_done(fold):
            return None
        folds.append(read_json_object(layout.metrics(fold), "fold metrics"))
    from FCDTrainLib.evaluation.fold_eval import SUMMARY_METRICS

    return {"folds": folds, **summarise_folds(dict(enumerate(folds)), SUMMARY_METRICS)}


def train_run(config: RunConfig, run_dir: str | Path, only_fold: int | None = None,
              progress: bool = True, cleanup_cache: bool = False) -> dict[str, Any]:
    """Run (or resume) every fold of ``config`` into ``run_dir``; returns the run summary.

    ``only_fold`` runs a single fold (others can run later, or elsewhere, into the same
    folder). Raises :class:`FCDInputError` before writing anything for bad input.
    """

    from FCDTrainLib.training.input_cache import VolumeCache

    run_dir = Path(run_dir)
    check_output_folder(run_dir, RUN_FILES)  # before anything is read or computed
    subjects, warnings, folds = prepare(config, run_dir)
    if only_fold is not None and not 0 <= only_fold < config.folds:
        raise FCDInputError(f"--fold {only_fold}: expected 0..{config.folds - 1}")
    device = resolve_device(config.device)
    layout = RunLayout(run_dir)
    folds_path = layout.folds
    fold_dicts = [f.to_dict() for f in folds]
    if folds_path.is_file() and read_folds(folds_path, config.folds) != folds:
        raise FCDInputError(f"{folds_path}: the dataset changed since this run started (other fold splits)")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    todo = [f for f in folds if only_fold is None or f.fold == only_fold]
    pending = [f for f in todo if not layout.fold_done(f.fold)]
    by_id = {s.subject_id: s for s in subjects}
    cache = VolumeCache(layout.cache, config.spacing, config.shape, config.modalities)
    fresh = not layout.config.exists()
    log = None if fresh else EventLog(layout.events)
    for folder in (run_dir, cache.folder, *(layout.fold(f.fold) for f in pending)):
        remove_stale(folder)  # temporary files of killed runs
    try:
        # The validation pass: every image the pending folds need is read and preprocessed
        # (into the cache, with the patients' ROIs for lesion supervision) before the run's own
        # files exist, so a refused run leaves nothing that would lock the folder.
        _build_cache(cache, [by_id[i] for i in sorted({i for f in pending for i in (*f.train, *f.val, *f.test)})],
                     run_dir, fresh, with_rois=config.supervision == "lesion")
        write_config(run_dir, config)
        log = log or EventLog(layout.events)
        write_json_atomic(folds_path, fold_dicts)
        if not layout.dataset.is_file():  # the first start (or a run older than the record)
            write_dataset_record(run_dir, dataset_record(subjects, config.modalities))  # digests cached
        write_json_atomic(layout.skipped, warnings)
        if device == "cpu":
            deterministic_cpu()
        log.emit("start", folds=[f.fold for f in todo], pending=[f.fold for f in pending],
                 max_epochs=config.max_epochs, n_subjects=len(subjects), device=device, warnings=len(warnings))
        if cache.built:
            log.emit("cache", built=cache.built, key=cache.key)
        for index, split in enumerate(pending):
            metrics = run_fold(config, split, by_id, cache, run_dir, log, device,
                               later_folds=len(pending) - index - 1, progress=progress)
            log.emit("fold_done", fold=split.fold, metrics={k: metrics.get(k) for k in (
                "accuracy", "roc_auc", "heat_score", "lesion_detection_rate", "fp_per_control",
                "best_epoch", "epochs_run")})
    except FCDInputError as error:
        if log is not None:
            log.emit("error", message=str(error))
        raise
    except Exception as error:  # noqa: BLE001 - logged for the GUI, then re-raised
        if log is not None:
            log.emit("error", message=f"{type(error).__name__}: {error}")
        raise
    summary = summarise_run(run_dir, config.folds)
    if summary is not None:
        write_json_atomic(layout.summary, summary)
        if cleanup_cache:
            shutil.rmtree(layout.cache, ignore_errors=True)
    log.emit("done", folds=[f.fold for f in todo], complete=summary is not None,
             summary={k: summary[k] for k in ("accuracy", "roc_auc", "heat_score")} if summary else None)
    return summary or {"folds": [read_json_object(layout.metrics(f.fold), "fold metrics") for f in todo]}
