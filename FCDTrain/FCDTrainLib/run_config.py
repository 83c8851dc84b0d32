"""The recorded configuration of a training run (``RUN/config.json``) and its checks.

Every hyper-parameter that shapes the results is a field of :class:`RunConfig`. The
first ``fcd train`` into a folder writes it; a later one (a resume, or another
``--fold``) must match it field by field, otherwise the run is refused so that two
configurations are never mixed in one folder. ``device`` and ``fold`` (which fold(s)
to run now) are not part of the identity: a run may continue on another device.

Example:
    >>> config = RunConfig(data="cohort/", depth=18, modality="flair")
    >>> config.modalities, config.transfer_mode
    (['flair'], 'all')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

PRETRAINED = ("none", "medicalnet8", "medicalnet23")
MODALITY_CHOICES = ("flair", "t1", "t1+flair")
CONFIG_NAME = "config.json"
# Fields that do not change the numbers a run produces.
NOT_IDENTITY = ("device", "weights", "workers")
MIN_WIDEN_FACTOR, MAX_WIDEN_FACTOR = 0.0625, 4.0


@dataclass
class RunConfig:
    """Everything that defines a run. Defaults follow section 2.3 of the paper."""

    data: str
    depth: int = 18
    pretrained: str = "none"
    weights: str | None = None
    weights_sha256: str | None = None
    geometry: str = "paper"
    widen_factor: float = 1.0
    modality: str = "flair"
    folds: int = 5
    seed: int = 0
    max_epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 4
    patience: int = 5
    lr_factor: float = 0.1
    early_stop_patience: int = 10
    spacing: list[float] = field(default_factory=lambda: [2.0, 2.0, 2.0])
    shape: list[int] = field(default_factory=lambda: [96, 112, 96])
    val_fraction: float = 0.2
    stratify_protocol: bool = False
    protocol: str | None = None
    use_split: bool = False
    finetune_all: bool = False
    rotation_degrees: float = 15.0
    shift_mm: float = 0.0
    flip: bool = False
    explain_method: str = "gradcam"
    optimizer: str = "adam"
    loss: str = "cross-entropy"
    scheduler: str = "ReduceLROnPlateau(val_loss)"
    early_stopping: str = "val_loss"
    normalisation: str = "zscore-head"
    device: str = "auto"
    workers: int = 0

    @property
    def modalities(self) -> list[str]:
        """The input channels in order, e.g. ``["t1", "flair"]``."""
        return self.modality.split("+")

    @property
    def transfer_mode(self) -> str:
        """``"transfer"`` (only layer4 and fc train) or ``"all"``."""
        return "transfer" if self.pretrained != "none" and not self.finetune_all else "all"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def identity(self) -> dict[str, Any]:
        """The fields that must match for two invocations to share a RUN folder."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    def validate(self) -> None:
        """Check the options against each other (no file access beyond the weights file)."""
        from FCDDetectLib.bundle import check_model_grid
        from FCDDetectLib.models import DEPTHS, GEOMETRIES

        if self.depth not in DEPTHS:
            raise FCDInputError(f"--depth {self.depth}: expected one of {', '.join(map(str, DEPTHS))}")
        if self.geometry not in GEOMETRIES:
            raise FCDInputError(f"--geometry {self.geometry}: expected one of {', '.join(GEOMETRIES)}")
        if self.pretrained not in PRETRAINED:
            raise FCDInputError(f"--pretrained {self.pretrained}: expected one of {', '.join(PRETRAINED)}")
        if self.modality not in MODALITY_CHOICES:
            raise FCDInputError(f"--modality {self.modality}: expected one of {', '.join(MODALITY_CHOICES)}")
        if self.pretrained == "none" and self.weights:
            raise FCDInputError(
                f"{self.weights}: a weights file was given with --pretrained none; "
                "choose --pretrained medicalnet8 or medicalnet23, or drop --weights"
            )
        if self.pretrained != "none" and not self.weights:
            raise FCDInputError(f"--pretrained {self.pretrained}: needs --weights FILE (a MedicalNet .pth)")
        if self.weights and not Path(self.weights).is_file():
            raise FCDInputError(f"{self.weights}: weights file not found")
        for name, value, low in (("--max-epochs", self.max_epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--patience", self.patience, 0),
                                 ("--early-stop-patience", self.early_stop_patience, 1)):
            if int(value) < low:
                raise FCDInputError(f"{name} {value}: must be at least {low}")
        if not MIN_WIDEN_FACTOR <= self.widen_factor <= MAX_WIDEN_FACTOR:
            raise FCDInputError(
                f"--widen-factor {self.widen_factor}: expected a number in [{MIN_WIDEN_FACTOR}, {MAX_WIDEN_FACTOR}] "
                "(1/16 keeps 4 filters in the first stage)")
        if self.pretrained != "none" and self.widen_factor != 1.0:
            raise FCDInputError("--widen-factor: MedicalNet weights need the standard width (1.0)")
        if not self.shift_mm >= 0:
            raise FCDInputError(f"--shift {self.shift_mm}: must be zero or a positive number of mm")
        if not self.lr > 0:
            raise FCDInputError(f"--lr {self.lr}: must be positive")
        check_model_grid(list(self.spacing), list(self.shape), "fcd train", spacing_name="--spacing",
                         shape_name="--shape")  # the bounds every bundle is checked against


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_config(run_dir: str | Path) -> RunConfig:
    """Read ``RUN/config.json``; FCDInputError when it is missing or unreadable."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FCDInputError(f"{path}: not found; is {run_dir} a training run folder?")
    try:
        return RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as error:
        raise FCDInputError(f"{path}: unreadable run configuration ({error})") from error


def check_same_run(run_dir: str | Path, config: RunConfig) -> bool:
    """True when ``RUN/config.json`` exists and matches ``config``; False when absent.

    Raises :class:`FCDInputError` naming the first differing options when the folder
    holds a run of another configuration (refuse to mix).
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        run = Path(run_dir)
        from .run_lock import LOCK_DIR  # the writer's lock, like events.jsonl, may come before the config

        # a killed validation pass (train_run builds the cache first) leaves only cache/
        if run.exists() and any(p.name not in ("events.jsonl", LOCK_DIR, "cache") for p in run.iterdir()):
            raise FCDInputError(f"{run}: folder is not empty and holds no {CONFIG_NAME}; choose a new --out")
        return False
    old = load_config(run_dir).identity()
    new = config.identity()
    diffs = [f"{k}: {old.get(k)!r} here vs {new.get(k)!r} now" for k in new if old.get(k) != new.get(k)]
    if diffs:
        raise FCDInputError(
            f"{path}: this folder holds a run of another configuration ({'; '.join(diffs[:3])}); "
            "use a new --out or the same options"
        )
    return True


def write_config(run_dir: str | Path, config: RunConfig) -> Path:
    """Write ``RUN/config.json`` atomically."""
    from FCDDetectLib.files import write_json_atomic

    path = Path(run_dir) / CONFIG_NAME
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, config.to_dict())
    return path
