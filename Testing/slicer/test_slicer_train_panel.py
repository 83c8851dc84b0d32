"""The FCD Train panel's decisions, driven without Qt: its presenter on the real Qt-free
``TrainLogic`` (buttons, settings, the command line, registering a run) and the training
child it starts (stopped on close, never waited for; issue 14, items 6, 10).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.detect_presenter import DetectPresenter
from FCDDetectLib.slicer_support.models_folder import list_bundles
from FCDDetectLib.slicer_support.models_registry import DictSettings, ModelsFolderRegistry
from FCDTrainLib.slicer_support.train_launcher import TrainLogic, TrainSettings
from FCDTrainLib.slicer_support.train_presenter import PanelValues, TrainPresenter
from FCDTrainLib.training.medicalnet_weights import DownloadCancelled

from Testing.builders.panel_fakes import metadata_bundle


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
    metadata_bundle(run / "fold-0" / "model.fcdbundle")
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
    assert "Choice(list(PANEL_PRESETS))" in fields["preset"]


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


def test_train_panel_recipe_fills_its_fields_and_reaches_the_run_config(tmp_path):
    """Recipe "lesion" in the panel trains what ``fcd train --preset lesion`` trains: the fields it
    shows take the preset's values, the rest travels as ``--preset``; a field changed afterwards wins."""
    import argparse

    from FCDTrainLib.cli import register_commands
    from FCDTrainLib.cli.config_options import config_from_args
    from FCDTrainLib.run_folder.run_config import PRESETS, RunConfig

    def run_config(values: PanelValues) -> RunConfig:
        parser = argparse.ArgumentParser()
        register_commands(parser.add_subparsers(dest="command"))
        return config_from_args(parser.parse_args(presenter.settings(values).arguments()))

    presenter = TrainPresenter(TrainLogic(), ModelsFolderRegistry(DictSettings()))
    custom = PanelValues(data_path=str(tmp_path), output_path=str(tmp_path / "o"), depths=[34],
                         modalities=["t1"], folds=4, seed=7, pretrained=["none"])
    lesion = presenter.with_preset(custom, "lesion")
    assert (lesion.supervision, lesion.depths, lesion.modalities, lesion.geometry, lesion.max_epochs) == (
        "lesion", [18], ["flair"], "medicalnet", 300)
    assert (lesion.folds, lesion.seed, lesion.data_path) == (4, 7, custom.data_path)  # not the recipe's to set
    config = run_config(lesion)
    expected = RunConfig.preset("lesion", data=str(tmp_path), folds=4, seed=7)
    assert config == expected and {k: getattr(config, k) for k in PRESETS["lesion"]} == PRESETS["lesion"]
    shorter = run_config(PanelValues(**{**vars(lesion), "max_epochs": 50}))
    assert shorter.max_epochs == 50 and shorter.patch == [48, 48, 48]  # the change wins, the rest stays
    back = presenter.with_preset(lesion, "none")
    assert back.preset == "none" and "--preset" not in presenter.settings(back).arguments()
    assert run_config(back).patch is None and run_config(back).supervision == "lesion"  # fields kept as they are
    with pytest.raises(FCDInputError, match="recipe 'demo'"):
        presenter.with_preset(custom, "demo")
    with pytest.raises(FCDInputError, match="preset 'fast'"):
        TrainSettings(data=tmp_path, out=tmp_path / "o", preset="fast").check()
