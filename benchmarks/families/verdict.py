"""The bar of ``benchmarks/bench_families.py`` (issue 26), item by item, and its results as Markdown.

:func:`bar_verdict` checks the randomised model's figures against ``BAR`` (detection gap
to the standard family, false positives per patient, the standard model's lead, and
test-retest); :func:`markdown` is the per-family table and the test-retest lines of the
README and ``docs/lesion-level.md``.

Example:
    >>> print(markdown(json.loads(Path("benchmarks/results-families-cpu.json").read_text(encoding="utf-8"))))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from families.cohorts import FAMILIES

BAR = {"detection_gap": 0.10, "fp_per_patient": 0.5, "retest_dice": 0.6, "retest_peak_mm": 5.0,
       "retest_agreement": 0.9, "standard_gap": 0.05}


def bar_verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar, per item, for the randomised model (value, target, met)."""
    verdict: dict[str, Any] = {}
    families = results.get("families", {})
    model = "randomized-aug" if "randomized-aug" in families and "randomized" not in families else "randomized"
    own = families.get(model, {})
    base = own.get("standard", {}).get("detection_rate")
    for family, figures in own.items():
        if family == "standard" or base is None or figures.get("detection_rate") is None:
            continue
        gap = base - figures["detection_rate"]
        verdict[f"{family}: detection within {BAR['detection_gap']} of standard"] = {
            "value": round(gap, 3), "met": gap <= BAR["detection_gap"] + 1e-9}
        verdict[f"{family}: FP clusters per patient <= {BAR['fp_per_patient']}"] = {
            "value": figures.get("fp_per_patient"), "met": (figures.get("fp_per_patient") or 0) <= BAR["fp_per_patient"]}
    plain = families.get("standard", {}).get("standard", {}).get("detection_rate")
    if base is not None and plain is not None:
        verdict[f"standard family: randomised no worse than standard model by {BAR['standard_gap']}"] = {
            "value": round(plain - base, 3), "met": plain - base <= BAR["standard_gap"] + 1e-9}
    retest = results.get("retest", {}).get(model)
    if retest:
        for key, target, sense in (("dice_mean", BAR["retest_dice"], ">="),
                                   ("peak_distance_median_mm", BAR["retest_peak_mm"], "<="),
                                   ("agreement", BAR["retest_agreement"], ">=")):
            value = retest.get(key)
            met = None if value is None else (value >= target if sense == ">=" else value <= target)
            verdict[f"test-retest {key} {sense} {target}"] = {"value": value, "met": met}
    return {"model": model, "items": verdict}


def markdown(results: dict[str, Any]) -> str:
    """The per-family table and the test-retest lines as Markdown (README, docs/lesion-level.md)."""
    def cell(value: Any, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    models = list(results.get("families", {}))
    lines = ["| family | " + " | ".join(f"{m}: detection / FP per patient / specificity / OOD flagged" for m in models)
             + " |", "| --- |" + " --- |" * len(models)]
    for family in FAMILIES:
        row = [results["families"][m].get(family) for m in models]
        if all(r is None for r in row):
            continue
        lines.append(f"| {family} | " + " | ".join(
            "not run" if r is None else f"{cell(r['detection_rate'])} / {cell(r['fp_per_patient'])} / "
            f"{cell(r['specificity'])} / {cell(r['ood_flagged'])}" for r in row) + " |")
    for model, retest in results.get("retest", {}).items():
        lines.append(f"\n{model}, test-retest ({retest['pairs']} pairs): cluster Dice mean {cell(retest['dice_mean'])} "
                     f"(median {cell(retest['dice_median'])}, {retest['dice_pairs']} pairs with a cluster), median "
                     f"top-peak distance {cell(retest['peak_distance_median_mm'], 1)} mm ({retest['peak_pairs']} pairs), "
                     f"detection agreement {cell(retest['agreement'])} (patients {cell(retest['patient_agreement'])})")
    return "\n".join(lines)
