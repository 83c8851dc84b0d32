"""What ``benchmarks/bench_families.py`` compares: the scan families, the models, their cohorts.

``FAMILIES`` maps each benchmark family to its ``fcd synth`` variant options (``size`` picks
the grid), ``MODELS`` each model to its training cohort (randomised or not) and
``--scanner-augment``; :func:`synth` writes a cohort once (reused when present) and
:func:`model_config` is the lesion model's training configuration.

Example:
    >>> cohort = synth(work / "family-rescaled-unit", 40, 261, 0.3, **FAMILIES["rescaled-unit"])  # doctest: +SKIP
    >>> train_run(model_config(cohort, args, augment=False), work / "run-standard", only_fold=0)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
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


def model_config(cohort: Path, args: argparse.Namespace, augment: bool):
    """The training configuration of a benchmark model on ``cohort`` (``--scanner-augment`` when ``augment``)."""
    from FCDTrainLib.run_folder.run_config import RunConfig

    # The demo network (quarter-width ResNet-18 + lesion head) on a 4 mm grid, T1 + FLAIR (the
    # separate-grids family needs both), the lesion protocol's lr and batch (bench_lesion.py);
    # early stopping off: dense supervision needs its epochs (DESIGN.md).
    return RunConfig.preset(
        "demo", data=str(cohort), modality="t1+flair", supervision="lesion", widen_factor=0.25, folds=args.folds,
        seed=0, max_epochs=args.epochs, lr=args.lr, batch_size=2, spacing=list(args.spacing), shape=list(args.shape),
        early_stop_patience=args.epochs, device="cpu", shift_mm=8.0,
        **({"scanner_augment": True} if augment else {}))


def synth(path: Path, n: int, seed: int, subtlety: float, size: str = "small", **variant: Any) -> Path:
    """``fcd synth`` of ``n`` subjects into ``path`` (a variant from ``variant``), unless it is there already."""
    from FCDTrainLib.data.synth.variants import SynthVariant
    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    if not (path / "participants.tsv").is_file():
        synth_cohort(path, n, seed=seed, size=size, subtlety=subtlety, overlays=1,
                     variant=SynthVariant(**variant) if variant else None)
    return path
