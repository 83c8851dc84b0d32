"""``fcd train`` and ``fcd evaluate`` on run folders that were damaged, moved or planted.

Each case works on a copy of the probe's trained run (:func:`_run_copy`): damaged
``config.json``, run lock, ``folds.json`` and cache files, a bundle.json nested 100,000 deep,
seeds out of range, a dataset changed under the run, ``--out`` inside the run, a fold folder
that links outside it, a spreadsheet export as the manifest, a full disk, long names and
link loops.

Example:
    >>> trainer_cases(work, setup(work))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from hostile.harness import fcd, leftovers, record
from Testing.builders.train_fixtures import train_args


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
