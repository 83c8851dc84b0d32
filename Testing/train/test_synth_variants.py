"""Issue 26: fcd synth --randomize, the benchmark-family options, --rescans, the disk-space check."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.cohort.discovery import discover_subjects
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import load_image, load_mask
from FCDTrainLib.data.dataset_loader import load_dataset
from FCDTrainLib.data.synth.lesion import SIGNS, make_lesion
from FCDTrainLib.data.synth.randomize import random_contrasts, random_signs, random_style
from FCDTrainLib.data.synth.scan_files import estimate_bytes
from FCDTrainLib.data.synth.template import load_template
from FCDTrainLib.data.synth.variants import SynthVariant

from Testing.builders.ds004199_replica import small_cohort


def test_random_contrasts_keep_the_physiological_order_and_vary():
    drawn = [random_contrasts(np.random.default_rng(seed)) for seed in range(200)]
    for c in drawn:
        assert c["t1"]["wm"] > c["t1"]["gm"] > c["t1"]["csf"] > 0
        assert c["flair"]["gm"] > c["flair"]["wm"] > c["flair"]["csf"] > 0
    ratios = [c["t1"]["gm"] / c["t1"]["wm"] for c in drawn]
    assert max(ratios) - min(ratios) > 0.3  # far wider than the standard cohort's x0.94-1.06 jitter


def test_random_signs_any_combination_but_never_none():
    drawn = [random_signs(np.random.default_rng(seed)) for seed in range(300)]
    assert all(any(s[name] > 0 for name in SIGNS) for s in drawn)
    for name in SIGNS:  # every sign is sometimes absent, sometimes present
        assert any(s[name] == 0 for s in drawn) and any(s[name] >= 0.5 for s in drawn)


def test_lesion_signs_switch_their_changes_off():
    template = load_template(4)
    full = make_lesion(np.random.default_rng(0), template, 0.0, {n: 1.0 for n in SIGNS})
    no_flair = make_lesion(np.random.default_rng(0), template, 0.0, {"blur": 1.0, "thickening": 1.0})
    only_flair = make_lesion(np.random.default_rng(0), template, 0.0, {"flair": 1.0})
    assert full.info["centre_mm"] == no_flair.info["centre_mm"] == only_flair.info["centre_mm"]
    assert full.flair_add.sum() > 0 and no_flair.flair_add.sum() == 0 and not no_flair.info["transmantle"]
    assert np.array_equal(only_flair.gm, template.gm) and np.array_equal(only_flair.wm, template.wm)
    assert only_flair.info["signs"]["flair"] == 1.0 and only_flair.info["signs"]["blur"] == 0.0
    assert (no_flair.roi > 0.5).sum() > 0  # the lesion's extent is the ROI whatever its signs


def test_random_styles_cover_2d_planes_storage_and_brain_extraction():
    styles = [random_style(np.random.default_rng(seed), "small") for seed in range(120)]
    assert {s.flair.mr_type for s in styles} == {"2D", "3D"}
    assert {s.flair.orientation for s in styles if s.flair.mr_type == "2D"} == {"LAS", "LSA", "ASR"}  # tra, cor, sag
    assert all(3.0 <= max(s.flair.zooms["small"]) <= 5.0 for s in styles if s.flair.mr_type == "2D")
    assert {s.storage for s in styles} == {"int16", "12bit", "unit"}
    assert 0.15 < np.mean([not s.skull for s in styles]) < 0.45
    assert max(max(s.tilt_deg.values()) for s in styles) > 15


@pytest.fixture(scope="module")
def randomized(tmp_path_factory):
    return small_cohort(tmp_path_factory.mktemp("rand") / "cohort", n_subjects=8, seed=5, size="tiny",
                        variant=SynthVariant(randomize=True, rescans=2))


def test_randomized_cohort_with_rescans_layout_and_loaders(randomized):
    sessions = sorted(p.relative_to(randomized).as_posix() for p in randomized.glob("sub-*/ses-*"))
    assert len(sessions) == 16 and sessions[0] == "sub-00001/ses-1" and not list(randomized.glob("sub-*/anat"))
    dataset = load_dataset(randomized)
    assert len(dataset.subjects) == 8 and any("several sessions" in w for w in dataset.warnings)
    for subject in dataset.subjects:  # the trainer reads one session per subject, all its files from it
        assert subject.info["session"] == "1" and subject.info["sessions"] == "1,2"
        assert all("/ses-1/" in str(p) for p in subject.images.values())
        assert subject.roi is None or "/ses-1/" in str(subject.roi)
    entries = discover_subjects(randomized, ["t1", "flair"])  # the engine detects every session
    assert [e.subject_id for e in entries[:2]] == ["sub-00001_ses-1", "sub-00001_ses-2"]
    assert all(e.error is None and e.info["session"] in ("1", "2") for e in entries)
    assert all(f"ses-{e.info['session']}" in str(e.images[0]) for e in entries)


def test_randomized_scans_differ_in_grid_storage_and_head(randomized):
    lesions = json.loads((randomized / "synth_lesions.json").read_text(encoding="utf-8"))
    scans = [info["sessions"][0]["scans"] for info in lesions.values()]
    assert len({(s["t1"]["orientation"], s["flair"]["orientation"]) for s in scans}) > 2
    dtypes = set()
    for subject in load_dataset(randomized).subjects:
        for path in subject.images.values():
            header = nib.load(str(path))
            dtypes.add(str(header.get_data_dtype()))
    assert dtypes <= {"int16", "float32"}
    for sid, info in lesions.items():
        if not info["sessions"][0]["scans"]["skull"]:  # brain-extracted: one constant background (0 + offset)
            image = load_image(next((randomized / sid / "ses-1" / "anat").glob("*_T1w.nii.gz")))
            assert (image.array == image.array.min()).mean() > 0.3
    patients = [info for info in lesions.values() if "signs" in info]
    assert patients and all(info["signs"] == info["sessions"][1]["signs"] for info in patients)


def test_rescans_same_lesion_new_scan(randomized):
    """Two sessions of one patient: the same lesion in world space, another grid and other intensities."""
    subject = next(s for s in load_dataset(randomized).subjects if s.label == 1)
    folder = randomized / subject.subject_id
    rois = [load_mask(next((folder / f"ses-{k}" / "anat").glob("*_roi.nii.gz"))) for k in (1, 2)]
    flairs = [load_image(next((folder / f"ses-{k}" / "anat").glob("*_FLAIR.nii.gz"))) for k in (1, 2)]
    assert not np.allclose(flairs[0].affine, flairs[1].affine)  # a new position
    centres = [r.affine[:3, :3] @ np.argwhere(r.array).mean(axis=0) + r.affine[:3, 3] for r in rois]
    assert np.linalg.norm(centres[0] - centres[1]) < 4.0  # the same lesion (6 mm voxels, measured < 2 mm)


def test_family_options_change_only_the_scan(tmp_path):
    standard = load_dataset(small_cohort(tmp_path / "standard", n_subjects=2, seed=3))
    stripped = small_cohort(tmp_path / "stripped", n_subjects=2, seed=3,
                            variant=SynthVariant(brain_extracted=True, brain_mask=True))
    thick = load_dataset(small_cohort(tmp_path / "thick", n_subjects=2, seed=3, variant=SynthVariant(flair_2d=8.0)))
    unit = load_dataset(small_cohort(tmp_path / "unit", n_subjects=2, seed=3, variant=SynthVariant(rescale="unit")))
    bits = load_dataset(small_cohort(tmp_path / "bits", n_subjects=2, seed=3, variant=SynthVariant(rescale="12bit")))
    apart = load_dataset(small_cohort(tmp_path / "apart", n_subjects=2, seed=3, variant=SynthVariant(separate_grids=True)))
    first = standard.subjects[0]
    assert [s.label for s in thick.subjects] == [s.label for s in standard.subjects]  # same seed, same people
    t1 = load_image(first.images["t1"])
    t1_stripped = load_image(load_dataset(stripped).subjects[0].images["t1"])
    assert (t1.array == 0).mean() < 0.05 < 0.3 < (t1_stripped.array == 0).mean()
    masks = sorted((stripped / "derivatives" / "synth-brainmask").rglob("*_desc-brain_mask.nii.gz"))
    assert len(masks) == 4 and (stripped / "derivatives" / "synth-brainmask" / "dataset_description.json").is_file()
    assert max(nib.load(str(thick.subjects[0].images["flair"])).header.get_zooms()) == pytest.approx(8.0)
    unit_flair = nib.load(str(unit.subjects[0].images["flair"]))
    assert unit_flair.get_data_dtype() == np.float32 and float(unit_flair.get_fdata().max()) == pytest.approx(1.0)
    bits_flair = np.asarray(nib.load(str(bits.subjects[0].images["flair"])).dataobj)
    assert bits_flair.max() <= 4095 and np.array_equal(bits_flair, np.round(bits_flair))
    t1_affine, flair_affine = (nib.load(str(apart.subjects[0].images[m])).affine for m in ("t1", "flair"))
    assert nib.aff2axcodes(t1_affine) == ("A", "S", "R") and nib.aff2axcodes(flair_affine) == ("R", "A", "S")
    directions = flair_affine[:3, :3] / np.linalg.norm(flair_affine[:3, :3], axis=0)
    tilt = np.degrees(np.arccos(np.abs(directions).max(axis=0).min()))
    assert tilt > 3.0  # oblique beyond the standard cohort's 3 degrees (up to 20 per angle; 9.6 for this seed)
    assert apart.subjects[0].protocol != first.protocol


@pytest.mark.parametrize("rescans", ["0", "11"])
def test_cli_rescans_out_of_range(tmp_path, capsys, rescans):
    out = tmp_path / "bad"
    assert main(["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--rescans", rescans]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: synth: --rescans {rescans} must be between 1 and 10"]
    assert not out.exists()


def test_cli_refuses_a_cohort_larger_than_the_disk_before_writing(tmp_path, capsys):
    out = tmp_path / "huge"
    assert main(["synth", "--out", str(out), "--subjects", "2000000", "--size", "full", "--randomize", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: synth:") and "is free on" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even a temporary folder


def test_size_estimate_is_an_upper_bound_of_what_is_written(tmp_path):
    """The estimate must not refuse cohorts that fit: it exceeds the bytes written, by at most 6x
    (measured on small cohorts: randomised 1.5x, standard 1.15x)."""
    for variant in (SynthVariant(), SynthVariant(randomize=True, rescans=2)):
        root = small_cohort(tmp_path / f"c{variant.n_sessions}", n_subjects=4, seed=1, variant=variant)
        written = sum(p.stat().st_size for p in root.rglob("*.nii.gz"))
        estimate = estimate_bytes(4, "tiny", variant)
        assert written < estimate < 6 * written, (written, estimate)


def test_options_refused_together():
    with pytest.raises(FCDInputError, match="--brain-mask needs --brain-extracted"):
        SynthVariant(brain_mask=True).check()
    with pytest.raises(FCDInputError, match="give it without the family options"):
        SynthVariant(randomize=True, rescale="unit").check()
    with pytest.raises(FCDInputError, match="--flair-2d 20 mm must be between"):
        SynthVariant(flair_2d=20).check()


def test_randomized_same_seed_same_files(tmp_path):
    a, b = (small_cohort(tmp_path / name, n_subjects=3, seed=7, variant=SynthVariant(randomize=True, rescans=2))
            for name in ("a", "b"))
    files = sorted(p.relative_to(a) for p in a.rglob("*.nii.gz"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.nii.gz")) and len(files) >= 12
    for path in files:
        left, right = nib.load(str(a / path)), nib.load(str(b / path))
        assert np.array_equal(np.asarray(left.dataobj), np.asarray(right.dataobj)) and np.array_equal(left.affine, right.affine)
