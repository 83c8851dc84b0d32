"""FCDDetectLib.grid.geometry (one same-grid tolerance, voxel sizes) and FCDDetectLib.io.atomic_files (one JSON policy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from FCDDetectLib.grid.geometry import GRID_ATOL_MM, mask_onto_grid, same_grid, voxel_sizes
from FCDDetectLib.io.atomic_files import json_text, to_jsonable, write_json_atomic
from FCDDetectLib.io.image_io import Image


def test_voxel_sizes_of_an_oblique_affine():
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 1.2, 3.0])
    assert voxel_sizes(affine) == pytest.approx((0.8, 1.2, 3.0))


def test_same_grid_uses_one_tolerance_for_images_and_tuples():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = Image(np.zeros((4, 5, 6), np.float32), affine)
    assert same_grid(image, ((4, 5, 6), affine + GRID_ATOL_MM / 2))
    assert not same_grid(image, ((4, 5, 6), affine + GRID_ATOL_MM * 2))
    assert not same_grid(image, ((4, 5, 7), affine))


def test_mask_onto_grid_moves_a_mask_by_world_coordinates():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = True
    coarse = Image(mask, np.diag([2.0, 2.0, 2.0, 1.0]))
    fine = mask_onto_grid(coarse, ((8, 8, 8), np.eye(4)))
    assert fine.shape == (8, 8, 8) and fine[2, 2, 2] and fine.sum() == 8


def test_one_nan_policy_everywhere(tmp_path):
    value = {"auc": float("nan"), "inf": np.float32("inf"), "n": np.int64(3), "xs": np.arange(2), "t": (1.5,)}
    assert to_jsonable(value) == {"auc": None, "inf": None, "n": 3, "xs": [0, 1], "t": [1.5]}
    assert json.loads(json_text(value)) == to_jsonable(value)
    write_json_atomic(tmp_path / "r.json", value)
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == to_jsonable(value)
    with pytest.raises(TypeError):
        json_text({"object": object()})


def test_events_and_bundle_metadata_use_the_same_policy(tmp_path):
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDTrainLib.run_folder.event_log import EventLog, read_events

    log = EventLog(tmp_path / "events.jsonl")
    log.emit("epoch", val_auc=float("nan"), loss=np.float32(0.5))
    assert read_events(tmp_path / "events.jsonl")[0]["val_auc"] is None
    meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[8, 8, 8], metrics={"roc_auc": float("nan")})
    assert meta.to_dict()["metrics"]["roc_auc"] is None
