"""``fcd detect`` on files other tools leave: NIfTI headers, odd tables and names, a full disk.

NIfTI headers that nibabel and Slicer (SimpleITK) read differently, spreadsheet manifests
(trailing commas, long cells, a subject called ``summary.csv``), odd subject names, names
over 255 bytes, link loops, ``--nt-samples`` out of range, ``heat-score`` on a ``.seg.nrrd``
segment, and a full disk (a tiny tmpfs where mounting works, else ``RLIMIT_FSIZE``).

Example:
    >>> header_cases(work, setup(work))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from FCDDetectLib.io.output_set import read_output_set

from hostile.harness import ROWS, detect_args, fcd, leftovers, nothing, record
from Testing.builders.hostile_fixtures import head


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
