"""Synthetic cohort: layout, determinism, lesion signs, geometry, protocols, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import load_image, load_mask
from FCDTrainLib.data.dataset_loader import load_dataset
from FCDTrainLib.data.records import FLAG_2D_FLAIR
from FCDTrainLib.data.synth.contrast import BASE, intensity_map
from FCDTrainLib.data.synth.deform import _template_coords, random_deformation
from FCDTrainLib.data.synth.lesion import core_gain, make_lesion
from FCDTrainLib.data.synth.protocols import PROTOCOLS
from FCDTrainLib.data.synth.template import load_template
from FCDTrainLib.data.synth.write_cohort import synth_cohort
from scipy import ndimage

from Testing.builders.ds004199_replica import small_cohort

NAME = re.compile(r"^sub-\d{5}/anat/sub-\d{5}_acq-[A-Za-z0-9]+_(T1w|FLAIR)(_roi)?\.(nii\.gz|json)$")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return small_cohort(tmp_path_factory.mktemp("synth") / "cohort", n_subjects=6, seed=4, protocol_mix=0.5, overlays=2)


def test_layout_matches_ds004199(cohort):
    files = sorted(str(p.relative_to(cohort)) for p in cohort.rglob("sub-*/anat/*"))
    assert files and all(NAME.match(f) for f in files)
    assert (cohort / "participants.tsv").read_text(encoding="utf-8").splitlines()[0].startswith("participant_id\tgroup\tsex")
    description = json.loads((cohort / "dataset_description.json").read_text(encoding="utf-8"))
    assert description["BIDSVersion"] and "seed=4" in description["GeneratedBy"][0]["Description"]
    dataset = load_dataset(cohort)
    assert len(dataset.subjects) == 6 and sum(s.label for s in dataset.subjects) == 3
    for subject in dataset.subjects:
        assert (subject.roi is not None) == (subject.label == 1)
        sidecar = json.loads(subject.images["flair"].with_name(subject.images["flair"].name[:-7] + ".json").read_text(encoding="utf-8"))
        assert sidecar["MRAcquisitionType"] in ("2D", "3D")
        if subject.roi is not None:
            roi, flair = load_mask(subject.roi), load_image(subject.images["flair"])
            assert roi.array.shape == flair.array.shape and np.allclose(roi.affine, flair.affine)
            assert roi.array.any()
    assert len(list((cohort / "overlays").glob("*.png"))) == 2


def test_same_seed_same_files(tmp_path):
    a = small_cohort(tmp_path / "a", n_subjects=2, seed=9)
    b = small_cohort(tmp_path / "b", n_subjects=2, seed=9)
    c = small_cohort(tmp_path / "c", n_subjects=2, seed=10)
    assert (a / "participants.tsv").read_text(encoding="utf-8") == (b / "participants.tsv").read_text(encoding="utf-8")
    for path in sorted(a.rglob("*.nii.gz")):
        left, right = nib.load(str(path)), nib.load(str(b / path.relative_to(a)))
        assert np.array_equal(np.asarray(left.dataobj), np.asarray(right.dataobj))
        assert np.array_equal(left.affine, right.affine)
    first = sorted(a.rglob("*_FLAIR.nii.gz"))[0]
    other = c / first.relative_to(a)
    assert not other.exists() or not np.array_equal(np.asarray(nib.load(str(first)).dataobj),
                                                    np.asarray(nib.load(str(other)).dataobj))


def test_contrasts_and_head(cohort):
    """Tissue means in a real output image: T1 WM > GM > CSF, FLAIR GM > WM > CSF (through the template)."""
    template = load_template(2)
    tissues = {"gm": template.gm, "wm": template.wm, "csf": template.csf, "skull": template.skull, "scalp": template.scalp}
    t1 = intensity_map(tissues, BASE["t1"])
    flair = intensity_map(tissues, BASE["flair"])
    means = {name: (t1[m].mean(), flair[m].mean()) for name, m in
             (("wm", template.wm > 0.9), ("gm", template.gm > 0.9), ("csf", template.csf > 0.9))}
    assert means["wm"][0] > means["gm"][0] > means["csf"][0]
    assert means["gm"][1] > means["wm"][1] > means["csf"][1]
    image = load_image(load_dataset(cohort).subjects[0].images["t1"])
    assert image.array.min() >= 0 and np.percentile(image.array, 99) > 500  # int16 scanner-like range


def _lesion(seed: int, subtlety: float):
    template = load_template(2)
    return template, make_lesion(np.random.default_rng(seed), template, subtlety)


@pytest.mark.parametrize("seed", [0, 2])  # cortical sites (seed 3 lands in the claustrum's mixed tissue)
def test_lesion_signs(seed):
    template, lesion = _lesion(seed, 0.0)
    core = lesion.roi > 0.5
    volume_cm3 = core.sum() * 8 / 1000
    assert 0.2 < volume_cm3 < 8
    assert template.gm[core].mean() > 0.15 and template.wm[core].mean() > 0.15  # on the grey/white boundary
    # Thickening: more grey matter inside the lesion, taken from white matter.
    assert lesion.gm[core].sum() > 1.1 * template.gm[core].sum()
    assert lesion.wm[core].sum() < template.wm[core].sum()
    # Blurring: the T1 grey/white gradient inside the lesion drops.
    tissues = {"gm": template.gm, "wm": template.wm, "csf": template.csf, "skull": template.skull, "scalp": template.scalp}
    before = intensity_map(tissues, BASE["t1"])
    after = intensity_map({**tissues, "gm": lesion.gm, "wm": lesion.wm}, BASE["t1"], lesion.t1_add)
    blurred = intensity_map({**tissues, "gm": lesion.gm, "wm": lesion.wm}, BASE["t1"])  # tissue maps only
    junction = core & (template.gm > 0.25) & (template.wm > 0.25)
    gradient = [ndimage.gaussian_gradient_magnitude(v, 0.5)[junction].mean() for v in (before, blurred)]
    assert gradient[1] < 0.8 * gradient[0]
    # Subcortical FLAIR hyperintensity and T1 hypointensity in the lesion's white matter.
    white = core & (template.wm > 0.5)
    assert white.any()
    flair_before = intensity_map(tissues, BASE["flair"])
    flair_after = intensity_map({**tissues, "gm": lesion.gm, "wm": lesion.wm}, BASE["flair"], lesion.flair_add)
    assert flair_after[white].mean() > 1.15 * flair_before[white].mean()
    assert after[white].mean() < before[white].mean()
    outside = ~ndimage.binary_dilation(lesion.roi > 0.05, iterations=3)
    assert lesion.flair_add[outside].max() < 0.01  # under 1% of WM, below the scanner noise (1.5-3.5%)


def test_subtlety_weakens_lesion():
    template, obvious = _lesion(5, 0.0)
    _, subtle = _lesion(5, 1.0)
    assert subtle.info["centre_mm"] == obvious.info["centre_mm"]
    assert subtle.flair_add.sum() < 0.4 * obvious.flair_add.sum()
    assert (subtle.roi > 0.5).sum() < (obvious.roi > 0.5).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conspicuous_lesions_have_a_bright_subcortical_core(seed):
    assert (core_gain(0.0), core_gain(0.3), core_gain(0.5), core_gain(1.0)) == pytest.approx((2.0, 0.8, 0.0, 0.0))
    template, obvious = _lesion(seed, 0.0)
    _, no_core = _lesion(seed, 0.6)
    tissues = {"gm": template.gm, "wm": template.wm, "csf": template.csf, "skull": template.skull, "scalp": template.scalp}
    deep_white = (obvious.roi > 0.5) & (template.wm > 0.7)  # white matter below the cortex
    assert deep_white.sum() * 8 > 500  # at least 0.5 cm3 of it inside the ROI
    flair = intensity_map({**tissues, "gm": obvious.gm, "wm": obvious.wm}, BASE["flair"], obvious.flair_add)
    # far brighter than cortex (GM 0.78): about twice as bright at subtlety 0
    assert np.percentile(flair[deep_white], 75) > 1.6 * BASE["flair"]["gm"]
    assert obvious.flair_add[deep_white].sum() > 3 * no_core.flair_add[deep_white].sum()
    # the core lies under the lesion: its FLAIR-weighted centre is in white matter, off the boundary
    weights = obvious.flair_add * (template.wm > 0.5)
    points = template.world(np.argwhere(weights > 0).astype(float))
    centroid = (points * weights[weights > 0][:, None]).sum(0) / weights[weights > 0].sum()
    probe = np.round(np.linalg.solve(template.affine[:3, :3], centroid - template.affine[:3, 3])).astype(int)
    assert template.wm[tuple(probe)] > 0.7
    assert np.linalg.norm(centroid - np.array(obvious.info["centre_mm"])) > 1.0


def test_transmantle_reaches_toward_ventricle():
    template = load_template(2)
    ventricles = template.world(template.ventricle_vox.astype(float))
    seen = 0
    for seed in range(12):
        lesion = make_lesion(np.random.default_rng(seed), template, 0.0)
        if not lesion.info["transmantle"]:
            continue
        seen += 1
        centre = np.array(lesion.info["centre_mm"])
        roi = template.world(np.argwhere(lesion.roi > 0.5).astype(float))
        nearest = np.sqrt(((ventricles - centre) ** 2).sum(axis=1)).min()
        reach = np.sqrt(((roi[:, None, :] - ventricles[None]) ** 2).sum(axis=2)).min()
        assert reach < 0.5 * nearest  # the band covers more than half the way to the ventricle
    assert seen >= 3


def test_fast_coordinates_match_exact_mapping():
    """The node-interpolated template coordinates agree with the exact deformation (< 0.3 mm)."""
    template = load_template(2)
    rng = np.random.default_rng(0)
    warp = random_deformation(rng, template.head_box_mm)
    affine = np.array([[-2.8, 0.2, 0, 90], [0.1, 2.7, 0.3, -120], [0, -0.4, 3.9, -70], [0, 0, 0, 1]])
    shape = (30, 40, 25)
    to_template = np.linalg.inv(template.affine)
    fast = _template_coords(warp, to_template, affine, shape, 0, shape[0])
    vox = np.argwhere(np.ones(shape, bool))[rng.choice(np.prod(shape), 500, replace=False)]
    exact = warp.apply(vox @ affine[:3, :3].T + affine[:3, 3]) @ to_template[:3, :3].T + to_template[:3, 3]
    assert np.abs(fast[:, vox[:, 0], vox[:, 1], vox[:, 2]].T - exact).max() < 0.15  # template voxels (2 mm)


def test_protocols_geometry(tmp_path):
    root = small_cohort(tmp_path / "mix", n_subjects=8, seed=1, protocol_mix=1.0)
    dataset = load_dataset(root)
    assert {s.protocol for s in dataset.subjects} <= {"sag111+tse3dvfl", "sag111+tra4mm", "sag111+cor4mm"}
    flagged = [s for s in dataset.subjects if FLAG_2D_FLAIR in s.flags]
    assert flagged and all(s.acquisitions["flair"] in ("tra4mm", "cor4mm") for s in flagged)
    for subject in dataset.subjects:
        t1 = nib.load(str(subject.images["t1"]))
        assert nib.aff2axcodes(t1.affine) == ("A", "S", "R")  # sagittal storage: readers must use the affine
        zooms = sorted(nib.load(str(subject.images["flair"])).header.get_zooms())
        assert (zooms[-1] / zooms[0] > 1.8) == (subject in flagged)


def test_default_mix_balanced_and_confound_option(tmp_path):
    assert PROTOCOLS["new"].flair.acq == "T2sel"
    mixed = load_dataset(small_cohort(tmp_path / "m", n_subjects=8, seed=3))
    per_label = {label: sum(s.protocol != "iso08+T2sel" for s in mixed.subjects if s.label == label) for label in (0, 1)}
    assert per_label == {0: 1, 1: 1}  # 0.25 of each class on an older protocol
    confounded = load_dataset(small_cohort(tmp_path / "c", n_subjects=8, seed=3, confound=True))
    assert all(s.protocol == "iso08+T2sel" for s in confounded.subjects if s.label == 0)
    assert sum(s.protocol != "iso08+T2sel" for s in confounded.subjects if s.label == 1) == 2


def test_cli_synth_json_and_overlay(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--subjects", "3", "--size", "tiny", "--seed", "2", "--quiet",
                 "--overlays", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] + summary["controls"] == 3 and len(summary["subjects"]) == 3
    png = mpimg.imread(summary["overlays"][0])
    assert png.ndim == 3 and png.shape[0] > 300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--subjects", "1"], "minimum --subjects 2"),
        (["--subjects", "4", "--fcd-fraction", "1.0"], "--fcd-fraction 1.0 must be between 0 and 1"),
        (["--subjects", "4", "--subtlety", "2"], "--subtlety 2.0 must be between 0 and 1"),
        (["--subjects", "4", "--protocol-mix", "-0.1"], "--protocol-mix -0.1 must be between 0 and 1"),
    ],
)
def test_cli_synth_bad_options(tmp_path, capsys, argv, message):
    out = tmp_path / "bad"
    assert main(["synth", "--out", str(out), "--size", "tiny", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: synth:") and message in err[0]
    assert not out.exists()


def test_existing_output_refused_and_nothing_half_written(tmp_path, monkeypatch):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(FCDInputError, match=r"busy: already exists and is not an empty folder"):
        synth_cohort(busy, 2, size="tiny")
    from FCDTrainLib.data.synth import write_cohort as cohort_module

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    real = cohort_module.make_subject
    monkeypatch.setattr(cohort_module, "make_subject", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        synth_cohort(tmp_path / "partial", 3, size="tiny", overlays=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_a_folder_filled_by_another_writer_meanwhile_is_one_error_and_nothing_of_ours_is_kept(tmp_path):
    # Two `fcd demo` runs into one folder: the other process's cohort lands while this one
    # is still writing (done here by the progress callback, with a real file in the folder).
    target = tmp_path / "cohort"

    def other_writer(done, total):
        if done == 1:
            target.mkdir()
            (target / "participants.tsv").write_text("participant_id\n")

    with pytest.raises(FCDInputError, match="filled by another process"):
        synth_cohort(target, 2, seed=0, size="small", overlays=0, progress=other_writer)
    assert [p.name for p in target.iterdir()] == ["participants.tsv"]  # the other writer's, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]  # no temporary folder left
