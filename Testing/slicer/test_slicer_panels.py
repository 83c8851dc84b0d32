"""The panels' decisions, driven without Qt: presenters with a fake logic, the shared
models-folder registry, path fields, the depth-limited models scan (issue 14, items 2-4, 9-11).

The fake logics implement the Protocols the Qt widgets are given (``DetectPanelLogic``,
``TrainPanelLogic``); where the real Qt-free logic can run (listing bundles, a child
process), the real one is used.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.detect_presenter import (
    LESION_MAP_OVERLAY,
    OVERLAYS,
    SAMPLE_MODEL_LABEL,
    DetectPresenter,
)
from FCDDetectLib.slicer_support.models_folder import BundleListing, find_bundle_folders, list_bundles
from FCDDetectLib.slicer_support.models_registry import (
    EXTRA_MODEL_FOLDERS_KEY,
    MODELS_FOLDER_KEY,
    DictSettings,
    ModelsFolderRegistry,
)
from FCDDetectLib.slicer_support.paths import is_set, path_or_none, scan_refusal
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings
from FCDTrainLib.slicer_support.train_presenter import PanelValues, TrainPresenter
from FCDTrainLib.training.medicalnet_weights import DownloadCancelled


def _write_bundle(folder: Path, name: str = "m") -> Path:
    """A bundle folder whose bundle.json is valid for list_bundles (metadata only)."""
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata

    folder.mkdir(parents=True)
    meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[24, 24, 24], name=name)
    (folder / "bundle.json").write_text(__import__("json").dumps(meta.to_dict()), encoding="utf-8")
    return folder


# -- paths ----------------------------------------------------------------------------------------
def test_unset_paths_are_empty_and_dot():
    for text in ("", ".", "./", "  ", None, Path("")):
        assert path_or_none(text) is None and not is_set(text)
    assert path_or_none(" /data/x ") == "/data/x"


def test_scan_refuses_dot_root_home_and_missing(tmp_path):
    assert scan_refusal(".") == "no models folder chosen"
    assert "root" in scan_refusal("/")
    assert "home" in scan_refusal(str(Path.home()))
    assert "no such folder" in scan_refusal(str(tmp_path / "absent"))
    assert scan_refusal(str(tmp_path)) is None
    for refused in (".", "/", ""):
        with pytest.raises(FCDInputError):
            list_bundles(refused)


def test_models_scan_has_a_depth_limit(tmp_path):
    _write_bundle(tmp_path / "runs" / "r18" / "fold-0" / "model.fcdbundle")  # depth 4: an experiment folder
    _write_bundle(tmp_path / "a" / "b" / "c" / "d" / "deep.fcdbundle")  # depth 5: not searched
    _write_bundle(tmp_path / ".hidden" / "h.fcdbundle")
    _write_bundle(tmp_path / "top.fcdbundle")
    _write_bundle(tmp_path / "top.fcdbundle" / "inner.fcdbundle")  # inside a bundle: not entered
    found, truncated = find_bundle_folders(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["runs/r18/fold-0/model.fcdbundle",
                                                                   "top.fcdbundle"]
    assert not truncated
    assert find_bundle_folders(tmp_path, max_depth=1)[0] == [tmp_path / "top.fcdbundle"]
    assert [e.path for e in list_bundles(tmp_path, recursive=False).bundles] == [tmp_path / "top.fcdbundle"]
    for i in range(5):
        (tmp_path / "wide" / f"d{i}").mkdir(parents=True)
    found, truncated = find_bundle_folders(tmp_path, max_folders=3)
    assert truncated  # a huge tree stops early instead of freezing the panel
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    assert all("link" not in p.parts for p in find_bundle_folders(tmp_path)[0])  # symlinks not followed


# -- registry -------------------------------------------------------------------------------------
def test_registry_never_stores_dot_and_drops_unsafe_entries(tmp_path):
    store = DictSettings()
    registry = ModelsFolderRegistry(store)
    assert not registry.set_current(".") and not registry.set_current("")
    assert MODELS_FOLDER_KEY not in store.values
    with pytest.raises(FCDInputError, match="no models folder chosen"):
        registry.register(".")  # "Load results" with no output folder (issue 14, item 4)
    with pytest.raises(FCDInputError, match="root"):
        registry.register("/")
    run = tmp_path / "run"
    run.mkdir()
    assert registry.register(str(run)) == str(run.resolve())
    registry.register(str(run))  # twice: kept once
    store.values[EXTRA_MODEL_FOLDERS_KEY] = store.values[EXTRA_MODEL_FOLDERS_KEY] + [".", "/", str(tmp_path / "gone")]
    assert registry.extra_folders() == [str(run.resolve())]
    store.values[EXTRA_MODEL_FOLDERS_KEY] = str(run)  # QSettings returns a str for a one-item list
    assert registry.extra_folders() == [str(run)]
    registry.set_current(str(tmp_path))
    assert registry.folders() == [str(tmp_path), str(run)]


# -- FCDDetect presenter ----------------------------------------------------------------------------
@dataclass
class FakeDetectLogic:
    """Implements DetectPanelLogic; records what the presenter asked."""

    listings: dict = field(default_factory=dict)
    listed: list = field(default_factory=list)
    jumps: list = field(default_factory=list)

    def listBundles(self, folder):
        self.listed.append(folder)
        if folder not in self.listings:
            raise FCDInputError(f"models folder {folder}: unreadable")
        return self.listings[folder]

    def process(self, inputVolumes, model, **options):
        raise AssertionError("not used")

    def clusterJumpPoint(self, clustersTable, row):
        self.jumps.append((clustersTable, row))
        return [1.0, 2.0, 3.0] if row < 2 else None

    def checkInstallation(self, folders, wait=True):
        return SimpleNamespace(problems=[], text=lambda: f"checked {list(folders)}")

    def startReport(self, nodes, folder):
        raise AssertionError("the widget starts the report, after report_problem")


def _presenter(logic=None, **kwargs):
    return DetectPresenter(logic or FakeDetectLogic(), ModelsFolderRegistry(DictSettings()), **kwargs)


def test_apply_button_states():
    presenter = _presenter()
    assert not presenter.apply_state(False, "/m.fcdbundle").enabled
    state = presenter.apply_state(True, ".")
    assert not state.enabled and "model" in state.tooltip
    assert presenter.apply_state(True, "/m.fcdbundle").enabled
    old = _presenter(version_problem="FCD Detection needs Slicer 5.10 or newer")
    state = old.apply_state(True, "/m.fcdbundle")
    assert not state.enabled and "5.10" in state.tooltip


def test_models_folder_edits_never_store_dot_and_never_scan_root(tmp_path):
    logic = FakeDetectLogic()
    presenter = _presenter(logic)
    presenter.registry.set_current(str(tmp_path))
    assert presenter.models_folder_edited(".") is False  # the unset field at start: not stored (item 2)
    assert presenter.registry.current == str(tmp_path)
    assert presenter.initial_models_folder(".") == str(tmp_path)  # an unset parameter: the saved folder
    assert presenter.models_folder_edited("/") is False  # typing "/": remembered, never scanned (item 3)
    listing = presenter.model_list()
    assert logic.listed == [] and "root" in listing.info
    assert presenter.models_folder_edited(str(tmp_path)) is True


def test_model_list_merges_folders_and_reports_problems(tmp_path):
    models, run = tmp_path / "models", tmp_path / "run"
    models.mkdir()
    run.mkdir()
    entry = SimpleNamespace(name="r18", path=run / "fold-0" / "model.fcdbundle", tooltip="ResNet-18")
    logic = FakeDetectLogic(listings={str(models): BundleListing([], ["broken.fcdbundle: bad json"]),
                                      str(run.resolve()): BundleListing([entry], [])})
    presenter = _presenter(logic)
    presenter.registry.set_current(str(models))
    presenter.registry.register(str(run))
    listing = presenter.model_list()
    assert [c.name for c in listing.choices] == ["r18"] and listing.choices[0].tooltip == "ResNet-18"
    assert "broken.fcdbundle" in listing.info
    assert "No model found" in _presenter().model_list().info


def test_restoring_the_saved_segment_ignores_selector_signals():
    presenter = _presenter()
    with presenter.restoring_segment():
        # setCurrentNode fires currentSegmentChanged("") before the id is restored (item 9)
        assert presenter.segment_changed("segmentation", "") is None
        assert presenter.segment_changed("segmentation", "Segment_1") is None
    assert presenter.segment_changed("segmentation", "Segment_2") == ("segmentation", "Segment_2")
    assert presenter.segment_changed(None, None) == (None, "")


def _nodes(**result_fields):
    result = SimpleNamespace(model="m", seconds=1.0, heat_score_details=None, **result_fields)
    return SimpleNamespace(result=result, summary=lambda: "FCD  p(FCD) = 0.900", heatmap_node="heat",
                           lesion_map_node=result_fields.get("lesion_map_node"))


def test_result_text_shows_clusters_ood_and_warnings():
    presenter = _presenter()
    plain = _nodes()
    assert presenter.result_message_kind(plain) == "info"
    assert "OUT OF DISTRIBUTION" not in presenter.result_text(plain)
    cluster = {"id": 1, "voxels": 30, "volume_mm3": 240.0, "peak": 0.93, "mean": 0.7,
               "peak_ras": [1, 2, 3], "centroid_ras": [1, 2, 3], "hemisphere": "left"}
    odd = _nodes(out_of_distribution=True, ood_reasons=["voxel size 5 mm"], warnings=["T1 missing"],
                 clusters=[cluster])
    text = presenter.result_text(odd)
    assert "OUT OF DISTRIBUTION" in text and "voxel size 5 mm" in text and "Warning: T1 missing" in text
    assert "1 cluster(s); top: 240 mm3, peak 0.93, left hemisphere" in text
    assert presenter.result_message_kind(odd) == "warning"


def test_overlay_choices_and_cluster_jump():
    presenter = _presenter()
    assert presenter.overlay_choices(_nodes()) == ["Heatmap"]
    nodes = _nodes(lesion_map_node="lesion")
    assert presenter.overlay_choices(nodes) == ["Heatmap", LESION_MAP_OVERLAY]
    assert presenter.overlay_node(nodes, LESION_MAP_OVERLAY) == "lesion"
    assert presenter.overlay_node(nodes, "Heatmap") == "heat"
    assert presenter.cluster_selected("table", 1) == [1.0, 2.0, 3.0]
    assert presenter.cluster_selected("table", -1) is None and presenter.cluster_selected(None, 0) is None


def test_lesion_map_clusters_get_their_own_table_and_jump_from_it():
    logic = FakeDetectLogic()
    presenter = _presenter(logic)
    both = SimpleNamespace(clusters_table_node="heat clusters", lesion_clusters_table_node="lesion clusters")
    tables = presenter.cluster_tables(both)
    assert (tables.heatmap, tables.lesion) == ("heat clusters", "lesion clusters") and tables.lesion_shown
    heat_only = presenter.cluster_tables(SimpleNamespace(clusters_table_node="heat clusters",
                                                         lesion_clusters_table_node=None))
    assert heat_only.lesion is None and not heat_only.lesion_shown  # no lesion head: its table is hidden
    assert not presenter.cluster_tables(_nodes()).lesion_shown  # a result object without the field
    # A row selected in either view jumps to that view's own table's cluster.
    assert presenter.cluster_selected(tables.lesion, 0) == [1.0, 2.0, 3.0]
    assert presenter.cluster_selected(tables.heatmap, 1) == [1.0, 2.0, 3.0]
    assert logic.jumps == [("lesion clusters", 0), ("heat clusters", 1)]


def test_save_report_guarded(tmp_path):
    presenter = _presenter()
    assert presenter.report_problem(None, str(tmp_path)).kind == "error"
    assert presenter.report_problem(_nodes(), ".").kind == "error"
    assert presenter.report_problem(_nodes(), str(tmp_path)) is None
    message = presenter.report_written(tmp_path / "report.pdf")
    assert message.kind == "info" and str(tmp_path / "report.pdf") in message.text


def test_installation_check_uses_registered_folders(tmp_path):
    presenter = _presenter()
    presenter.registry.set_current(str(tmp_path))
    assert presenter.installation_folders() == [str(tmp_path)]
    report = presenter.logic.checkInstallation(presenter.installation_folders())
    assert presenter.installation_message(report).text == f"checked {[str(tmp_path)]}"
    assert presenter.installation_message(SimpleNamespace(problems=["x"], text=lambda: "t")).kind == "warning"


def test_overlays_are_a_table_a_third_map_joins_by_name(monkeypatch):
    """The fold ensemble's uncertainty (issue 27) is one more (label, attribute) row."""
    from FCDDetectLib.slicer_support import detect_presenter

    nodes = SimpleNamespace(heatmap_node="heat", lesion_map_node=None, uncertainty_node="sd")
    assert DetectPresenter.overlay_choices(nodes) == ["Heatmap"]
    monkeypatch.setattr(detect_presenter, "OVERLAYS", (*OVERLAYS, ("Uncertainty", "uncertainty_node")))
    assert DetectPresenter.overlay_choices(nodes) == ["Heatmap", "Uncertainty"]
    assert DetectPresenter.overlay_node(nodes, "Uncertainty") == "sd"
    assert DetectPresenter.overlay_node(nodes, "Lesion map") == "heat"  # absent: the heatmap


def test_sample_model_is_listed_for_the_sample_scan_only(tmp_path):
    from FCDDetectLib.slicer_support.sample_data import SCAN_NODE_NAME, sample_files

    presenter = _presenter()
    assert SAMPLE_MODEL_LABEL not in [c.name for c in presenter.model_list("FLAIR").choices]
    listing = presenter.model_list(SCAN_NODE_NAME)
    assert listing.choices[0].name == SAMPLE_MODEL_LABEL and listing.choices[0].path == str(sample_files().bundle)
    assert "demonstration" in listing.info
    missing = presenter.model_list(SCAN_NODE_NAME, sample=sample_files(tmp_path))  # an incomplete sample
    assert SAMPLE_MODEL_LABEL not in [c.name for c in missing.choices]


# -- FCDTrain presenter -----------------------------------------------------------------------------
def test_train_buttons_and_settings(tmp_path):
    presenter = TrainPresenter(TrainLogic(), ModelsFolderRegistry(DictSettings()))
    assert not presenter.buttons(PanelValues(data_path=".", output_path=str(tmp_path)), running=False).start
    assert not presenter.buttons(PanelValues(data_path=str(tmp_path), output_path=""), running=False).start
    ready = presenter.buttons(PanelValues(data_path=str(tmp_path), output_path=str(tmp_path)), running=False)
    assert ready.start and not ready.stop
    busy = presenter.buttons(PanelValues(data_path=str(tmp_path), output_path=str(tmp_path)), running=True)
    assert not busy.start and busy.stop
    with pytest.raises(FCDInputError, match="no output folder"):
        presenter.settings(PanelValues(data_path=str(tmp_path), output_path="."))
    values = PanelValues(data_path=str(tmp_path), output_path=str(tmp_path / "out"), pretrained=["medicalnet23"],
                         weights_cache_folder=str(tmp_path))
    settings = presenter.settings(values, find_cached=lambda cache, family, depth: Path(cache) / f"{family}{depth}")
    assert settings.weights == tmp_path / "medicalnet2318" and settings.weights_dir is None
    grid = presenter.settings(PanelValues(data_path=str(tmp_path), output_path="o", depths=[18, 34],
                                          weights_cache_folder="."))
    assert grid.is_experiment and grid.weights_dir is None  # "." is no cache folder


def test_end_of_run_load_reads_the_logic_not_the_parameter_node(tmp_path):
    """After Close Scene the parameter node is new ("." or None): the folder of the run that
    ended comes from the logic (issue 14, item 10)."""
    logic = TrainLogic()
    presenter = TrainPresenter(logic, ModelsFolderRegistry(DictSettings()))
    assert presenter.finished_run_folder() is None
    logic.settings = TrainSettings(data=tmp_path, out=tmp_path / "run")
    assert presenter.finished_run_folder() == str(tmp_path / "run")
    with pytest.raises(FCDInputError, match="choose the output folder"):
        presenter.results_folder(".")
    with pytest.raises(FCDInputError, match="no such folder"):
        presenter.results_folder(str(tmp_path / "absent"))
    assert presenter.weights_cache_folder(".", lambda: tmp_path / "cache") == str(tmp_path / "cache")
    assert presenter.weights_cache_folder("/c", lambda: tmp_path) == "/c"


def test_registering_a_run_goes_through_the_registry(tmp_path):
    run = tmp_path / "run"
    _write_bundle(run / "fold-0" / "model.fcdbundle")
    registry = ModelsFolderRegistry(DictSettings())
    presenter = TrainPresenter(TrainLogic(), registry)
    assert "1 model(s)" in presenter.register_models(str(run)).text
    assert registry.extra_folders() == [str(run.resolve())]
    # FCD Detect's presenter, on the same store, now lists it (no call into its widget).
    detect = DetectPresenter(SimpleNamespace(listBundles=list_bundles), registry)
    assert [c.name for c in detect.model_list().choices] == ["m"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No model bundle" in presenter.register_models(str(empty)).text


def test_cancelled_download_is_not_a_failure():
    assert TrainPresenter.download_outcome(DownloadCancelled("x"), "r.pth").kind == "info"
    assert "cancelled" in TrainPresenter.download_outcome(DownloadCancelled("x"), "r.pth").text
    assert TrainPresenter.download_outcome(OSError("timeout"), "r.pth").kind == "error"
    assert TrainPresenter.download_outcome(None, "r.pth").kind == "info"
    from FCDDetectLib.slicer_support.background_task import TaskCancelled

    assert TrainPresenter.download_outcome(TaskCancelled("x"), "r.pth").kind == "info"  # Cancel of the child


def test_closing_slicer_stops_the_training_child(tmp_path):
    """cleanup() -> presenter.on_close(): the child (own session) must not outlive Slicer (item 6)."""
    from FCDDetectLib.slicer_support.tree_process import TreeProcess

    logic = TrainLogic()
    logic.process = TreeProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    logic.process.start()
    presenter = TrainPresenter(logic, ModelsFolderRegistry(DictSettings()))
    assert presenter.on_close() is True
    assert not logic.running and logic.process.stopped
    assert presenter.on_close() is False


def test_windows_child_and_taskkill_get_no_console_window():
    from FCDDetectLib.slicer_support.tree_process import CREATE_NO_WINDOW, kill_tree_command, popen_options

    flags = popen_options("win32")["creationflags"]
    assert flags & CREATE_NO_WINDOW and flags & 0x00000200  # and a new process group for taskkill /T
    command, options = kill_tree_command(42)
    assert command[:1] == ["taskkill"] and options["creationflags"] & CREATE_NO_WINDOW
    assert popen_options("linux") == {"start_new_session": True}
    if sys.platform == "win32":  # pragma: no cover - the constants match the real ones there
        import subprocess

        assert CREATE_NO_WINDOW == subprocess.CREATE_NO_WINDOW
    assert os.name  # the POSIX path is the one the other tests run


def test_train_panel_supervision_and_executor_reach_the_command_line(tmp_path):
    presenter = TrainPresenter(TrainLogic(), ModelsFolderRegistry(DictSettings()))
    lesion = presenter.settings(PanelValues(data_path=str(tmp_path), output_path=str(tmp_path / "o"),
                                            supervision="lesion"))
    args = lesion.arguments()
    assert args[0] == "train" and args[args.index("--supervision") + 1] == "lesion"
    values = PanelValues(data_path=str(tmp_path), output_path=str(tmp_path / "o"), depths=[18, 34],
                         executor="ray", ray_address=" head:6379 ", gpus_per_run=0.5)
    grid = presenter.settings(values).arguments()
    assert grid[0] == "experiment" and grid[grid.index("--executor") + 1] == "ray"
    assert grid[grid.index("--ray-address") + 1] == "head:6379" and grid[grid.index("--gpus-per-run") + 1] == "0.5"
    assert "--executor" not in presenter.settings(PanelValues(data_path=str(tmp_path), output_path="o",
                                                              depths=[18, 34])).arguments()
    # Ray runs experiments only: Start says so instead of failing in the child.
    single_ray = presenter.buttons(PanelValues(data_path=str(tmp_path), output_path="o", executor="ray"), False)
    assert not single_ray.start and "experiments" in single_ray.start_tooltip
    assert presenter.buttons(values, False).start


def test_train_parameter_node_declares_the_new_controls():
    import ast

    root = Path(__file__).resolve().parents[2]
    tree = ast.parse((root / "FCDTrain" / "FCDTrainWidgets" / "parameters.py").read_text(encoding="utf-8"))
    fields = {n.target.id: ast.unparse(n.annotation) for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)}
    assert "Choice(list(SUPERVISION))" in fields["supervision"] and "Choice(list(EXECUTORS))" in fields["executor"]
    assert fields["rayAddress"] == "str" and "float" in fields["gpusPerRun"]


def test_the_panels_stop_does_not_wait_for_the_training_child(monkeypatch):
    """Stop sends SIGTERM and returns; a child that ignores it is killed by a later poll."""
    import time

    from FCDDetectLib.slicer_support.tree_process import TreeProcess
    from FCDTrainLib.slicer_support import train_launcher

    logic = TrainLogic()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"
    logic.process = TreeProcess([sys.executable, "-c", stubborn])
    logic.process.start()
    while not logic.process.tail(1):  # the handler is in place
        time.sleep(0.05)
    assert logic.stop(wait=False) is None
    assert logic.running  # returned at once: a blocking stop would have killed it first
    monkeypatch.setattr(train_launcher, "KILL_AFTER_SECONDS", 0.0)
    time.sleep(0.01)
    logic.poll()  # past the grace period: SIGKILL
    assert logic.process.wait(timeout=30) is not None and not logic.running


def test_the_detect_panel_uses_the_models_operating_point_unless_unticked():
    import ast
    import xml.etree.ElementTree as ElementTree

    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.slicer_support.detect_presenter import panel_options

    calibrated = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[3.0, 3.0, 3.0],
                                target_shape=[64, 72, 64], head="lesion",
                                operating_point={"cluster_threshold": 0.9, "min_cluster_mm3": 400.0})
    ticked = panel_options("gradcam", "cpu", "bundle", 0.5, 50.0, use_model_point=True).for_bundle(calibrated)
    assert (ticked.cluster_threshold, ticked.min_cluster_mm3) == (0.9, 400.0)
    unticked = panel_options("gradcam", "cpu", "bundle", 0.4, 20.0, use_model_point=False).for_bundle(calibrated)
    assert (unticked.cluster_threshold, unticked.min_cluster_mm3) == (0.4, 20.0)
    # the Qt side (not importable here): ticked by default, bound to the parameter, passed to panel_options
    root = Path(__file__).resolve().parents[2] / "FCDDetect"
    tree = ast.parse((root / "FCDDetectWidgets" / "parameters.py").read_text(encoding="utf-8"))
    fields = {n.target.id: (ast.unparse(n.annotation), n.value and ast.unparse(n.value)) for n in ast.walk(tree)
              if isinstance(n, ast.AnnAssign)}
    assert fields["useModelOperatingPoint"] == ("bool", "True")
    ui = ElementTree.parse(root / "Resources" / "UI" / "FCDDetect.ui")
    box = ui.find(".//widget[@name='useModelOperatingPointCheckBox']")
    assert box is not None and box.find("property[@name='SlicerParameterName']/string").text == "useModelOperatingPoint"
    assert box.find("property[@name='checked']/bool").text == "true"
    widget = (root / "FCDDetectWidgets" / "detect_widget.py").read_text(encoding="utf-8")
    assert "use_model_point=p.useModelOperatingPoint" in widget
