"""FCDDetect's panel decisions, Qt-free: what to enable, what to show, which error.

:class:`DetectPresenter` is given a logic through the :class:`DetectPanelLogic` Protocol
(in Slicer: ``FCDDetectWidgets.detect_module_logic.FCDDetectLogic``; in the tests: a fake) and the
shared :class:`~.models_registry.ModelsFolderRegistry`. The Qt widget reads its widgets,
calls the presenter, and applies the returned values; it decides nothing itself.

Example:
    >>> from FCDDetectLib.slicer_support.models_registry import DictSettings, ModelsFolderRegistry
    >>> presenter = DetectPresenter(logic=None, registry=ModelsFolderRegistry(DictSettings()))
    >>> presenter.apply_state(has_input=True, model_path="").enabled
    False
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.models_registry import ModelsFolderRegistry
from FCDDetectLib.slicer_support.paths import path_or_none, scan_refusal
from FCDDetectLib.slicer_support.sample_data import SampleFiles, is_sample_volume, sample_files

SAMPLE_MODEL_LABEL = "FCD sample model (synthetic demo)"
SAMPLE_MODEL_TOOLTIP = ("A tiny model trained on synthetic planted-evidence volumes, for the FCD sample scan only: "
                        "its only evidence is brightness. Not for real scans.")
HEATMAP_OVERLAY = "Heatmap"
LESION_MAP_OVERLAY = "Lesion map"
OVERLAYS: tuple[tuple[str, str], ...] = (
    (HEATMAP_OVERLAY, "heatmap_node"),
    (LESION_MAP_OVERLAY, "lesion_map_node"),
)
"""The maps the *Overlay* selector offers, in this order: (label, attribute of the result's
``DetectionNodes``). A result offers a row when it has that node; another map a detection
makes (the fold ensemble's uncertainty, say) is one more row here and nothing else."""


BUNDLE_LAYER = "bundle"
"""The panel's layer choice that leaves the network stage to the model bundle."""


def panel_options(method: str, device: str, layer: str, cluster_threshold: float, min_cluster_mm3: float,
                  use_model_point: bool = False) -> Any:
    """The panel's fields as the one :class:`~FCDDetectLib.detection.options.DetectOptions` of a detection.

    ``use_model_point`` (the panel's "Use the model's operating point", ticked by default): the
    cluster threshold and smallest size are left to the model (its calibrated operating point,
    :meth:`DetectOptions.for_bundle <FCDDetectLib.detection.options.DetectOptions.for_bundle>`),
    and the two fields are ignored; unticked, they override it, as ``fcd detect
    --cluster-threshold/--min-cluster-mm3`` do.

    Example:
        >>> panel_options("gradcam", "cpu", "bundle", 0.4, 20.0).layer is None
        True
        >>> panel_options("gradcam", "cpu", "bundle", 0.4, 20.0, use_model_point=True).cluster_threshold is None
        True
    """
    from FCDDetectLib.detection.options import DetectOptions

    return DetectOptions(method=method, device=device, layer=None if layer == BUNDLE_LAYER else layer,
                         cluster_threshold=None if use_model_point else cluster_threshold,
                         min_cluster_mm3=None if use_model_point else min_cluster_mm3)


class DetectPanelLogic(Protocol):
    """What the FCDDetect panel needs from its logic (the Slicer logic, or a test fake)."""

    def listBundles(self, folder: str) -> Any:
        """A ``BundleListing`` of ``folder`` (raises FCDInputError when it cannot be listed)."""

    def process(self, inputVolumes: Sequence[Any], model: Any, **options: Any) -> Any:
        """Run detection; returns ``DetectionNodes``."""

    def clusterJumpPoint(self, clustersTable: Any, row: int) -> list[float] | None:
        """RAS of the cluster in ``row`` of the clusters table (None: no such row)."""

    def checkInstallation(self, folders: Sequence[str], wait: bool = True) -> Any:
        """An ``InstallationReport`` of this Slicer and the given models folders (``wait=False``:
        a started background task whose result is the report)."""

    def startReport(self, nodes: Any, folder: str) -> Any:
        """Start writing the report of ``nodes`` into ``folder``: a background task (result: the PDF)."""


@dataclass
class ApplyState:
    """The Apply button: enabled or not, and why (tooltip)."""

    enabled: bool
    tooltip: str


@dataclass
class ModelChoice:
    """One entry of the model combo box."""

    name: str
    path: str
    tooltip: str


@dataclass
class ModelList:
    """Model combo box content and the line under it."""

    choices: list[ModelChoice] = field(default_factory=list)
    info: str = ""


@dataclass
class ClusterTables:
    """The panel's two clusters tables: the heatmap's and the lesion map's (None: no clusters)."""

    heatmap: Any = None
    lesion: Any = None

    @property
    def lesion_shown(self) -> bool:
        """The lesion map's table (and its label) is shown only when there is one."""
        return self.lesion is not None


@dataclass
class Message:
    """A message for the user: ``kind`` is "info", "warning" or "error"."""

    kind: str
    text: str


class DetectPresenter:
    """Decisions of the FCDDetect panel (see the module docstring)."""

    def __init__(self, logic: DetectPanelLogic | None, registry: ModelsFolderRegistry,
                 version_problem: str | None = None) -> None:
        self.logic = logic
        self.registry = registry
        self.version_problem = version_problem
        self._restoring_segment = 0

    # -- Apply -----------------------------------------------------------------------------
    def apply_state(self, has_input: bool, model_path: str | None) -> ApplyState:
        if self.version_problem:
            return ApplyState(False, self.version_problem)
        if not has_input:
            return ApplyState(False, "Select an input volume.")
        if not path_or_none(model_path):
            return ApplyState(False, "Select a model (choose a models folder that holds .fcdbundle folders).")
        return ApplyState(True, "Run the detection.")

    # -- models folder ---------------------------------------------------------------------
    def models_folder_edited(self, text: str | None) -> bool:
        """The user changed the models-folder field: remember it; True when a rescan is due.

        An unset field ("" or ".") is not stored and not scanned, so "." never replaces the
        saved folder. The Qt widget calls this after a pause in typing (debounced), never
        per keystroke.
        """
        value = path_or_none(text)
        if value is None:
            return False
        if value == self.registry.current:
            return False
        self.registry.set_current(value)
        return scan_refusal(value) is None

    def initial_models_folder(self, parameter_value: str | None) -> str | None:
        """The folder to show on start or after a scene close: the scene's, else the saved one."""
        return path_or_none(parameter_value) or self.registry.current

    def model_list(self, input_name: str | None = None, sample: SampleFiles | None = None) -> ModelList:
        """The bundles of the models folder and of every registered run folder; first the FCD
        sample's demonstration model when the input is the sample scan (``input_name``), and only then."""
        listing = ModelList()
        sample = sample or sample_files()
        if is_sample_volume(input_name) and not sample.missing():
            listing.choices.append(ModelChoice(SAMPLE_MODEL_LABEL, str(sample.bundle), SAMPLE_MODEL_TOOLTIP))
        notes: list[str] = []
        current = self.registry.current
        if current is not None and scan_refusal(current) is not None:
            notes.append(f"models folder: {scan_refusal(current)}")
        for folder in self.registry.folders():
            try:
                found = self.logic.listBundles(folder)
            except FCDInputError as error:
                notes.append(str(error))
                continue
            notes += list(found.skipped)
            listing.choices += [ModelChoice(e.name, str(e.path), e.tooltip) for e in found.bundles]
        if notes:
            listing.info = "\n".join(notes[:3])
        elif not listing.choices:
            listing.info = "No model found: choose the folder that holds your .fcdbundle models."
        elif len(listing.choices) == 1 and listing.choices[0].name == SAMPLE_MODEL_LABEL:
            listing.info = "The FCD sample's demonstration model (load your models folder for real scans)."
        else:
            listing.info = f"{len(listing.choices)} model(s) found."
        return listing

    # -- segment selector (not bound by connectGui) -----------------------------------------
    @contextlib.contextmanager
    def restoring_segment(self) -> Iterator[None]:
        """While the widget restores the saved segment, selector signals must not overwrite it."""
        self._restoring_segment += 1
        try:
            yield
        finally:
            self._restoring_segment -= 1

    def segment_changed(self, node: Any, segment_id: str | None) -> tuple[Any, str] | None:
        """New (segmentation node, segment id) to store, or None to ignore the signal.

        Signals fired while restoring (``setCurrentNode`` clears the segment first) are
        ignored, so a loaded scene keeps its saved segment id.
        """
        if self._restoring_segment:
            return None
        return node, segment_id or ""

    # -- results ---------------------------------------------------------------------------
    def result_text(self, nodes: Any) -> str:
        """The result panel's text: summary, model, time, out-of-distribution and warnings."""
        result = nodes.result
        details = getattr(result, "heat_score_details", None)
        extra = " (segment resampled onto the volume grid)" if details and details.roi_resampled else ""
        lines = [f"{nodes.summary()}{extra}", f"Model: {result.model}, {result.seconds:.1f} s"]
        clusters = list(getattr(result, "clusters", None) or [])
        if clusters:
            top = clusters[0]
            lines.append(f"{len(clusters)} cluster(s); top: {float(top.get('volume_mm3', math.nan)):.0f} mm3, "
                         f"peak {float(top.get('peak', math.nan)):.2f}, {top.get('hemisphere', '?')} hemisphere")
        if getattr(result, "out_of_distribution", False):
            reasons = list(getattr(result, "ood_reasons", None) or [])
            lines.append("OUT OF DISTRIBUTION: this scan is unlike the model's training data; do not trust "
                         "the result" + (": " + "; ".join(reasons) if reasons else "."))
        lines += [f"Warning: {w}" for w in (getattr(result, "warnings", None) or [])]
        return "\n".join(lines)

    def result_message_kind(self, nodes: Any) -> str:
        """"warning" when the result must be read with care (out of distribution, warnings)."""
        result = nodes.result
        return "warning" if getattr(result, "out_of_distribution", False) or getattr(result, "warnings", None) \
            else "info"

    @staticmethod
    def overlay_choices(nodes: Any) -> list[str]:
        """Which maps the overlay selector offers (:data:`OVERLAYS` the result has; the heatmap always)."""
        return [label for label, attribute in OVERLAYS
                if attribute == "heatmap_node" or getattr(nodes, attribute, None) is not None]

    @staticmethod
    def overlay_node(nodes: Any, choice: str) -> Any:
        """The volume node shown as the slice views' foreground for ``choice`` (else the heatmap)."""
        attribute = dict(OVERLAYS).get(choice, "heatmap_node")
        return getattr(nodes, attribute, None) or nodes.heatmap_node

    @staticmethod
    def cluster_tables(nodes: Any) -> ClusterTables:
        """The clusters tables of a result (``DetectionNodes``) for the panel's two table views."""
        return ClusterTables(getattr(nodes, "clusters_table_node", None),
                             getattr(nodes, "lesion_clusters_table_node", None))

    def cluster_selected(self, clusters_table: Any, row: int) -> list[float] | None:
        """RAS to centre the slice views on when a row of a clusters table is selected.

        ``clusters_table``: the table of the view the row was selected in (the heatmap's or
        the lesion map's); the jump is to that table's cluster, never the other table's.
        """
        if clusters_table is None or row is None or row < 0:
            return None
        return self.logic.clusterJumpPoint(clusters_table, row)

    # -- report, installation ------------------------------------------------------------------
    @staticmethod
    def report_problem(nodes: Any, folder: str | None) -> Message | None:
        """Why the report cannot be started (None: start it into ``folder``)."""
        if nodes is None:
            return Message("error", "Run a detection first.")
        if path_or_none(folder) is None:
            return Message("error", "Choose a folder for the report.")
        return None

    @staticmethod
    def report_written(path: Any) -> Message:
        """The message once the report task has written ``path``."""
        return Message("info", f"Report written: {path}")

    def installation_folders(self) -> list[str]:
        """The models folders "Check installation" loads every bundle of."""
        return self.registry.folders()

    @staticmethod
    def installation_message(report: Any) -> Message:
        """The "Check installation" report as a message (a warning when it found problems)."""
        return Message("warning" if report.problems else "info", report.text())
