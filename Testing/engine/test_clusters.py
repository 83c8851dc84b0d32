"""Clusters against hand-built label volumes: sizes, minimum size, ranking, RAS positions, hemisphere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.maps.clusters import Cluster, ClusterSet, find_clusters

from Testing.builders.geometry_fixtures import centred_affine, ellipsoid_mask, head_phantom, world_coords


def _two_blobs() -> np.ndarray:
    heat = np.zeros((30, 24, 20), np.float32)
    heat[2:8, 3:7, 4:9] = 0.8           # 6*4*5 = 120 voxels, peak 0.8
    heat[20:23, 15:18, 10:13] = 0.6     # 27 voxels, peak raised below
    heat[21, 16, 11] = 0.95
    heat[27, 2, 2] = 1.0                # single voxel: under the min size
    heat[27, 20, 17:19] = 0.4           # below the threshold
    return heat


def test_two_blobs_sizes_min_size_and_ranking():
    affine = np.diag([2.0, 1.0, 1.5, 1.0])  # 3 mm3 voxels
    result = find_clusters(_two_blobs(), affine, threshold=0.5, min_size_mm3=10.0)
    assert isinstance(result, ClusterSet)
    assert [c.voxels for c in result.clusters] == [27, 120]  # ranked by peak: 0.95 before 0.8
    assert [c.id for c in result.clusters] == [1, 2]
    first, second = result.clusters
    assert first.volume_mm3 == pytest.approx(81.0) and second.volume_mm3 == pytest.approx(360.0)
    assert first.peak == pytest.approx(0.95) and first.confidence == first.peak
    assert first.mean == pytest.approx((26 * 0.6 + 0.95) / 27, rel=1e-6)
    assert second.mean == pytest.approx(0.8)
    assert result.labels.dtype == np.int16 and result.labels.shape == (30, 24, 20)
    assert int((result.labels == 1).sum()) == 27 and int((result.labels == 2).sum()) == 120
    assert result.labels[27, 2, 2] == 0  # dropped single voxel
    assert set(np.unique(result.labels).tolist()) == {0, 1, 2}
    # the same volume with no minimum keeps the single voxel (peak 1.0: ranked first)
    loose = find_clusters(_two_blobs(), affine, threshold=0.5, min_size_mm3=0.0)
    assert [c.voxels for c in loose.clusters] == [1, 27, 120]


def test_ranking_ties_broken_by_volume_and_json():
    heat = np.zeros((20, 20, 20), np.float32)
    heat[1:3, 1:3, 1:3] = 0.7
    heat[10:14, 10:14, 10:14] = 0.7
    result = find_clusters(heat, np.eye(4), min_size_mm3=0.0)
    assert [c.voxels for c in result.clusters] == [64, 8]
    data = result.clusters[0].to_json()
    # the ensemble's fields (folds_found, mean_uncertainty) only when a fold ensemble set them
    assert set(data) == {f for f in Cluster.__dataclass_fields__} - {"folds_found", "mean_uncertainty"}
    assert set(dataclasses.replace(result.clusters[0], folds_found=3).to_json()) - set(data) == {"folds_found"}
    assert isinstance(data["peak_ras"], list) and isinstance(data["centroid_ras"], list)


def test_26_connectivity_joins_corner_neighbours():
    heat = np.zeros((6, 6, 6), np.float32)
    heat[1, 1, 1] = heat[2, 2, 2] = 0.9
    result = find_clusters(heat, np.eye(4), min_size_mm3=0.0)
    assert len(result.clusters) == 1 and result.clusters[0].voxels == 2


def test_ras_centroid_and_peak_on_oblique_lps_grid():
    shape = (40, 36, 24)
    affine = centred_affine((1.0, 1.2, 1.3), shape, centre_world=(5.0, -3.0, 10.0), angles_deg=(15, -10, 20), lps=True)
    world = world_coords(affine, shape)
    blob_centre = np.array([14.0, 2.0, 12.0])
    blob = ellipsoid_mask(affine, shape, blob_centre, (4.0, 4.0, 4.0))
    heat = np.where(blob, 0.7, 0.0).astype(np.float32)
    peak_voxel = tuple(np.argwhere(blob)[len(np.argwhere(blob)) // 2])
    heat[peak_voxel] = 0.9
    result = find_clusters(heat, affine, min_size_mm3=0.0)
    (cluster,) = result.clusters
    expected_centroid = world[blob].mean(axis=0)  # computed here, independently of the engine
    assert cluster.centroid_ras == pytest.approx(tuple(expected_centroid), abs=1e-6)
    assert np.linalg.norm(expected_centroid - blob_centre) < 1.0  # the sampled sphere's centre
    assert cluster.peak_ras == pytest.approx(tuple(world[peak_voxel]), abs=1e-6)
    assert cluster.volume_mm3 == pytest.approx(blob.sum() * 1.0 * 1.2 * 1.3, rel=1e-6)


@pytest.mark.parametrize("lps", [False, True])
def test_hemisphere_from_head_midline(lps):
    shape = (64, 44, 30)
    head_centre = (6.0, 4.0, -3.0)  # off the scanner's origin and the grid's centre
    affine = centred_affine((1.0, 1.0, 1.3), shape, centre_world=(0.0, 0.0, 0.0), lps=lps)
    image = head_phantom(affine, shape, centre_world=head_centre, radii_mm=(18.0, 16.0, 12.0), seed=1)
    heat = np.zeros(shape, np.float32)
    right = ellipsoid_mask(affine, shape, (head_centre[0] + 9.0, 4.0, -3.0), (3.0, 3.0, 3.0))
    left = ellipsoid_mask(affine, shape, (head_centre[0] - 4.0, 4.0, -3.0), (3.5, 3.5, 3.5))
    heat[right] = 0.9
    heat[left] = 0.8
    # x = 6 - 4 = 2 > 0: right of the scanner's origin, but left of this head's midline
    result = find_clusters(heat, affine, min_size_mm3=0.0, image=image)
    assert result.midline_x == pytest.approx(head_centre[0], abs=1.0)
    assert [c.hemisphere for c in result.clusters] == ["right", "left"]
    assert result.clusters[1].centroid_ras[0] > 0.0


def test_map_is_restricted_to_the_head():
    shape = (30, 30, 20)
    affine = np.eye(4)
    head = np.zeros(shape, bool)
    head[5:25, 5:25, 3:17] = True
    heat = np.full(shape, 0.9, np.float32)  # a band everywhere, also outside the head
    result = find_clusters(heat, affine, head_mask=head, min_size_mm3=0.0)
    assert len(result.clusters) == 1
    assert result.clusters[0].voxels == int(head.sum())
    assert not np.any(result.labels[~head])


def test_no_voxel_above_threshold_is_an_empty_set():
    result = find_clusters(np.zeros((5, 5, 5), np.float32), np.eye(4))
    assert result.clusters == [] and not result.labels.any()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"threshold": 1.5}, "outside \\[0, 1\\]"), ({"threshold": -0.1}, "outside"),
     ({"threshold": float("nan")}, "outside"), ({"min_size_mm3": -1.0}, "negative")],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(FCDInputError, match=message):
        find_clusters(np.zeros((5, 5, 5), np.float32), np.eye(4), **kwargs)


def test_bad_map_and_mask():
    with pytest.raises(FCDInputError, match="3D"):
        find_clusters(np.zeros((5, 5), np.float32), np.eye(4))
    with pytest.raises(FCDInputError, match="NaN"):
        find_clusters(np.full((5, 5, 5), np.nan, np.float32), np.eye(4))
    with pytest.raises(FCDInputError, match="head mask"):
        find_clusters(np.zeros((5, 5, 5), np.float32), np.eye(4), head_mask=np.ones((4, 5, 5), bool))


def test_tied_maxima_give_the_first_peak_voxel_in_c_order():
    # A plateau of equal maxima: the documented rule is the first voxel in C order.
    # scipy's maximum_position returns whichever its unstable sort puts last (on this map
    # it is not the first one), which the engine used before.
    heat = np.zeros((12, 12, 12), np.float32)
    heat[2:9, 3:9, 4:10] = 0.6
    plateau = [(3, 7, 5), (5, 4, 8), (8, 8, 4), (4, 5, 6)]
    for voxel in plateau:
        heat[voxel] = 0.9
    (cluster,) = find_clusters(heat, np.eye(4), min_size_mm3=0.0).clusters
    assert cluster.peak_ras == pytest.approx(tuple(float(v) for v in min(plateau)))
