"""The FCD Detect panel's decisions, driven without Qt: its presenter with a fake logic
(``DetectPanelLogic``), the models list, the result text, overlays, cluster tables and the
model's operating point (issue 14, items 2-4, 9).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from FCDDetectLib.slicer_support.detect_presenter import (
    LESION_MAP_OVERLAY,
    OVERLAYS,
    SAMPLE_MODEL_LABEL,
    DetectPresenter,
)
from FCDDetectLib.slicer_support.models_folder import BundleListing

from Testing.builders.panel_fakes import FakeDetectLogic, detect_presenter, result_nodes


def test_apply_button_states():
    presenter = detect_presenter()
    assert not presenter.apply_state(False, "/m.fcdbundle").enabled
    state = presenter.apply_state(True, ".")
    assert not state.enabled and "model" in state.tooltip
    assert presenter.apply_state(True, "/m.fcdbundle").enabled
    old = detect_presenter(version_problem="FCD Detection needs Slicer 5.10 or newer")
    state = old.apply_state(True, "/m.fcdbundle")
    assert not state.enabled and "5.10" in state.tooltip


def test_models_folder_edits_never_store_dot_and_never_scan_root(tmp_path):
    logic = FakeDetectLogic()
    presenter = detect_presenter(logic)
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
    presenter = detect_presenter(logic)
    presenter.registry.set_current(str(models))
    presenter.registry.register(str(run))
    listing = presenter.model_list()
    assert [c.name for c in listing.choices] == ["r18"] and listing.choices[0].tooltip == "ResNet-18"
    assert "broken.fcdbundle" in listing.info
    assert "No model found" in detect_presenter().model_list().info


def test_restoring_the_saved_segment_ignores_selector_signals():
    presenter = detect_presenter()
    with presenter.restoring_segment():
        # setCurrentNode fires currentSegmentChanged("") before the id is restored (item 9)
        assert presenter.segment_changed("segmentation", "") is None
        assert presenter.segment_changed("segmentation", "Segment_1") is None
    assert presenter.segment_changed("segmentation", "Segment_2") == ("segmentation", "Segment_2")
    assert presenter.segment_changed(None, None) == (None, "")


def test_result_text_shows_clusters_ood_and_warnings():
    presenter = detect_presenter()
    plain = result_nodes()
    assert presenter.result_message_kind(plain) == "info"
    assert "OUT OF DISTRIBUTION" not in presenter.result_text(plain)
    cluster = {"id": 1, "voxels": 30, "volume_mm3": 240.0, "peak": 0.93, "mean": 0.7,
               "peak_ras": [1, 2, 3], "centroid_ras": [1, 2, 3], "hemisphere": "left"}
    odd = result_nodes(out_of_distribution=True, ood_reasons=["voxel size 5 mm"], warnings=["T1 missing"],
                       clusters=[cluster])
    text = presenter.result_text(odd)
    assert "OUT OF DISTRIBUTION" in text and "voxel size 5 mm" in text and "Warning: T1 missing" in text
    assert "1 cluster(s); top: 240 mm3, peak 0.93, left hemisphere" in text
    assert presenter.result_message_kind(odd) == "warning"


def test_overlay_choices_and_cluster_jump():
    presenter = detect_presenter()
    assert presenter.overlay_choices(result_nodes()) == ["Heatmap"]
    nodes = result_nodes(lesion_map_node="lesion")
    assert presenter.overlay_choices(nodes) == ["Heatmap", LESION_MAP_OVERLAY]
    assert presenter.overlay_node(nodes, LESION_MAP_OVERLAY) == "lesion"
    assert presenter.overlay_node(nodes, "Heatmap") == "heat"
    assert presenter.cluster_selected("table", 1) == [1.0, 2.0, 3.0]
    assert presenter.cluster_selected("table", -1) is None and presenter.cluster_selected(None, 0) is None


def test_lesion_map_clusters_get_their_own_table_and_jump_from_it():
    logic = FakeDetectLogic()
    presenter = detect_presenter(logic)
    both = SimpleNamespace(clusters_table_node="heat clusters", lesion_clusters_table_node="lesion clusters")
    tables = presenter.cluster_tables(both)
    assert (tables.heatmap, tables.lesion) == ("heat clusters", "lesion clusters") and tables.lesion_shown
    heat_only = presenter.cluster_tables(SimpleNamespace(clusters_table_node="heat clusters",
                                                         lesion_clusters_table_node=None))
    assert heat_only.lesion is None and not heat_only.lesion_shown  # no lesion head: its table is hidden
    assert not presenter.cluster_tables(result_nodes()).lesion_shown  # a result object without the field
    # A row selected in either view jumps to that view's own table's cluster.
    assert presenter.cluster_selected(tables.lesion, 0) == [1.0, 2.0, 3.0]
    assert presenter.cluster_selected(tables.heatmap, 1) == [1.0, 2.0, 3.0]
    assert logic.jumps == [("lesion clusters", 0), ("heat clusters", 1)]


def test_save_report_guarded(tmp_path):
    presenter = detect_presenter()
    assert presenter.report_problem(None, str(tmp_path)).kind == "error"
    assert presenter.report_problem(result_nodes(), ".").kind == "error"
    assert presenter.report_problem(result_nodes(), str(tmp_path)) is None
    message = presenter.report_written(tmp_path / "report.pdf")
    assert message.kind == "info" and str(tmp_path / "report.pdf") in message.text


def test_installation_check_uses_registered_folders(tmp_path):
    presenter = detect_presenter()
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

    presenter = detect_presenter()
    assert SAMPLE_MODEL_LABEL not in [c.name for c in presenter.model_list("FLAIR").choices]
    listing = presenter.model_list(SCAN_NODE_NAME)
    assert listing.choices[0].name == SAMPLE_MODEL_LABEL and listing.choices[0].path == str(sample_files().bundle)
    assert "demonstration" in listing.info
    missing = presenter.model_list(SCAN_NODE_NAME, sample=sample_files(tmp_path))  # an incomplete sample
    assert SAMPLE_MODEL_LABEL not in [c.name for c in missing.choices]


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
