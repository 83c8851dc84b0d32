"""The recorded configuration of a training run (``RUN/config.json``) and its checks.

Every hyper-parameter that shapes the results is a field of :class:`RunConfig`. The
first ``fcd train`` into a folder writes it; a later one (a resume, or another
``--fold``) must match it field by field, otherwise the run is refused so that two
configurations are never mixed in one folder. ``device`` and ``fold`` (which fold(s)
to run now) are not part of the identity: a run may continue on another device.

Example:
    >>> config = RunConfig(data="cohort/", depth=18, modality="flair")
    >>> config.modalities, config.transfer_mode, config.lr
    (['flair'], 'all', 0.001)
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from FCDDetectLib.choices import (
    DEFAULT_LAYER,
    DEFAULT_METHOD,
    DEPTHS,
    DEVICES,
    EXPLANATION_LAYERS,
    EXPLANATION_METHODS,
    GEOMETRIES,
    INPUT_MODALITIES,
    LESION_SCHEDULES,
    PRETRAINED_STRATEGIES,
    SUPERVISION,
)
from FCDDetectLib.detection.options import DetectOptions
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.maps.clusters import DEFAULT_MIN_SIZE_MM3, DEFAULT_THRESHOLD

from FCDTrainLib.data.seeds import SEED_MAX
from FCDTrainLib.run_folder.layout import CACHE_NAME, CONFIG_NAME, EVENTS_NAME
from FCDTrainLib.run_folder.run_files import MAX_CONFIG_BYTES, read_json_object

# Fields that do not change the numbers a run produces.
NOT_IDENTITY = ("device", "weights", "workers")
# Fields older versions wrote into config.json and nothing ever read (Adam, cross-entropy,
# ReduceLROnPlateau and early stopping on the validation loss are what the trainer does;
# the normalisation is the bundle's). Ignored when an old run folder is read.
RETIRED_FIELDS = ("optimizer", "loss", "scheduler", "early_stopping", "normalisation")
# Lesion-training fields added later, with the value a lesion run's config.json written before
# them meant: an old lesion run folder resumes with what it trained with (not with the new
# default), and still matches. They do not shape a `--supervision none` run: not part of its identity.
LEGACY_VALUES: dict[str, Any] = {"lesion_schedule": "plateau", "patch": None, "operating_fp_per_control": None}
LESION_ONLY = ("lesion_schedule", "patch", "foreground_fraction", "operating_fp_per_control")


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, choices: tuple | None = None,
           ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           metavar: Any = None, cli: bool = True, factory: Any = MISSING, arg_type: Any = None,
           nargs: int | None = None) -> Any:
    """A RunConfig field with what the CLI and the checks need to know about it.

    ``help`` is the option's help (the default is appended by the CLI), ``flag`` the option
    name when it is not ``--field-name``, ``choices`` the allowed values, ``ge``/``gt``/``le``/``lt``
    bounds checked by :meth:`RunConfig.validate` (on every item of a list), ``cli=False`` for fields no
    option sets; ``arg_type`` and ``nargs`` for an option whose default (None) does not show them.
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt,
                "metavar": metavar, "cli": cli, "arg_type": arg_type, "nargs": nargs}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Everything that defines a run: the single source of the training defaults.

    Defaults follow section 2.3 of the paper. ``fcd train`` / ``fcd experiment`` build their
    options (names, types, choices, help with the default) from these fields
    (:mod:`FCDTrainLib.cli.config_options`), the Slicer module passes overrides of them, and
    the demo is the named preset ``PRESETS["demo"]``.
    """

    data: str = option(help="dataset folder (ds004199 layout) or CSV manifest")
    depth: int = option(18, "ResNet depth", choices=DEPTHS)
    pretrained: str = option("none", "initialisation: none (random), medicalnet8 or medicalnet23 (needs --weights)",
                             choices=PRETRAINED_STRATEGIES)
    weights: str | None = option(None, "MedicalNet checkpoint (.pth) matching --depth and --pretrained",
                                 metavar="FILE")
    weights_sha256: str | None = option(None, cli=False)
    geometry: str = option("paper", "network geometry: paper (section 2.2) or medicalnet (dilated layer3/4)",
                           choices=GEOMETRIES)
    widen_factor: float = option(1.0, "scale of the stage widths (64..512); 1.0 = standard ResNet, "
                                 "<1 for quick CPU runs; 1/16 keeps 4 filters in the first stage", ge=0.0625, le=4)
    modality: str = option("flair", "input modality, or both as two channels", choices=INPUT_MODALITIES)
    folds: int = option(5, "number of folds", ge=2)
    seed: int = option(0, "seed of folds, initialisation, order, augmentation", ge=0, le=SEED_MAX)
    max_epochs: int = option(100, "epoch limit per fold", ge=1)
    lr: float = option(1e-3, "Adam learning rate", gt=0)
    batch_size: int = option(4, "training batch size", ge=1)
    patience: int = option(5, "ReduceLROnPlateau patience in epochs (validation loss)", ge=0)
    lr_factor: float = option(0.1, "ReduceLROnPlateau factor", gt=0, lt=1)
    early_stop_patience: int = option(10, "stop after this many epochs without a lower validation loss", ge=1)
    spacing: list[float] = option(help="model grid spacing in mm", metavar=("X", "Y", "Z"),
                                  factory=lambda: [2.0, 2.0, 2.0])
    shape: list[int] = option(help="model grid shape in voxels", metavar=("X", "Y", "Z"),
                              factory=lambda: [96, 112, 96])
    val_fraction: float = option(0.2, "validation part of each fold's training subjects", gt=0, lt=1)
    stratify_protocol: bool = option(False, "stratify folds by label and scanner protocol")
    protocol: str | None = option(None, "keep only subjects of this protocol (see fcd audit)")
    use_split: bool = option(False, "honour the dataset's split column: 'test' subjects form a fixed test set")
    finetune_all: bool = option(False, "with MedicalNet weights, train every layer (otherwise only layer4 and fc)")
    rotation_degrees: float = option(15.0, "random rotation range in degrees (0 turns it off)", flag="--rotation",
                                     metavar="DEGREES", ge=0)
    shift_mm: float = option(0.0, "random translations up to +/- MM along each axis (0: off)", flag="--shift",
                             metavar="MM", ge=0)
    flip: bool = option(False, "mirror half of the training volumes left-right")
    scanner_augment: bool = option(False, "new random contrast (gamma), bias field, resolution and noise on every "
                                   "training volume each epoch, re-z-scored in the head (SynthSeg-style)")
    explain_method: str = option(DEFAULT_METHOD, "explanation method of the Heat-Score", flag="--method",
                                 choices=EXPLANATION_METHODS)
    explain_layer: str = option(DEFAULT_LAYER, "stage of the CAM methods (Grad-CAM, Grad-CAM++, LayerCAM); multi: "
                                "mean of layer2-4; stored as the bundle's default for fcd detect", flag="--layer",
                                choices=EXPLANATION_LAYERS)
    cluster_threshold: float = option(DEFAULT_THRESHOLD, "map value at which the lesion-level clusters of the "
                                      "evaluation are cut (a lesion run's are chosen on validation data, see "
                                      "--operating-fp-per-control)", ge=0, le=1)
    min_cluster_mm3: float = option(DEFAULT_MIN_SIZE_MM3, "smallest cluster the evaluation counts, in mm3 (a lesion "
                                    "run's is chosen on validation data)", ge=0)
    supervision: str = option("none", "none: the paper's classifier; lesion: also a lesion head (skip decoder) "
                              "trained on the patients' ROIs (CE + Dice/BCE)", choices=SUPERVISION)
    lesion_weight: float = option(1.0, "with --supervision lesion: weight of the lesion loss (Dice + BCE) beside "
                                  "the cross-entropy", ge=0)
    decoder_width: int = option(16, "with --supervision lesion: channels of the lesion decoder", ge=2)
    lesion_schedule: str = option("poly", "with --supervision lesion: learning-rate schedule; poly: nnU-Net's fixed "
                                  "decay lr*(1-epoch/epochs)^0.9 for --max-epochs, the last epoch's weights are the "
                                  "model (no plateau scheduler, early stopping or best epoch read from the noisy "
                                  "validation loss); plateau: ReduceLROnPlateau and early stopping on the "
                                  "validation lesion loss, the best epoch's weights", choices=LESION_SCHEDULES)
    patch: list[int] | None = option(None, "with --supervision lesion: train on random patches of X Y Z voxels "
                                     "of the model grid (nnU-Net's patch sampling; --foreground-fraction of them "
                                     "centred on a lesion voxel; at most the grid) instead of whole volumes; "
                                     "detection still reads the whole volume", metavar=("X", "Y", "Z"), ge=8,
                                     arg_type=int, nargs=3)
    foreground_fraction: float = option(0.33, "with --patch: share of the training patches centred on a lesion "
                                        "voxel (nnU-Net's oversample_foreground_percent)", ge=0, le=1)
    operating_fp_per_control: float | None = option(0.2, "with --supervision lesion: the lesion map's cluster "
                                                    "threshold and minimum size are chosen on the fold's validation "
                                                    "subjects for at most this many false-positive clusters per "
                                                    "control, and stored in the bundle as its defaults", ge=0)
    device: str = option("auto", "where to train", choices=DEVICES)
    workers: int = option(0, cli=False)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RunConfig:
        """A named preset (:data:`PRESETS`) with ``overrides`` on top.

        Example:
            >>> RunConfig.preset("demo", data="cohort").spacing
            [4.0, 4.0, 4.0]
        """
        if name not in PRESETS:
            raise FCDInputError(f"preset {name!r}: expected one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name -> default value (the required ``data`` is absent)."""
        out = {}
        for f in fields(cls):
            if f.default is not MISSING:
                out[f.name] = f.default
            elif f.default_factory is not MISSING:
                out[f.name] = f.default_factory()
        return out

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

    def detect_options(self, device: str = "auto") -> DetectOptions:
        """The detection options of the run's per-fold evaluation (method, layer, clusters).

        A lesion run that chooses its operating point on validation data
        (``operating_fp_per_control``) leaves the cluster settings to the bundle (None), so the
        evaluation clusters the held-out maps at the chosen point.

        Example:
            >>> RunConfig(data="x", cluster_threshold=0.3).detect_options("cpu").cluster_threshold
            0.3
            >>> RunConfig(data="x", supervision="lesion").detect_options("cpu").cluster_threshold is None
            True
        """
        chosen = self.supervision == "lesion" and self.operating_fp_per_control is not None
        return DetectOptions(method=self.explain_method, layer=self.explain_layer, device=device,
                             cluster_threshold=None if chosen else self.cluster_threshold,
                             min_cluster_mm3=None if chosen else self.min_cluster_mm3)

    @classmethod
    def from_dict(cls, data: Any, source: str = CONFIG_NAME) -> RunConfig:
        """A config from ``config.json``; retired fields of older versions (and unknown ones) are ignored.

        Every known field is checked for its type, choices and bounds (the file is untrusted);
        a wrong one is an FCDInputError naming ``source`` and the field.

        Example:
            >>> RunConfig.from_dict({"data": "cohort", "folds": "five"}, source="run/config.json")
            Traceback (most recent call last):
            ...
            FCDDetectLib.errors.FCDInputError: run/config.json: damaged run configuration: folds is 'five', expected an integer
        """
        if not isinstance(data, dict):
            raise FCDInputError(f"{source}: damaged run configuration: a JSON object was expected, "
                                f"found {type(data).__name__}")
        by_name = {f.name: f for f in fields(cls)}
        if "data" not in data:
            raise FCDInputError(f"{source}: damaged run configuration: no 'data' (the dataset) field")
        values = {k: v for k, v in data.items() if k in by_name}
        for name, value in values.items():
            problem = _type_problem(by_name[name], value)
            if problem is None:
                try:
                    _check_field(by_name[name], value)
                except FCDInputError as error:
                    problem = str(error)
            if problem is not None:
                raise FCDInputError(f"{source}: damaged run configuration: {problem}")
        if values.get("supervision") == "lesion":  # configs written before the lesion schedule existed
            values = {**{k: v for k, v in LEGACY_VALUES.items() if k not in values}, **values}
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for two invocations to share a RUN folder."""
        skip = (*NOT_IDENTITY, *(LESION_ONLY if self.supervision == "none" else ()))
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def validate(self) -> None:
        """Check every field against its choices and bounds, and the options against each other."""
        for f in fields(self):
            _check_field(f, getattr(self, f.name))
        from FCDDetectLib.networks.bundle_metadata import check_model_grid

        if self.pretrained == "none" and self.weights:
            raise FCDInputError(
                f"{self.weights}: a weights file was given with --pretrained none; "
                "choose --pretrained medicalnet8 or medicalnet23, or drop --weights"
            )
        if self.pretrained != "none" and not self.weights:
            raise FCDInputError(f"--pretrained {self.pretrained}: needs --weights FILE (a MedicalNet .pth)")
        if self.weights and not Path(self.weights).is_file():
            raise FCDInputError(f"{self.weights}: weights file not found")
        if self.pretrained != "none" and self.widen_factor != 1.0:
            raise FCDInputError("--widen-factor: MedicalNet weights need the standard width (1.0)")
        check_model_grid(list(self.spacing), list(self.shape), "fcd train", spacing_name="--spacing",
                         shape_name="--shape")  # the bounds every bundle is checked against
        if self.patch is not None and (len(self.patch) != 3 or not all(isinstance(p, int) for p in self.patch)):
            raise FCDInputError(f"--patch {self.patch}: expected 3 sizes in voxels (X Y Z)")


def flag_of(f: Any) -> str:
    """The command-line option of a RunConfig field (``--max-epochs``, ``--rotation``, ...)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _type_problem(f: Any, value: Any) -> str | None:
    """Why ``value`` cannot be the value of field ``f`` (by the type of its default), or None."""
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    if default is MISSING or isinstance(default, str):
        ok, expected = isinstance(value, str), "a string"
    elif default is None and str(f.type).startswith("list[int]"):  # patch: null or three integers
        ok = value is None or (isinstance(value, list) and len(value) == 3
                               and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        expected = "null or a list of 3 integers"
    elif default is None:
        ok, expected = value is None or isinstance(value, str), "null or a string"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:  # spacing, shape: three numbers (integers for the shape)
        kind = int if isinstance(default[0], int) else (int, float)
        ok = (isinstance(value, (list, tuple)) and len(value) == len(default)
              and all(isinstance(v, kind) and not isinstance(v, bool) for v in value))
        expected = f"a list of {len(default)} {'integers' if kind is int else 'numbers'}"
    shown = repr(value)[:60] if value is None or isinstance(value, (str, int, float)) else type(value).__name__
    return None if ok else f"{f.name} is {shown}, expected {expected}"


def _check_field(f: Any, value: Any) -> None:
    meta, flag = f.metadata, flag_of(f)
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise FCDInputError(f"{flag} {value}: expected one of {', '.join(map(str, meta['choices']))}")
    if isinstance(value, list):
        for item in value:
            _check_field(f, item)
        return
    if value is None or isinstance(value, (bool, str)):
        return
    for key, ok, words in (("ge", lambda v, b: v >= b, "at least"), ("gt", lambda v, b: v > b, "greater than"),
                           ("le", lambda v, b: v <= b, "at most"), ("lt", lambda v, b: v < b, "less than")):
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise FCDInputError(f"{flag} {value}: must be {words} {bound if isinstance(bound, int) else f'{bound:g}'}")


def check_overrides(overrides: dict[str, Any]) -> None:
    """Check RunConfig overrides (field -> value) against their fields' choices and bounds.

    Example:
        >>> check_overrides({"folds": 1})
        Traceback (most recent call last):
        ...
        FCDDetectLib.errors.FCDInputError: --folds 1: must be at least 2
    """
    by_name = {f.name: f for f in fields(RunConfig)}
    for name, value in overrides.items():
        if name not in by_name:
            raise FCDInputError(f"{name!r} is not a training option")
        _check_field(by_name[name], value)


PRESETS: dict[str, dict[str, Any]] = {
    # `fcd demo`: a ResNet-18 of quarter width on a 4 mm grid, so that 250 synthetic subjects
    # train in about 6 minutes on 2 CPU cores; shifts and flips because the lesions move.
    "demo": {
        "depth": 18, "geometry": "medicalnet", "widen_factor": 0.25, "modality": "flair", "folds": 5,
        "max_epochs": 30, "spacing": [4.0, 4.0, 4.0], "shape": [48, 56, 48], "batch_size": 8, "lr": 3e-4,
        "shift_mm": 16.0, "flip": True, "patience": 8, "early_stop_patience": 15,
    },
    # `fcd train --preset lesion`: the lesion recipe of issue 27's benchmark (benchmarks/bench_lesion.py,
    # docs/lesion-supervision.md): the demo's network, 300 epochs of nnU-Net's poly decay from 3e-3 on
    # 48^3 patches of the 2 mm grid (a third centred on lesion), shifts and left-right flips (so the
    # lesion map is mirrored at detection). The grid's shape stays the default one.
    "lesion": {
        "supervision": "lesion", "depth": 18, "geometry": "medicalnet", "widen_factor": 0.25, "modality": "flair",
        "max_epochs": 300, "lr": 3e-3, "batch_size": 2, "lesion_schedule": "poly", "patch": [48, 48, 48],
        "foreground_fraction": 0.33, "spacing": [2.0, 2.0, 2.0], "shift_mm": 8.0, "flip": True,
    },
}
"""Named sets of RunConfig overrides (``RunConfig.preset(name, data=...)``, ``fcd train --preset NAME``)."""


def load_config(run_dir: str | Path) -> RunConfig:
    """Read ``RUN/config.json``; FCDInputError when it is missing or unreadable."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise FCDInputError(f"{path}: not found; is {run_dir} a training run folder?")
    return RunConfig.from_dict(read_json_object(path, "run configuration", MAX_CONFIG_BYTES), source=str(path))


def check_same_run(run_dir: str | Path, config: RunConfig) -> bool:
    """True when ``RUN/config.json`` exists and matches ``config``; False when absent.

    Raises :class:`FCDInputError` naming the first differing options when the folder
    holds a run of another configuration (refuse to mix).
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        run = Path(run_dir)
        from FCDTrainLib.run_folder.run_lock import (
            LOCK_DIR,  # the writer's lock, like events.jsonl, may come before the config
        )

        # a killed validation pass (train_run builds the cache first) leaves only cache/
        if run.exists() and any(p.name not in (EVENTS_NAME, LOCK_DIR, CACHE_NAME) for p in run.iterdir()):
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
    from FCDDetectLib.io.atomic_files import write_json_atomic

    path = Path(run_dir) / CONFIG_NAME
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, config.to_dict())
    return path
