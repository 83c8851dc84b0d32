"""The models folder, driven without Qt: path fields, the depth-limited models scan and the
shared models-folder registry (issue 14, items 2-4, 11).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.models_folder import find_bundle_folders, list_bundles
from FCDDetectLib.slicer_support.models_registry import (
    EXTRA_MODEL_FOLDERS_KEY,
    MODELS_FOLDER_KEY,
    DictSettings,
    ModelsFolderRegistry,
)
from FCDDetectLib.slicer_support.paths import is_set, path_or_none, scan_refusal

from Testing.builders.panel_fakes import metadata_bundle


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
    metadata_bundle(tmp_path / "runs" / "r18" / "fold-0" / "model.fcdbundle")  # depth 4: an experiment folder
    metadata_bundle(tmp_path / "a" / "b" / "c" / "d" / "deep.fcdbundle")  # depth 5: not searched
    metadata_bundle(tmp_path / ".hidden" / "h.fcdbundle")
    metadata_bundle(tmp_path / "top.fcdbundle")
    metadata_bundle(tmp_path / "top.fcdbundle" / "inner.fcdbundle")  # inside a bundle: not entered
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
