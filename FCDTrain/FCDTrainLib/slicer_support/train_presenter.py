"""FCDTrain's panel decisions, Qt-free: what to enable, which folder to load, which message.

:class:`TrainPresenter` gets the logic through the :class:`TrainPanelLogic` Protocol
(in Slicer: ``FCDTrainWidgets.train_module_logic.FCDTrainLogic``; in tests: a fake or the real
:class:`~FCDTrainLib.slicer_support.train_launcher.TrainLogic`) and the shared models-folder registry.

Example:
    >>> from FCDDetectLib.slicer_support.models_registry import DictSettings, ModelsFolderRegistry
    >>> presenter = TrainPresenter(logic=None, registry=ModelsFolderRegistry(DictSettings()))
    >>> presenter.buttons(PanelValues(data_path=".", output_path="/runs/a"), running=False).start
    False
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.background_task import TaskCancelled
from FCDDetectLib.slicer_support.detect_presenter import Message
from FCDDetectLib.slicer_support.models_registry import ModelsFolderRegistry
from FCDDetectLib.slicer_support.paths import is_set, path_or_none

from FCDTrainLib.run_folder.run_config import PRESETS
from FCDTrainLib.slicer_support.train_launcher import TrainSettings
from FCDTrainLib.training.medicalnet_weights import DownloadCancelled

PANEL_PRESETS = ("none", *(name for name in PRESETS if name != "demo"))
"""The panel's Recipe choices: ``none`` (its fields only) or a named RunConfig preset
(``fcd train --preset``; today ``lesion``). The ``demo`` preset is left out: it is sized for
``fcd demo``'s synthetic cohort on a 4 mm grid, not for a user's data."""

# RunConfig field of a preset -> how the panel shows it (the PanelValues field and its value).
_SHOWN_PRESET_FIELDS: dict[str, Callable[[Any], tuple[str, Any]]] = {
    "depth": lambda depth: ("depths", [depth]),
    "modality": lambda modality: ("modalities", [modality]),
    "geometry": lambda geometry: ("geometry", geometry),
    "max_epochs": lambda epochs: ("max_epochs", epochs),
    "supervision": lambda supervision: ("supervision", supervision),
    "folds": lambda folds: ("folds", folds),
    "seed": lambda seed: ("seed", seed),
}


class TrainPanelLogic(Protocol):
    """What the FCDTrain panel needs from its logic."""

    settings: TrainSettings | None

    @property
    def running(self) -> bool: ...

    def start(self, settings: TrainSettings) -> Any: ...

    def stop(self, wait: bool = True) -> int | None: ...

    def bundles(self, out: str | Path | None = None) -> list: ...


@dataclass
class PanelValues:
    """The panel's fields, as plain values (paths as the text the fields hold)."""

    data_path: str = ""
    output_path: str = ""
    depths: list[int] = field(default_factory=lambda: [18])
    pretrained: list[str] = field(default_factory=lambda: ["none"])
    modalities: list[str] = field(default_factory=lambda: ["flair"])
    geometry: str = "paper"
    weights_path: str = ""
    weights_cache_folder: str = ""
    folds: int = 5
    max_epochs: int = 100
    seed: int = 0
    device: str = "auto"
    supervision: str = "none"
    preset: str = "none"
    executor: str = "local"
    ray_address: str = ""
    gpus_per_run: float = 0.0


@dataclass
class Buttons:
    start: bool
    stop: bool
    start_tooltip: str


class TrainPresenter:
    """Decisions of the FCDTrain panel."""

    def __init__(self, logic: TrainPanelLogic | None, registry: ModelsFolderRegistry,
                 version_problem: str | None = None) -> None:
        self.logic = logic
        self.registry = registry
        self.version_problem = version_problem

    def buttons(self, values: PanelValues, running: bool) -> Buttons:
        if self.version_problem:
            return Buttons(False, running, self.version_problem)
        if not is_set(values.data_path):
            return Buttons(False, running, "Choose the dataset (BIDS folder or CSV manifest).")
        if not is_set(values.output_path):
            return Buttons(False, running, "Choose the output folder of the run.")
        if running:
            return Buttons(False, True, "Training is running: Stop it first.")
        runs = len(values.depths) * len(values.pretrained) * len(values.modalities)
        if values.executor != "local" and runs <= 1:
            return Buttons(False, False, f"The {values.executor} executor runs experiments (several depths, "
                                         "strategies or modalities): tick more, or choose local.")
        return Buttons(True, False, "Start training (a stopped run resumes where it stopped).")

    @staticmethod
    def settings(values: PanelValues, find_cached: Callable[[str, str, int], Any] | None = None) -> TrainSettings:
        """TrainSettings from the panel; the MedicalNet file from the field or the cache."""
        data, out = path_or_none(values.data_path), path_or_none(values.output_path)
        if data is None:
            raise FCDInputError("no dataset chosen")
        if out is None:
            raise FCDInputError("no output folder chosen")
        cache = path_or_none(values.weights_cache_folder)
        weights = path_or_none(values.weights_path)
        settings = TrainSettings(data=data, out=out, depths=list(values.depths), pretrained=list(values.pretrained),
                                 modalities=list(values.modalities), geometry=values.geometry, folds=values.folds,
                                 max_epochs=values.max_epochs, device=values.device, seed=values.seed,
                                 config={"supervision": values.supervision},
                                 preset=None if values.preset == "none" else values.preset, executor=values.executor,
                                 ray_address=values.ray_address.strip() or None,
                                 gpus_per_run=values.gpus_per_run or None)
        if settings.is_experiment:
            settings.weights_dir = cache
        elif settings.pretrained and settings.pretrained[0] != "none" and settings.depths:
            found = find_cached(cache, settings.pretrained[0], settings.depths[0]) if cache and find_cached else None
            settings.weights = weights or found
        return settings

    @staticmethod
    def with_preset(values: PanelValues, name: str) -> PanelValues:
        """The panel's values once the user picks the Recipe ``name``: every field the recipe sets
        and the panel shows (supervision, depth, geometry, modality, epochs) takes the recipe's
        value, the others are kept. The recipe's other options (learning rate, patches, grid,
        augmentation) travel as ``--preset NAME``; a field changed afterwards overrides the recipe.

        Example:
            >>> lesion = TrainPresenter.with_preset(PanelValues(folds=4), "lesion")
            >>> lesion.supervision, lesion.depths, lesion.max_epochs, lesion.folds
            ('lesion', [18], 300, 4)
        """
        if name not in PANEL_PRESETS:
            raise FCDInputError(f"recipe {name!r}: expected one of {', '.join(PANEL_PRESETS)}")
        shown = dict(_SHOWN_PRESET_FIELDS[key](value) for key, value in PRESETS.get(name, {}).items()
                     if key in _SHOWN_PRESET_FIELDS)
        return replace(values, preset=name, **shown)

    def finished_run_folder(self) -> str | None:
        """The folder of the run that just ended, from the logic (never from the parameter
        node, which a scene close replaces)."""
        settings = getattr(self.logic, "settings", None)
        return path_or_none(str(settings.out)) if settings is not None else None

    @staticmethod
    def results_folder(text: str | None) -> str:
        """The folder "Load results" reads; refuses an unset field instead of reading "."."""
        value = path_or_none(text)
        if value is None:
            raise FCDInputError("choose the output folder of a run first")
        if not Path(value).is_dir():
            raise FCDInputError(f"{value}: no such folder")
        return value

    def register_models(self, folder: str) -> Message:
        """List the run's bundles in FCD Detect (through the shared registry)."""
        count = len(self.logic.bundles(folder))
        if count == 0:
            return Message("info", "No model bundle in this folder yet.")
        self.registry.register(folder)
        return Message("info", f"{count} model(s) now listed in FCD Detect.")

    @staticmethod
    def download_outcome(error: BaseException | None, name: str) -> Message:
        """Message after a weights download: cancelled is not a failure."""
        if error is None:
            return Message("info", f"{name} downloaded.")
        if isinstance(error, (DownloadCancelled, TaskCancelled)):
            return Message("info", f"Download of {name} cancelled; nothing was written.")
        return Message("error", f"Download of {name} failed: {error}")

    @staticmethod
    def weights_cache_folder(current: str | None, default: Callable[[], Any]) -> str:
        """The cache folder to show: the scene's value, else the default (also after a scene close)."""
        return path_or_none(current) or str(default())

    def on_close(self) -> bool:
        """Slicer closes or the module is cleaned up: stop a running child (True if one was stopped).

        The child runs in its own session, so it would outlive Slicer and die later on a
        broken pipe; stopped now, the next Start resumes from the last completed epoch.
        """
        if self.logic is not None and self.logic.running:
            self.logic.stop()
            return True
        return False
