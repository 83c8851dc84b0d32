"""Bundles that are not the model they claim to be, and the report of an earlier run.

Bundles of the same name with other weights (a resumed ``fcd detect --data`` must recompute,
not reuse), a bundle with another's ``weights.pt``, NaN weights and NaN outputs, and a
``--report`` set followed by a plain run (no stale report may stay in the set).

Example:
    >>> identity_cases(work, setup(work))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from FCDDetectLib.io.output_set import read_output_set

from hostile.harness import ROWS, detect_args, fcd, leftovers, nothing, record


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
