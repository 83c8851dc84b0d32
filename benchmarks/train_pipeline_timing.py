"""What benchmarks/bench_train_pipeline.py times: the bare training loop and the real pipeline.

- :class:`BareLoop` / :func:`bare_loops`: the limit (forward + cross-entropy + backward +
  Adam on random tensors on the device, under the Trainer's precision policy) and its
  variants, their steps interleaved;
- :func:`timed_trainer_class` / :func:`pipeline`: cohort -> folds -> VolumeCache ->
  fold_data -> ``Trainer.fit()`` with the Trainer's hooks timed.

The script (``python benchmarks/bench_train_pipeline.py``) parses the options, runs these,
and writes the figures; its docstring says what each figure means. Imported as
``train_pipeline_timing`` from the benchmarks folder (the script's folder is on
``sys.path``).
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from FCDTrainLib.run_folder.run_config import RunConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------ the limit
def _variant_context(variant: str, device: torch.device):
    from FCDTrainLib.training.fold_model import autocast_context

    if variant == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if variant in ("policy", "fp32_fill"):
        return autocast_context(device)
    return nullcontext()


class BareLoop:
    """Forward + CE + backward + Adam on random tensors on ``device``, one variant.

    With ``config.supervision == "lesion"`` the network has the lesion head and the loss is
    the lesion trainer's (CE + :func:`~FCDTrainLib.training.lesion_trainer.lesion_loss_function`
    on a random target: a cube in each volume), so the limit does the decoder's work too.

    ``policy``: the Trainer's precision (the limit); ``fp32``; ``fp32_fill`` (fp32 with
    ``torch.utils.deterministic.fill_uninitialized_memory`` on, as ``fcd train`` ran before
    :func:`FCDTrainLib.experiment.train_run.deterministic_cpu`); ``channels_last``; ``bf16``; ``compile``.
    Each :meth:`step` returns its wall time; the first step (for ``compile``: the
    compilation) is timed in ``first_step_seconds``.
    """

    def __init__(self, config: RunConfig, device: torch.device, variant: str) -> None:
        from FCDTrainLib.training.fold_model import build_model

        self.config, self.device, self.variant = config, device, variant
        model, _ = build_model(config, 0)  # the fold's very network and initialisation
        model.to(device).train()
        self.x = torch.randn(config.batch_size, len(config.modalities), *config.shape, device=device)
        self.y = torch.randint(0, 2, (config.batch_size,), device=device)
        self.lesion = config.supervision == "lesion"
        if self.lesion:
            from FCDTrainLib.training.lesion_trainer import lesion_loss_function

            self.lesion_loss = lesion_loss_function()
            self.roi = torch.zeros(config.batch_size, 1, *config.shape, device=device)
            corner = [n // 3 for n in config.shape]
            self.roi[(slice(None), slice(None), *[slice(c, c + max(2, c // 3)) for c in corner])] = 1.0
        if variant == "channels_last":
            model = model.to(memory_format=torch.channels_last_3d)
            self.x = self.x.contiguous(memory_format=torch.channels_last_3d)
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.model = model
        self.forward = torch.compile(model) if variant == "compile" else model
        self.times: list[float] = []
        self.first_step_seconds = self.step(record=False)

    def step(self, record: bool = True) -> float:
        fill = torch.utils.deterministic.fill_uninitialized_memory
        if self.variant == "fp32_fill":
            torch.utils.deterministic.fill_uninitialized_memory = torch.are_deterministic_algorithms_enabled()
        try:
            _sync(self.device)
            started = time.perf_counter()
            with _variant_context(self.variant, self.device):
                if self.lesion:
                    logits, lesion_logits = self.model.forward_with_lesion(self.x)
                else:
                    logits = self.forward(self.x)
            loss = F.cross_entropy(logits.float(), self.y)
            if self.lesion:
                loss = loss + float(self.config.lesion_weight) * self.lesion_loss(lesion_logits.float(), self.roi)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            _sync(self.device)
            seconds = time.perf_counter() - started
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = fill
        if record:
            self.times.append(seconds)
        return seconds

    def figures(self) -> dict[str, Any]:
        """Fastest and median step (the fastest is the least disturbed on a shared machine)."""
        fastest, median = min(self.times), statistics.median(self.times)
        batch = self.config.batch_size
        return {"variant": self.variant, "steps": len(self.times), "step_seconds_min": round(fastest, 4),
                "step_seconds_median": round(median, 4), "volumes_per_second": round(batch / fastest, 3),
                "volumes_per_second_median": round(batch / median, 3),
                "first_step_seconds": round(self.first_step_seconds, 2)}


def bare_loops(config: RunConfig, device: torch.device, variants: list[str], iters: int,
               warmup: int) -> dict[str, dict[str, Any]]:
    """Every variant's :class:`BareLoop`, their steps interleaved (one of each in turn), so a
    change of the machine's load falls on all of them alike."""
    loops = [BareLoop(config, device, variant) for variant in variants]
    for _ in range(max(0, warmup - 1)):
        for loop in loops:
            loop.step(record=False)
    for _ in range(iters):
        for loop in loops:
            loop.step()
    return {loop.variant: loop.figures() for loop in loops}


# --------------------------------------------------------------------- the pipeline
def timed_trainer_class(device: torch.device, limit: BareLoop, limit_steps: int):
    """The limit's config's trainer (``Trainer`` or ``LesionTrainer``), its hooks adding their wall
    time to ``self.seconds`` (the real hooks run).

    After each training epoch (outside its timers) ``limit`` takes ``limit_steps`` steps, so
    each epoch has a measurement of the limit taken under the same load.
    """
    from FCDTrainLib.training.trainer_registry import trainer_class

    class TimedTrainer(trainer_class(limit.config)):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.epochs: list[dict[str, Any]] = []
            self.seconds: dict[str, Any] = {}

        def _timed(self, name: str, call, *args: Any):
            _sync(device)
            started = time.perf_counter()
            result = call(*args)
            _sync(device)
            seconds = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            if name in ("batch_train", "augment", "step") and self.seconds.get("iterations"):
                self.seconds["iterations"][-1][1] += seconds  # this batch's input + step time
            return result

        def batch(self, x, y, index, part):
            if part == "train":
                self.seconds["iterations"] = [*self.seconds.get("iterations", []), [int(index.numel()), 0.0]]
            return self._timed(f"batch_{part}", super().batch, x, y, index, part)

        def augment(self, batch, generator):
            return self._timed("augment", super().augment, batch, generator)

        def step(self, batch):
            return self._timed("step", super().step, batch)

        def validation_metrics(self):
            return self._timed("validation", super().validation_metrics)

        def save_checkpoint(self, payload):
            return self._timed("checkpoint", super().save_checkpoint, payload)

        def _train_epoch(self, generator):
            self.seconds = {}
            result = self._timed("train_epoch", super()._train_epoch, generator)
            self.seconds["limit_steps"] = [limit.step() for _ in range(limit_steps)]
            self.epochs.append(self.seconds)
            return result

    return TimedTrainer


def pipeline(config: RunConfig, work: Path, device: torch.device, n_subjects: int,
             cohort: Path | None, limit_steps: int = 2) -> dict[str, Any]:
    """Cohort -> folds -> VolumeCache -> fold_data -> Trainer.fit(), timed (see the module docstring)."""
    from FCDTrainLib.data.synth.write_cohort import synth_cohort
    from FCDTrainLib.experiment.train_run import fold_data, prepare
    from FCDTrainLib.run_folder.event_log import EventLog
    from FCDTrainLib.run_folder.layout import RunLayout
    from FCDTrainLib.training.input_cache import VolumeCache

    figures: dict[str, Any] = {}
    if cohort is None:
        cohort = work / "cohort"
        started = time.perf_counter()
        synth_cohort(cohort, n_subjects, seed=0, size="small")
        figures["synth_seconds"] = round(time.perf_counter() - started, 1)
    run_dir = work / "run"
    subjects, _, folds = prepare(config, run_dir)
    split = folds[0]
    by_id = {s.subject_id: s for s in subjects}
    layout = RunLayout(run_dir)
    cache = VolumeCache(layout.cache, config.spacing, config.shape, config.modalities)
    started = time.perf_counter()
    cache.build([by_id[i] for i in (*split.train, *split.val)])
    figures["cache_build_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    data = fold_data(config, split, by_id, cache, device.type)
    figures["fold_data_seconds"] = round(time.perf_counter() - started, 2)
    limit = BareLoop(config, device, "policy")
    trainer = timed_trainer_class(device, limit, limit_steps)(
        config, 0, data, layout.fold(0), EventLog(run_dir / "events.jsonl"), device=device, progress=False)
    started = time.perf_counter()
    outcome = trainer.fit()
    _sync(device)
    fit_seconds = time.perf_counter() - started
    n_train, n_val = int(data.train_x.shape[0]), int(data.val_x.shape[0])
    steady = trainer.epochs[1:] or trainer.epochs  # the first epoch carries the first allocations
    total = {key: sum(epoch.get(key, 0.0) for epoch in steady) for key in
             ("train_epoch", "batch_train", "augment", "step", "validation", "checkpoint")}
    train_volumes = n_train * len(steady)
    full = [seconds for epoch in steady for size, seconds in epoch.get("iterations", []) if size == config.batch_size]
    epoch_seconds = [h["seconds"] for h in outcome.history]
    # per epoch: the pipeline's training volumes/s against the limit's fastest step right after it
    ratios = [(n_train / epoch["train_epoch"]) / (config.batch_size / min(epoch["limit_steps"]))
              for epoch in steady if epoch["limit_steps"]]
    figures.update({
        "ratio_per_epoch_to_adjacent_limit": [round(r, 3) for r in ratios],
        "ratio_to_adjacent_limit_median": round(statistics.median(ratios), 3) if ratios else None,
        "adjacent_limit_volumes_per_second": [round(config.batch_size / min(e["limit_steps"]), 3)
                                              for e in steady if e["limit_steps"]],
        "subjects": len(subjects), "n_train": n_train, "n_val": n_val, "epochs": outcome.epochs_run,
        "epochs_timed": len(steady), "fit_seconds": round(fit_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "train_volumes_per_second": round(train_volumes / total["train_epoch"], 3),
        "epoch_volumes_per_second": round(train_volumes / sum(epoch_seconds[-len(steady):]), 3),
        "seconds_per_train_epoch": {key: round(value / len(steady), 3) for key, value in total.items()},
        "input_share": round((total["batch_train"] + total["augment"]) / total["train_epoch"], 3),
        "augment_share": round(total["augment"] / total["train_epoch"], 3),
        "batch_share": round(total["batch_train"] / total["train_epoch"], 3),
        "step_share": round(total["step"] / total["train_epoch"], 3),
        "first_epoch_train_seconds": round(trainer.epochs[0]["train_epoch"], 2),
        "fastest_epoch_train_volumes_per_second": round(n_train / min(e["train_epoch"] for e in steady), 3),
        "fastest_full_batch_seconds": round(min(full), 4) if full else None,
        "fastest_full_batch_volumes_per_second": round(config.batch_size / min(full), 3) if full else None,
    })
    return figures
