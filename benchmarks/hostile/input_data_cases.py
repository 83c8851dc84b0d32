"""Scans, cohorts and runs that are not what the model expects: warnings, OOD flags, clear refusals.

A head larger than the field of view (a warning), scans the out-of-distribution check must
flag (noise, a cropped head, CT-like intensities, 10 mm voxels) and one it must not (a
cohort subject's FLAIR), training refused on a truncated FLAIR and then run once it is fixed,
``fcd evaluate`` with a fold's bundle missing, ROI and brain-mask messages, and two affines
of one matrix 6e-8 apart that must give the same probability.

Example:
    >>> data_cases(work, setup(work))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from FCDDetectLib.io.output_set import read_output_set

from hostile.harness import detect_args, fcd, leftovers, record
from Testing.builders.hostile_fixtures import head, save_nifti
from Testing.builders.train_fixtures import train_args


def data_cases(work: Path, ctx: dict) -> None:
    # warnings: a head larger than the model field of view
    big = save_nifti(work / "big.nii.gz", head((40, 44, 36)))
    out = work / "out-big"
    done = fcd(detect_args(ctx["bundle"], big, out))
    stored = read_output_set(out) if out.exists() else {}
    record("head larger than the field of view", done, 0,
           any("field of view" in w for w in stored.get("warnings", [])) and "warning: " in done.stderr,
           leftovers(out))
    # out of distribution
    noise = work / "noise.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((5, 5, 5)).astype(np.float32), np.eye(4)), noise)
    cropped = save_nifti(work / "cropped.nii.gz", head((30, 34, 30), seed=4)[:, :, :13])
    ct = save_nifti(work / "ct.nii.gz", head((30, 34, 30), seed=5, level=1040.0, background=-1000.0))
    coarse = save_nifti(work / "coarse.nii.gz", head((30, 34, 30), seed=6), voxel=10.0)
    for label, image, expected in (("noise 5x5x5", noise, True), ("cropped head", cropped, True),
                                   ("CT-like intensities", ct, True), ("10 mm voxels", coarse, True),
                                   ("a cohort subject's FLAIR", ctx["training_like"], False)):
        out = work / f"out-ood-{image.stem}"
        done = fcd(detect_args(ctx["bundle"], image, out))
        stored = read_output_set(out) if (out / "result.json").exists() else {}
        record(f"OOD: {label}", done, 0 if expected is not None else None,
               stored.get("out_of_distribution") is expected, leftovers(out))
    # refused training writes nothing; the fixed dataset then trains
    cohort = work / "cohort-bad"
    shutil.copytree(ctx["cohort"], cohort)
    flair = next((cohort / "sub-00003" / "anat").glob("*_FLAIR.nii.gz"))
    good = flair.read_bytes()
    flair.write_bytes(good[: len(good) // 2])
    out = work / "run-bad"
    args = train_args(cohort, out, "--fold", "0", "--widen-factor", "0.25", epochs=1)
    done = fcd(args)
    record("train with a truncated FLAIR", done, 2, not out.exists(), [])
    flair.write_bytes(good)
    done = fcd(args)
    record("train again once the FLAIR is fixed", done, 0, done.returncode == 0, leftovers(out))
    # evaluate with a missing fold bundle
    run = work / "run-missing"
    shutil.copytree(ctx["run"], run)
    shutil.rmtree(run / "fold-1" / "model.fcdbundle")
    done = fcd(["evaluate", "--run", str(run), "--device", "cpu"])
    record("evaluate with fold-1 bundle missing", done, 2,
           "fold-1" in done.stderr and not (run / "evaluation").exists(), leftovers(run))
    # messages
    roi = save_nifti(work / "roi-03.nii.gz", np.full((30, 34, 30), 0.3, np.float32))
    done = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], work / "out-roi", "--roi", str(roi)))
    record("ROI of 0.3-valued floats", done, 2, "> 0.5" in done.stderr and not (work / "out-roi").exists(), [])
    blob = np.zeros((30, 34, 30), np.float32)
    blob[12:18, 14:20, 12:18] = 1
    good_roi = save_nifti(work / "roi.nii.gz", blob)
    empty = save_nifti(work / "empty-mask.nii.gz", np.zeros((30, 34, 30), np.float32))
    done = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], work / "out-mask", "--roi", str(good_roi),
                           "--brain-mask", str(empty)))
    record("empty brain mask", done, 2, "empty-mask.nii.gz: brain mask is empty" in done.stderr, [])
    # rounding noise between two affines of one matrix
    # 130 mm on the 4 mm grid is 33.5 voxels: a rounding half (exact: 34, minus 6e-8: 33). With an odd
    # window (23 voxels) and a head reaching both ends, that moved the window by one voxel.
    volume = head((131, 40, 40), seed=7)
    volume[:, 16:24, 16:24] = 100.0
    exact = work / "exact.nii.gz"
    noisy = work / "noisy.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), exact)
    matrix = np.eye(4)
    matrix[:3, :3] *= 1 - 6e-8
    nib.save(nib.Nifti1Image(volume, matrix), noisy)
    odd = work / "odd-window.fcdbundle"
    shutil.copytree(ctx["bundle"], odd)
    # an edited bundle.json: recorded as a bundle without a content checksum (unverified), as before issue 25
    (odd / "bundle.json").write_text(json.dumps({**source_meta(ctx), "target_shape": [23, 28, 24],
                                                 "content_sha256": None, "weights_sha256": None}))
    probabilities = []
    for image in (exact, noisy):
        out = work / f"out-{image.stem}"
        done = fcd(detect_args(odd, image, out))
        probabilities.append(read_output_set(out)["probability"] if done.returncode == 0 else None)
    # the interpolation weights move by ~1e-7; a flipped grid size moves p by 1e-2 and more
    same = None not in probabilities and abs(probabilities[0] - probabilities[1]) < 1e-4
    record("affine noise 6e-8 (grid size)", done, 0, same, [],
           first=f"p {probabilities[0]} vs {probabilities[1]}")


def source_meta(ctx: dict) -> dict:
    return json.loads((ctx["bundle"] / "bundle.json").read_text(encoding="utf-8"))
