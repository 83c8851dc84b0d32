"""Probe: the hostile inputs of issue 9 against the real ``fcd`` CLI, each in a subprocess.

Builds its own tiny cohort (ellipsoid heads, 4 mm voxels) and trains a tiny run on it
(ResNet-18 at width 1/4, 2 folds, 2 epochs), then runs every case and prints a table:
case, exit code, first stderr line, traceback yes/no, "nothing written / consistent"
yes/no, leftover temporary files. It includes random SIGKILLs of ``fcd detect`` (each
followed by the consistency check the next reader does) and of ``fcd train`` (each
followed by a resume; the finished run must equal an uninterrupted one).

Issue 25 adds: planted commit journals (confinement), bundles of the same name with other
content, swapped or NaN weights (identity, sanity), the report in the committed set, SIGINT
and SIGTERM at each commit point and at random times, a full disk (a tiny tmpfs where the
probe may mount one, else a file-size limit), NIfTI headers that Slicer reads differently,
spreadsheet manifests, odd subject names, long names, link loops and ``--nt-samples``.
Around every ``fcd`` call it also checks that no file outside the call's output folders
changed (size, modification time, or gone) and that no empty folder was left behind.

Writes ``benchmarks/results-hostile.json``; exits 1 if any case gives a traceback, an
unexpected exit code, a half-written or inconsistent set, a leftover temporary file, a file
changed outside ``--out`` or an empty folder left behind.

Usage:
    python benchmarks/probe_hostile.py [--detect-kills 50] [--train-kills 20] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for part in ("FCDDetect", "FCDTrain", ""):
    if str(ROOT / part) not in sys.path:
        sys.path.insert(0, str(ROOT / part))

from FCDDetectLib.io.output_set import read_output_set  # noqa: E402

from Testing.builders.hostile_fixtures import head, plant_pickle, save_nifti, tiny_bundle  # noqa: E402
from Testing.builders.train_fixtures import train_args, write_cohort  # noqa: E402

TEMP = re.compile(r"(^\.fcd-|\.tmp|^\..+\.\d+\.(tmp|old)-)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "default",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "FCDDetect"), str(ROOT / "FCDTrain"), str(ROOT),
                                      os.environ.get("PYTHONPATH", "")])}
ROWS: list[dict] = []


WORK: list[Path] = []  # the probe's work folder: files outside each call's outputs must not change
WATCH: dict = {"changed": [], "empty": []}  # what the last fcd call changed outside its outputs


def outputs_of(args: list[str]) -> list[Path]:
    """The folders an ``fcd`` call may write: its --out and --dicom-out, evaluate's run, train's run."""
    found = [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a in ("--out", "--dicom-out")]
    if args and args[0] == "evaluate" and "--out" not in args:
        found += [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--run"]
    return found


def snapshot(skip: list[Path]) -> tuple[dict, set]:
    """(files outside ``skip``: path -> (size, mtime_ns); empty folders anywhere) of the work folder."""
    if not WORK:
        return {}, set()
    skipped = set()
    for path in skip:
        try:
            skipped.add(os.path.realpath(path))
        except (OSError, ValueError):
            continue
    files, empty = {}, set()
    for folder, dirs, names in os.walk(WORK[0]):
        inside = os.path.realpath(folder) in skipped or any(os.path.realpath(folder).startswith(s + os.sep)
                                                            for s in skipped)
        if not dirs and not names:
            empty.add(folder)
        if inside:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            files[path] = (stat.st_size, stat.st_mtime_ns)
    return files, empty


def watched(args: list[str], run: Callable[[], subprocess.CompletedProcess]) -> subprocess.CompletedProcess:
    """Run ``run`` and record in WATCH what it changed outside ``outputs_of(args)`` and the empty folders it left."""
    skip = outputs_of([str(a) for a in args])
    files, empty = snapshot(skip)
    done = run()
    after, empty_after = snapshot(skip)
    changed = sorted({p for p in files if after.get(p) != files[p]} | {p for p in after if p not in files})
    WATCH["changed"] = [str(Path(p).relative_to(WORK[0])) for p in changed]
    WATCH["empty"] = [str(Path(p).relative_to(WORK[0])) for p in sorted(empty_after - empty)]
    return done


def fcd(args: list[str], timeout: float = 900, env: dict | None = None, **popen: object) -> subprocess.CompletedProcess:
    return watched(args, lambda: subprocess.run([sys.executable, "-m", "FCDDetectLib.cli", *args],
                                                capture_output=True, text=True, timeout=timeout,
                                                env={**ENV, **(env or {})}, **popen))


def leftovers(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        if folder.exists():
            found += [str(p.relative_to(folder)) for p in folder.rglob("*") if TEMP.search(p.name)]
    return found


def record(case: str, done: subprocess.CompletedProcess | None, expect: int | None, ok: bool,
           left: list[str], code: int | None = None, first: str | None = None, traceback: bool | None = None) -> None:
    stderr = done.stderr if done is not None else ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    code = done.returncode if done is not None else code
    lines = [line for line in lines if not line.lstrip().startswith(("fcd detect:", "SmoothGrad:"))]  # tqdm bars
    row = {
        "case": case, "exit": code, "expected_exit": expect,
        "first_stderr": first if first is not None else (lines[0][:110] if lines else ""),
        "stderr_lines": len(lines), "traceback": bool(traceback) if traceback is not None else "Traceback" in stderr,
        "ok": bool(ok), "leftover": left,
        "changed_outside_out": list(WATCH["changed"]) if done is not None else [],
        "empty_folders": list(WATCH["empty"]) if done is not None else [],
    }
    row["pass"] = (not row["traceback"] and row["ok"] and not left
                   and not row["changed_outside_out"] and not row["empty_folders"]
                   and (expect is None or code == expect)
                   and (expect != 2 or (len(lines) == 1 and lines[0].startswith("error: "))))
    ROWS.append(row)
    mark = "ok " if row["pass"] else "BAD"
    outside = len(row["changed_outside_out"]) + len(row["empty_folders"])
    print(f"{mark} {case[:44]:44} exit {str(code):>4}  tb {'yes' if row['traceback'] else 'no ':3}  "
          f"ok {'yes' if ok else 'no ':3}  left {len(left)}  out/empty {outside}  {row['first_stderr'][:70]}",
          flush=True)


def nothing(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


# ----------------------------------------------------------------------------- set-up


def setup(work: Path) -> dict:
    cohort = write_cohort(work / "cohort", n_fcd=5, n_hc=5)
    run = work / "run"
    args = train_args(cohort, run, "--widen-factor", "0.25", epochs=2)
    started = time.perf_counter()
    done = fcd(args)
    train_seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    bundle = run / "fold-0" / "model.fcdbundle"
    scans = {name: save_nifti(work / f"{name}.nii.gz", head((30, 34, 30), seed=seed))
             for name, seed in (("a", 1), ("b", 2))}
    training_like = next((cohort / "sub-00010" / "anat").glob("*_FLAIR.nii.gz"))
    return {"cohort": cohort, "run": run, "bundle": bundle, "train_args": args, "train_seconds": train_seconds,
            "scans": scans, "training_like": training_like}


def detect_args(bundle: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return ["detect", "--model", str(bundle), "--image", str(image), "--device", "cpu", "--out", str(out), *extra]


# ----------------------------------------------------------------------------- cases


def security_cases(work: Path, ctx: dict) -> None:
    for zip_format in (True, False):
        bundle = tiny_bundle(work / f"planted-{zip_format}.fcdbundle")
        marker = work / f"PWNED-bundle-{zip_format}"
        plant_pickle(bundle / "weights.pt", marker, zip_format=zip_format)
        out = work / f"out-planted-{zip_format}"
        done = fcd(detect_args(bundle, ctx["scans"]["a"], out))
        record(f"bundle weights.pt planted ({'zip' if zip_format else 'raw'})", done, 2,
               not marker.exists() and nothing(out) and "weights_only" not in done.stderr, leftovers(out))
    run = work / "run-planted"
    shutil.copytree(ctx["run"], run)
    for fold in ("fold-1",):
        for name in ("metrics.json", "predictions.csv", "history.json"):
            (run / fold / name).unlink(missing_ok=True)
        shutil.rmtree(run / fold / "model.fcdbundle", ignore_errors=True)
    (run / "summary.json").unlink(missing_ok=True)
    marker = work / "PWNED-checkpoint"
    plant_pickle(run / "fold-1" / "checkpoint.pt", marker)
    args = [run if a == str(ctx["run"]) else a for a in ctx["train_args"]]
    done = fcd([str(a) for a in args])
    record("fold-1/checkpoint.pt planted, resume", done, 2, not marker.exists(), leftovers(run))
    (run / "fold-1" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    done = fcd([str(a) for a in args])
    record("fold-1/checkpoint.pt truncated, resume", done, 0,
           done.returncode == 0 and "warning:" in done.stderr and (run / "fold-1" / "metrics.json").is_file(),
           leftovers(run), first=done.stderr.splitlines()[0][:110] if done.stderr else "")


def fs_cases(work: Path, ctx: dict) -> None:
    afile = work / "a-file"
    afile.write_text("x")
    readonly = Path("/sys/fcd-probe") if os.geteuid() == 0 else work / "ro" / "out"
    if os.geteuid() != 0:
        (work / "ro").mkdir()
        (work / "ro").chmod(0o555)
    holder = work / "holder"
    for name in ("result.json", "metrics.json", "participants.tsv", "config.json"):
        (holder / name).mkdir(parents=True, exist_ok=True)
    commands = {
        "detect": lambda out: detect_args(ctx["bundle"], ctx["scans"]["a"], out),
        "evaluate": lambda out: ["evaluate", "--run", str(ctx["run"]), "--device", "cpu", "--out", str(out)],
        "synth": lambda out: ["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--quiet"],
        "train": lambda out: train_args(ctx["cohort"], out),
    }
    for command, make in commands.items():
        for label, out in (("is a file", afile), ("read-only", readonly), ("holds a folder output", holder)):
            before = sorted(p.name for p in holder.iterdir())
            done = fcd(make(out))
            unchanged = afile.read_text(encoding="utf-8") == "x" and sorted(p.name for p in holder.iterdir()) == before
            record(f"{command} --out {label}", done, 2, unchanged, leftovers(holder))


def bounds_cases(work: Path, ctx: dict) -> None:
    source = json.loads((ctx["bundle"] / "bundle.json").read_text(encoding="utf-8"))
    for label, change in (("target_shape 4000^3", {"target_shape": [4000] * 3}),
                          ("target_shape 400^3", {"target_shape": [400] * 3}),
                          ("target_shape [1,1,1]", {"target_shape": [1, 1, 1]}),
                          ("target_spacing 0.001", {"target_spacing": [0.001] * 3})):
        bundle = work / f"bounds-{label.split()[1].replace('^', '')}.fcdbundle"
        shutil.copytree(ctx["bundle"], bundle)
        (bundle / "bundle.json").write_text(json.dumps({**source, **change}))
        out = work / f"out-{bundle.name}"
        done = fcd(detect_args(bundle, ctx["scans"]["a"], out))
        record(f"bundle {label}", done, 2, nothing(out) and "bundle.json" in done.stderr, leftovers(out))
    for label, extra in (("--shape 4000^3", ["--shape", "4000", "4000", "4000"]),
                         ("--spacing 1e-6", ["--spacing", "1e-6", "1e-6", "1e-6"]),
                         ("--widen-factor 0.01", ["--widen-factor", "0.01"])):
        out = work / f"train-{label.split()[0][2:]}"
        done = fcd([*train_args(ctx["cohort"], out), *extra])
        record(f"train {label}", done, 2, not out.exists(), [])


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


# ----------------------------------------------------------------------------- issue 25 (engine)


def confinement_cases(work: Path, ctx: dict) -> None:
    """A planted commit journal that points outside --out (the issue: it moved a file in, exit 0)."""
    victim = work / "victim"
    victim.mkdir()
    (victim / "data.nii.gz").write_bytes(b"a user's scan")
    (victim / "notes.txt").write_text("keep")
    for label, journal in (
            ("staging ../victim", {"staging": "../victim", "files": ["data.nii.gz"], "remove": []}),
            ("staging absolute", {"staging": str(victim), "files": ["data.nii.gz"], "remove": []}),
            ("remove ../victim/notes.txt", {"staging": ".fcd-staging-1-abcdefgh", "files": [],
                                            "remove": {"../victim/notes.txt": "0" * 64}})):
        out = work / f"out-journal-{len(ROWS)}"
        out.mkdir()
        (out / ".fcd-commit.json").write_text(json.dumps(journal))
        done = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], out))
        record(f"planted journal: {label}", done, 2,
               ".fcd-commit.json" in done.stderr and (victim / "data.nii.gz").is_file()
               and sorted(p.name for p in out.iterdir()) == [".fcd-commit.json"], [])


def _bundle_variant(work: Path, name: str, seed: int, change=None) -> Path:
    """A tiny untrained bundle named "tiny" (every variant shares the name, as runs' bundles do)."""
    import torch
    from FCDDetectLib.networks.bundle import save_bundle
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata
    from FCDDetectLib.networks.resnets import build_resnet

    from Testing.builders.hostile_fixtures import GRID_SHAPE, GRID_SPACING

    torch.manual_seed(seed)
    net = build_resnet(18, 1, widen_factor=0.25)
    if change is not None:
        change(net, torch)
    meta = BundleMetadata(name="tiny", depth=18, geometry="paper", modalities=["flair"],
                          target_spacing=list(GRID_SPACING), target_shape=list(GRID_SHAPE))
    return save_bundle(work / f"{name}.fcdbundle", net, meta)


def identity_cases(work: Path, ctx: dict) -> None:
    """Same-name bundles, swapped weights, NaN weights and outputs, the stale report."""
    first, second = _bundle_variant(work, "same-name-a", 3), _bundle_variant(work, "same-name-b", 4)
    manifest = work / "identity.csv"
    manifest.write_text(f"subject,flair\ns1,{ctx['scans']['a']}\ns2,{ctx['scans']['b']}\n")
    out = work / "out-identity"
    base = ["detect", "--data", str(manifest), "--device", "cpu", "--out", str(out), "--model"]
    runs = [fcd([*base, str(first)]), fcd([*base, str(first)]), fcd([*base, str(second)]),
            fcd([*base, str(second), "--layer", "layer3"])]
    counts = [json.loads(r.stdout) if r.returncode == 0 else {} for r in runs]
    record("resume: another bundle of the same name", runs[2], 0,
           counts[1].get("resumed") == 2 and counts[2].get("done") == 2 and counts[3].get("done") == 2, [],
           first=f"same model: {counts[1].get('resumed')} resumed; same name, other weights: "
                 f"{counts[2].get('done')} recomputed; other --layer: {counts[3].get('done')} recomputed")
    swapped = work / "swapped.fcdbundle"
    shutil.copytree(first, swapped)
    shutil.copy(second / "weights.pt", swapped / "weights.pt")
    out = work / "out-swapped"
    done = fcd(detect_args(swapped, ctx["scans"]["a"], out))
    record("bundle with swapped weights", done, 2, "not the weights this bundle" in done.stderr and nothing(out), [])

    def nan_weight(net, torch):
        with torch.no_grad():
            net.fc.weight[0, 0] = float("nan")

    def negative_variance(net, torch):
        net.bn1.running_var.fill_(-1.0)

    for label, change in (("NaN in fc.weight", nan_weight), ("NaN out (negative BN variance)", negative_variance)):
        broken = _bundle_variant(work, f"broken-{len(ROWS)}", 3, change)
        out = work / f"out-{broken.name}"
        done = fcd(detect_args(broken, ctx["scans"]["a"], out))
        record(f"bundle: {label}", done, 2, nothing(out) and "NaN" in done.stderr, [])
    out = work / "out-report"
    with_report = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], out, "--report"))
    plain = fcd(detect_args(ctx["bundle"], ctx["scans"]["b"], out))
    stale = sorted(p.name for p in out.iterdir() if p.name.startswith("report"))
    record("--report on a, then a plain run on b", plain, 0,
           with_report.returncode == 0 and not stale and read_output_set(out)["inputs"] == [str(ctx["scans"]["b"])],
           leftovers(out), first=f"report files left: {len(stale)}")


def _nifti_variant(path: Path, data: np.ndarray, kind: str) -> Path:
    """The header cases nibabel and SimpleITK (Slicer) read differently, patched as other tools leave them."""
    import struct

    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -np.asarray(data.shape) * 2.0
    image = nib.Nifti1Image(data, affine)
    if kind in ("negative pixdim", "pixdim 0"):
        image.set_sform(None, code=0)
        image.set_qform(affine, code=1)
    elif kind == "qform/sform differ, sform_code 2":
        moved = affine.copy()
        moved[0, 3] += 30.0
        image.set_qform(moved, code=1)
        image.set_sform(affine, code=2)
    elif kind == "voxel 1e17 mm":
        image = nib.Nifti1Image(data, np.diag([1e17, 1e17, 1e17, 1.0]))
    elif kind == "translation 1e17 mm":
        far = affine.copy()
        far[:3, 3] = 1e17
        image = nib.Nifti1Image(data, far)
    nib.save(image, path)
    if kind in ("negative pixdim", "pixdim 0"):
        raw = bytearray(path.read_bytes())
        struct.pack_into("<f", raw, 80, -4.0 if kind == "negative pixdim" else 0.0)
        path.write_bytes(bytes(raw))
    return path


def header_cases(work: Path, ctx: dict) -> None:
    data = head((30, 34, 30), seed=9)
    for kind, words in (("negative pixdim", "mirrors"), ("pixdim 0", "pixdim[1] is 0"),
                        ("qform/sform differ, sform_code 2", "qform and the sform differ"),
                        ("voxel 1e17 mm", "voxel size"), ("translation 1e17 mm", "translation is broken")):
        path = _nifti_variant(work / f"header-{len(ROWS)}.nii", data, kind)
        out = work / f"out-header-{len(ROWS)}"
        done = fcd(detect_args(ctx["bundle"], path, out))
        record(f"NIfTI header: {kind}", done, 2, words in done.stderr and nothing(out), [])


def odd_input_cases(work: Path, ctx: dict) -> None:
    scans = work / "odd-scans"
    scans.mkdir()
    for name in ("p1", "p2"):
        shutil.copy(ctx["scans"]["a" if name == "p1" else "b"], scans / f"{name}.nii.gz")
    shutil.copy(ctx["scans"]["a"], scans / "odd name (copy).nii.gz")
    a, b = ctx["scans"]["a"], ctx["scans"]["b"]
    tables = {
        "trailing commas": (f"subject,flair,\ns1,{a},\ns2,{b},,\n", 0),
        "an extra non-empty cell": (f"subject,flair\ns1,{a},{b}\n", 2),
        "a cell of 140,000 characters": ("subject,flair\ns1," + "x" * 140_000 + "\n", 2),
        "a subject called summary.csv": (f"subject,flair\nsummary.csv,{a}\ns2,{b}\n", 1),
        "an image path of 300 bytes": (f"subject,flair\ns1,{'y' * 300}.nii.gz\ns2,{b}\n", 1),
    }
    for label, (text, expect) in tables.items():
        table = work / f"manifest-{len(ROWS)}.csv"
        table.write_text(text)
        out = work / f"out-manifest-{len(ROWS)}"
        done = fcd(["detect", "--model", str(ctx["bundle"]), "--data", str(table), "--device", "cpu", "--out", str(out)])
        ok = nothing(out) if expect == 2 else (out / "summary.csv").is_file()
        record(f"manifest with {label}", done, expect, ok, leftovers(out))
    out = scans / "results"
    base = ["detect", "--model", str(ctx["bundle"]), "--data", str(scans), "--device", "cpu", "--out", str(out)]
    runs = [fcd(base), fcd(base)]
    counts = [json.loads(r.stdout) if r.stdout.strip() else {} for r in runs]
    record("folder cohort: odd name, --out inside, rerun", runs[1], 1,
           counts[0].get("error") == 1 and counts[1].get("error") == 1 and counts[1].get("resumed") == 2
           and counts[1].get("subjects") == 3, leftovers(out),
           first=f"1st run {counts[0].get('done')} done {counts[0].get('error')} failed; rerun "
                 f"{counts[1].get('resumed')} resumed {counts[1].get('error')} failed of {counts[1].get('subjects')}")
    loop = work / "loop"
    loop.symlink_to(loop)
    for label, out in (("name of 300 bytes", work / ("o" * 300)), ("a link loop", loop)):
        for source in (["--image", str(a)], ["--data", str(scans)]):
            done = fcd(["detect", "--model", str(ctx["bundle"]), *source, "--device", "cpu", "--out", str(out)])
            record(f"--out {label} ({source[0]})", done, 2, True, [])
    done = fcd(detect_args(ctx["bundle"], a, work / "out-nt", "--localized-smoothgrad", "--nt-samples", "50000"))
    record("--nt-samples 50000", done, 2, "1 to 1000" in done.stderr and nothing(work / "out-nt"), [])
    roi = np.zeros((30, 34, 30), np.uint8)
    roi[12:18, 14:20, 12:18] = 1
    roi[2:4, 2:4, 2:4] = 2
    from Testing.builders.format_fixtures import write_seg_nrrd

    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -np.asarray(roi.shape) * 2.0
    seg = write_seg_nrrd(work / "Segmentation.seg.nrrd", roi, affine,
                         [{"name": "lesion", "value": 1}, {"name": "corner", "value": 2}])
    heatmap = work / "out-kill" / "heatmap.nii.gz"
    if not heatmap.exists():
        fcd(detect_args(ctx["bundle"], a, work / "out-hs"))
        heatmap = work / "out-hs" / "heatmap.nii.gz"
    done = fcd(["heat-score", "--heatmap", str(heatmap), "--roi", str(seg), "--roi-segment", "lesion"])
    record("heat-score --roi-segment lesion (.seg.nrrd)", done, 0,
           done.returncode == 0 and json.loads(done.stdout)["roi_voxels"] > 0, [])


def full_disk_cases(work: Path, ctx: dict) -> None:
    """A full disk during fcd detect and fcd detect --data: a tiny tmpfs where mounting works, else RLIMIT_FSIZE."""
    from Testing.builders.full_disk import file_size_limit, fill, tiny_filesystem

    disk = work / "disk"
    manifest = work / "disk.csv"
    manifest.write_text(f"subject,flair\ns1,{ctx['scans']['a']}\ns2,{ctx['scans']['b']}\n")
    with tiny_filesystem(disk, 768) as mounted:
        out = disk / "out"
        first = fcd(detect_args(ctx["bundle"], ctx["scans"]["a"], out))
        old = read_output_set(out) if first.returncode == 0 else None
        how = "tmpfs, ENOSPC" if mounted else "RLIMIT_FSIZE 8 KiB, EFBIG"
        if mounted:
            fill(disk, leave=4096)
            limit = {}
        else:
            limit = {"preexec_fn": file_size_limit(8192)}
        done = fcd(detect_args(ctx["bundle"], ctx["scans"]["b"], out, "--png"), **limit)
        same = old is not None and read_output_set(out) == old
        record(f"full disk ({how}): fcd detect over a set", done, 2, same, leftovers(out))
        fresh = disk / "new" / "deeper"
        done = fcd(detect_args(ctx["bundle"], ctx["scans"]["b"], fresh), **limit)
        record(f"full disk ({how}): fcd detect into a new folder", done, 2, not (disk / "new").exists(),
               leftovers(disk))
        cohort = (disk if mounted else work) / "out-disk-cohort"
        done = fcd(["detect", "--model", str(ctx["bundle"]), "--data", str(manifest), "--device", "cpu",
                    "--out", str(cohort)], **limit)
        record(f"full disk ({how}): fcd detect --data", done, 2, True, leftovers(cohort))
        if mounted:
            (disk / ".filler").unlink()


SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM")
# ----------------------------------------------------------------------------- trainer (issue 25)


def _run_copy(work: Path, ctx: dict, name: str, unfinished: bool = False) -> tuple[Path, list[str]]:
    """A copy of the probe's trained run (fold 1 undone when ``unfinished``) and the ``fcd train`` args resuming it."""
    run = work / name
    shutil.copytree(ctx["run"], run)
    if unfinished:
        for item in ("metrics.json", "predictions.csv", "history.json"):
            (run / "fold-1" / item).unlink(missing_ok=True)
        shutil.rmtree(run / "fold-1" / "model.fcdbundle", ignore_errors=True)
        (run / "summary.json").unlink(missing_ok=True)
    return run, [str(run) if a == str(ctx["run"]) else a for a in ctx["train_args"]]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


def _epochs(run: Path) -> int:
    return sum('"event": "epoch"' in line for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines())


def trainer_cases(work: Path, ctx: dict) -> None:
    """Damaged run files, a changed dataset, confinement of the run folder, odd inputs, a full disk."""
    from Testing.builders.full_disk import file_size_limit, small_tmpfs

    evaluate = ["evaluate", "--device", "cpu", "--run"]
    damaged_configs = {"not JSON": "{\"data\": ", "folds a string": None, "nested": "[" * 100_000 + "]" * 100_000,
                       "huge (2 MB)": " " * (2 << 20)}
    for index, (label, text) in enumerate(damaged_configs.items()):
        run, args = _run_copy(work, ctx, f"run-config-{index}")
        config = run / "config.json"
        config.write_text(text if text is not None else json.dumps({**json.loads(config.read_text(encoding="utf-8")), "folds": "5"}))
        before = _snapshot(run)
        for command, argv in (("train", args), ("evaluate", [*evaluate, str(run)])):
            done = fcd(argv)
            record(f"{command}: config.json {label}", done, 2, "config.json" in done.stderr and _snapshot(run) == before,
                   leftovers(run))
    for label, text in (("pid a string", json.dumps({"pid": "x", "host": platform.node(), "started": 1})),
                        ("nested", "[" * 50_000 + "]" * 50_000)):
        run, args = _run_copy(work, ctx, f"run-lock-{label.split()[0]}")
        (run / ".lock").mkdir()
        (run / ".lock" / "run.lock").write_text(text)
        done = fcd(args)
        record(f"train: run lock {label}", done, 2, "run.lock" in done.stderr, [])
    for label, change in (("list of ints", [1, 2]), ("fold numbers swapped", None)):
        run, args = _run_copy(work, ctx, f"run-folds-{label.split()[0]}")
        folds = run / "folds.json"
        splits = json.loads(folds.read_text(encoding="utf-8"))
        folds.write_text(json.dumps(change if change is not None else [{**splits[0], "fold": 1}, splits[1]]))
        for command, argv in (("train", args), ("evaluate", [*evaluate, str(run)])):
            done = fcd(argv)
            record(f"{command}: folds.json {label}", done, 2, "folds.json" in done.stderr, leftovers(run))
    for label, damage in (("NaN", lambda a: np.full_like(a, np.nan)), ("wrong shape", lambda a: a[:, :3])):
        run, args = _run_copy(work, ctx, f"run-cache-{label.split()[0]}", unfinished=True)
        entry = sorted((run / "cache").rglob("*.npy"))[0]
        np.save(entry, damage(np.load(entry)))
        epochs = _epochs(run)
        done = fcd(args)
        record(f"train resume: cache .npy {label}", done, 2,
               entry.name in done.stderr and _epochs(run) == epochs and not (run / "fold-1" / "checkpoint.pt").exists(),
               leftovers(run))
    run, _ = _run_copy(work, ctx, "run-bundle-json")
    (run / "fold-1" / "model.fcdbundle" / "bundle.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    done = fcd([*evaluate, str(run)])
    record("evaluate: bundle.json nested 100000 deep", done, 2, "bundle.json" in done.stderr, leftovers(run))
    for label, argv in (("train --seed 2**32", [*ctx["train_args"], "--seed", str(2**32)]),
                        ("synth --seed -1", ["synth", "--out", str(work / "synth-seed"), "--subjects", "2",
                                             "--size", "tiny", "--quiet", "--seed", "-1"])):
        argv = [str(work / "run-seed") if a == str(ctx["run"]) else a for a in argv]
        done = fcd(argv)
        record(f"{label}", done, 2, "--seed" in done.stderr and not (work / "run-seed").exists()
               and not (work / "synth-seed").exists(), [])
    # fcd evaluate checks the dataset against the run, as a resumed fcd train does
    cohort = work / "cohort-changed"
    shutil.copytree(ctx["cohort"], cohort)
    run, args = _run_copy(work, ctx, "run-changed-data")
    for path in (run / "config.json", run / "dataset.json"):
        path.write_text(path.read_text(encoding="utf-8").replace(str(ctx["cohort"]), str(cohort)))
    flair = next((cohort / "sub-00002" / "anat").glob("*_FLAIR.nii.gz"))
    image = nib.load(flair)
    nib.save(nib.Nifti1Image(image.get_fdata() * 2.0, image.affine), flair)
    args = [str(cohort) if a == str(ctx["cohort"]) else a for a in args]
    before = _snapshot(run)
    for command, argv in (("evaluate", [*evaluate, str(run)]), ("train", args)):
        done = fcd(argv)
        record(f"{command}: the run's dataset changed", done, 2,
               "dataset changed" in done.stderr and _snapshot(run) == before, leftovers(run))
    before = _snapshot(ctx["run"])
    done = fcd([*evaluate, str(ctx["run"]), "--out", str(ctx["run"] / "fold-0")])
    record("evaluate --out RUN/fold-0", done, 2, _snapshot(ctx["run"]) == before, leftovers(ctx["run"]))
    # confinement: a link planted in the run folder leading outside it
    run, args = _run_copy(work, ctx, "run-link", unfinished=True)
    victim = work / "victim-trainer"
    victim.mkdir()
    (victim / "best-1.pt").write_bytes(b"someone's file")
    shutil.rmtree(run / "fold-1")
    (run / "fold-1").symlink_to(victim)
    done = fcd(args)
    record("train resume: fold-1 is a link outside the run", done, 2,
           sorted(p.name for p in victim.iterdir()) == ["best-1.pt"] and "fold-1" in done.stderr, leftovers(run))
    # odd inputs: a spreadsheet export with trailing commas
    export = work / "export.csv"
    export.write_text("subject,label,flair\n" + "".join(f"{s},{g},{f},\n" for s, g, f in _manifest_rows(ctx["cohort"])))
    done = fcd([*train_args(export, work / "run-export"), "--folds", "99"])
    record("train: manifest rows with trailing commas", done, 2,
           "fewer than the 99 folds" in done.stderr and not (work / "run-export").exists(), [])
    # a full disk (a small tmpfs where mount is allowed, else the file size limit), no empty folder left
    for label, tmpfs_kb, file_bytes in (("synth", 64, 4000), ("train", 1024, 200_000)):
        disk = work / f"disk-{label}"
        with small_tmpfs(disk, tmpfs_kb) as mounted:
            kind = f"ENOSPC, {tmpfs_kb} kB tmpfs" if mounted else f"EFBIG, RLIMIT_FSIZE {file_bytes} bytes"
            target = disk / "new" / label
            argv = (["synth", "--out", str(target), "--subjects", "4", "--size", "tiny", "--quiet"] if label == "synth"
                    else train_args(ctx["cohort"], target, "--widen-factor", "0.25", epochs=1))
            done = fcd(argv, preexec_fn=None if mounted else file_size_limit(file_bytes))
            kept = ["cache", "config.json", "dataset.json", "events.jsonl", "folds.json", "skipped.json"]
            ok = (not (disk / "new").exists()) if label == "synth" else (
                target.is_dir() and sorted(p.name for p in target.iterdir()) == kept)
            record(f"{label} on a full disk ({kind})", done, 2, ok, leftovers(disk))
    (work / "loop-a").symlink_to(work / "loop-b")
    (work / "loop-b").symlink_to(work / "loop-a")
    for label, out in (("a name over 255 bytes", work / "new-long" / ("x" * 300)), ("a link loop", work / "loop-a")):
        for command, argv in (("train", train_args(ctx["cohort"], out)),
                              ("synth", ["synth", "--out", str(out), "--subjects", "2", "--size", "tiny", "--quiet"]),
                              ("experiment", ["experiment", "--data", str(ctx["cohort"]), "--out", str(out),
                                              "--depths", "18", "--pretrained", "none", "--modalities", "flair"])):
            done = fcd(argv)
            record(f"{command} --out {label}", done, 2, not (work / "new-long").exists(), [])


def _manifest_rows(cohort: Path) -> list[tuple[str, str, str]]:
    """(subject, group, FLAIR path) of the probe's cohort."""
    rows = []
    for line in (cohort / "participants.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        subject, group = line.split("\t")[:2]
        rows.append((subject, group, str(next((cohort / subject / "anat").glob("*_FLAIR.nii.gz")))))
    return rows


def default_sigint() -> None:
    """``preexec_fn``: SIGINT back to its default in the child, as in a terminal.

    A shell starts background jobs (``make probe &``, CI runners) with SIGINT ignored, and
    children inherit that: Ctrl-C would then never reach ``fcd``, and the probe would test nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _startup_seconds() -> float:
    """The slowest of three bare interpreter start-ups (``python -c pass``) with the probe's environment."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=ENV, check=True)
        times.append(time.perf_counter() - started)
    return max(times)


def detect_kills(work: Path, ctx: dict, count: int, rng: random.Random) -> None:
    """SIGKILL, SIGINT and SIGTERM at each named commit point, then ``count`` random ones (the three in turn)."""
    out = work / "out-kill"
    scans = ctx["scans"]
    started = time.perf_counter()
    done = fcd(detect_args(ctx["bundle"], scans["a"], out))
    full = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    # Random signals start after the interpreter's own start-up (the slowest of three bare
    # `python -c pass`): a SIGINT that lands while CPython itself imports `os` for `site`, before
    # the first line of FCDDetectLib runs, gets CPython's traceback, which no program can catch
    # (seen once in 65: `File "<frozen os>", line 58 ... KeyboardInterrupt`). From our first line
    # on (FCDDetectLib/cli/__init__.py's guarded imports), Ctrl-C is one line and exit 130.
    startup = _startup_seconds()
    points = ["staged", "journal", "renamed:heatmap.nii.gz", "renamed:result.json", "committed"]
    plan = [("point", p, name) for p in points for name in SIGNALS]
    plan += [("random", None, SIGNALS[i % len(SIGNALS)]) for i in range(count)]
    bad = 0
    for index, (kind, point, name) in enumerate(plan):
        image = scans["b" if index % 2 == 0 else "a"]
        extra = ["--png"] if index % 2 == 0 else []  # the sets differ in members: overlay.png comes and goes
        before = read_output_set(out)["inputs"] if (out / "result.json").exists() else None
        command = [sys.executable, "-m", "FCDDetectLib.cli", *detect_args(ctx["bundle"], image, out, *extra)]
        env = {**ENV, "FCD_TEST_KILL_AT": point or "", "FCD_TEST_KILL_SIGNAL": name}
        files, empty = snapshot([out])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=default_sigint)
        if kind == "random":
            try:
                process.wait(timeout=rng.uniform(startup, full * 1.05))
            except subprocess.TimeoutExpired:
                process.send_signal(getattr(signal, name))
        process.wait()
        stderr = process.stderr.read()
        process.stderr.close()
        try:
            manifest = read_output_set(out)  # what the next reader does: recover, verify checksums
            consistent = manifest["inputs"] in (before, [str(image)])
            names = {p.name for p in out.iterdir()}
            consistent = consistent and names == {"result.json", *manifest["files"]}
        except Exception as error:  # noqa: BLE001 - a probe reports, it does not stop
            consistent, stderr = False, f"{stderr}\n{error}"
        after, empty_after = snapshot([out])
        outside = sorted(p for p in set(files) | set(after) if files.get(p) != after.get(p)) + sorted(empty_after - empty)
        left = leftovers(out)
        print(f"    detect {name} {index + 1}/{len(plan)} ({point or 'random'}): exit {process.returncode}, "
              f"{'consistent' if consistent else 'INCONSISTENT'}, {len(left)} leftover", flush=True)
        if not consistent or left or "Traceback" in stderr or outside:
            bad += 1
            record(f"detect {name} #{index} ({point or 'random'})", None, None, consistent and not outside, left,
                   code=process.returncode, traceback="Traceback" in stderr, first=stderr.strip()[-110:])
    killed = len(plan)
    record(f"detect interrupted x{killed} ({len(points)} points x 3 signals + {count} random)", None, None,
           bad == 0, [], code=-9, first=f"{killed - bad}/{killed} consistent after recovery, full run {full:.1f} s",
           traceback=False)


def train_kills(work: Path, ctx: dict, count: int, rng: random.Random) -> None:
    run = work / "run-kill"
    args = [str(run) if a == str(ctx["run"]) else a for a in ctx["train_args"]]
    command = [sys.executable, "-m", "FCDDetectLib.cli", *args]
    full = ctx["train_seconds"]
    tracebacks = 0
    kills = 0
    attempts = 0
    while kills < count and attempts < 3 * count:  # an attempt that finishes before its kill does not count
        attempts += 1
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            process.wait(timeout=rng.uniform(0.5, full * 0.6))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        stderr = process.stderr.read()
        process.stderr.close()
        tracebacks += "Traceback" in stderr
        print(f"    train attempt: exit {process.returncode} ({kills} kills so far)", flush=True)
        if process.returncode == 0:
            shutil.rmtree(run)  # finished between kills: start over, so that every kill interrupts something
    done = fcd(args)
    same = done.returncode == 0
    for fold in (0, 1):
        for name in ("metrics.json", "predictions.csv"):
            got, want = (run / f"fold-{fold}" / name), (ctx["run"] / f"fold-{fold}" / name)
            if not got.is_file():
                same = False
                continue
            a, b = got.read_text(encoding="utf-8"), want.read_text(encoding="utf-8")
            if name == "metrics.json":
                a, b = ({k: v for k, v in json.loads(t).items() if k != "seconds"} for t in (a, b))
            same = same and a == b
    record(f"train SIGKILL x{kills} then resume", done, 0, same and tracebacks == 0, leftovers(run),
           first=f"{kills} kills; resumed run {'equals' if same else 'DIFFERS FROM'} the uninterrupted one")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect-kills", type=int, default=50)
    parser.add_argument("--train-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results-hostile.json"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fcd-probe-"))
    work.mkdir(parents=True, exist_ok=True)
    WORK.append(work)
    started = time.perf_counter()
    try:
        ctx = setup(work)
        steps: list[Callable[[], None]] = [
            lambda: security_cases(work, ctx), lambda: fs_cases(work, ctx), lambda: bounds_cases(work, ctx),
            lambda: data_cases(work, ctx), lambda: confinement_cases(work, ctx), lambda: identity_cases(work, ctx),
            lambda: header_cases(work, ctx), lambda: odd_input_cases(work, ctx), lambda: full_disk_cases(work, ctx),
            lambda: trainer_cases(work, ctx),
            lambda: detect_kills(work, ctx, args.detect_kills, rng),
            lambda: train_kills(work, ctx, args.train_kills, rng),
        ]
        for step in steps:
            step()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in ROWS if not r["pass"]]
    totals = {
        "cases": len(ROWS), "failed": len(failed), "tracebacks": sum(r["traceback"] for r in ROWS),
        "inconsistent_or_written": sum(not r["ok"] for r in ROWS),
        "leftover_temp_files": sum(len(r["leftover"]) for r in ROWS),
        "changed_outside_out": sum(len(r["changed_outside_out"]) for r in ROWS),
        "empty_folders": sum(len(r["empty_folders"]) for r in ROWS),
        "detect_kills": args.detect_kills, "train_kills_requested": args.train_kills,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s), {platform.system()}",
    }
    print(json.dumps(totals, indent=2))
    Path(args.out).write_text(json.dumps({"totals": totals, "rows": ROWS}, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
