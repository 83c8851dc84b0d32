"""Inputs ``fcd`` must refuse (exit 2) without running them or writing outside ``--out``.

Pickles planted in a bundle's ``weights.pt`` and in a run's checkpoint (the marker file they
would write must not appear), an ``--out`` that is a file, read-only or holds a folder where
an output goes, bundle and training sizes out of bounds, and commit journals planted in
``--out`` that point outside it.

Example:
    >>> security_cases(work, setup(work))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hostile.harness import ROWS, detect_args, fcd, leftovers, nothing, record
from Testing.builders.hostile_fixtures import plant_pickle, tiny_bundle
from Testing.builders.train_fixtures import train_args


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
