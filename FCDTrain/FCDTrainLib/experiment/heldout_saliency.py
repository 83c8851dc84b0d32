"""A run's test patients through localized SmoothGrad (modality contributions) and/or the PDF report.

``fcd evaluate --run RUN --modality-contributions``: every test patient with an ROI goes
through its own fold's bundle (:func:`FCDDetectLib.detection.detect.detect` with
``localized_smoothgrad``); each ROI component is a region. Regions are grouped by the
patient's classification: **TP** (the patient is classified FCD, p(FCD) >= the bundle's
threshold) or **FN** (classified control). Written to ``OUT/modality-contributions/``:

- ``contributions.csv``: one row per patient, region and modality (positive, negative, band
  values, share, group);
- ``contributions.png``: box plots per modality and sign, TP and FN side by side (Fig. 3 of
  Spagnolo et al.);
- ``contributions.json``: settings, counts and the paired test.

Paired test: FLAIR vs T1 over the regions (each region gives one FLAIR and one T1 value),
**Wilcoxon signed-rank** (``scipy.stats.wilcoxon``, two-sided): the values are per-voxel
gradient sums whose distribution is skewed and heavy-tailed and the samples are small, so a
rank test rather than a paired t-test. Tested on the total ``positive - negative`` (the
magnitude of the evidence) and on the positive part alone, over all regions and per group.
Only for a run with both ``t1`` and ``flair``; otherwise the section says why not.

``--reports``: every test subject (patients and controls) gets ``OUT/reports/<subject>/``
with :func:`FCDDetectLib.outputs.pdf_report.write_report`'s files (and the detection's result.json).

Per-subject results are kept under ``OUT/modality-contributions/subjects/`` and finished
reports are skipped, so an interrupted run resumes where it stopped; progress goes to stderr.

Example:
    >>> summary = cohort_saliency("runs/r18-t1flair", contributions=True, reports=True)  # doctest: +SKIP
    >>> summary["paired_test"]["all"]["total"]["p_value"]  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from FCDDetectLib.choices import MODALITIES

CSV_COLUMNS = ["fold", "subject", "group", "probability", "region", "voxels", "modality", "positive", "negative",
               "band_positive", "band_negative", "share"]
GROUPS = ("TP", "FN")


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def paired_test(rows: list[dict[str, Any]], first: str = "flair", second: str = "t1") -> dict[str, Any]:
    """Wilcoxon signed-rank test of ``first`` vs ``second`` over the regions of ``rows``.

    Example:
        >>> rows = [{"subject": "s", "region": f"r{i}", "modality": m, "group": "TP",
        ...          "positive": p, "negative": 0.0} for i in range(6) for m, p in (("flair", 2.0 + i), ("t1", 1.0))]
        >>> paired_test(rows)["all"]["total"]["n"]
        6
    """
    from scipy.stats import wilcoxon

    def pairs(group: str | None, key: str) -> tuple[np.ndarray, np.ndarray]:
        table: dict[tuple[str, str], dict[str, float]] = {}
        for row in rows:
            if group is None or row["group"] == group:
                value = row["positive"] - row["negative"] if key == "total" else row["positive"]
                table.setdefault((row["subject"], row["region"]), {})[row["modality"]] = value
        both = [v for v in table.values() if first in v and second in v]
        return np.array([v[first] for v in both]), np.array([v[second] for v in both])

    out: dict[str, Any] = {"test": "Wilcoxon signed-rank, two-sided (scipy.stats.wilcoxon)",
                           "pair": f"{first} vs {second} per region"}
    for group in (None, *GROUPS):
        entry = {}
        for key in ("total", "positive"):
            a, b = pairs(group, key)
            result: dict[str, Any] = {"n": int(a.size), "median_first": float(np.median(a)) if a.size else None,
                                      "median_second": float(np.median(b)) if b.size else None}
            if a.size < 2 or not np.any(a != b):
                result.update(statistic=None, p_value=None, note="fewer than 2 regions or no difference")
            else:
                test = wilcoxon(a, b)
                result.update(statistic=float(test.statistic), p_value=float(test.pvalue))
            entry[key] = result
        out["all" if group is None else group] = entry
    return out


def box_plots(rows: list[dict[str, Any]], modalities: list[str], path: Path) -> Path:
    """Box plots of the per-region values per modality and sign, one panel per group (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from FCDDetectLib.io.atomic_files import write_atomic

    figure, axes = plt.subplots(1, len(GROUPS), figsize=(11, 4.8), sharey=True, squeeze=False)
    for ax, group in zip(axes[0], GROUPS, strict=True):
        data, labels, colours = [], [], []
        for modality in modalities:
            for sign, colour in (("positive", "#c0392b"), ("negative", "#2e6da4")):
                values = [r[sign] for r in rows if r["group"] == group and r["modality"] == modality]
                data.append(values if values else [np.nan])
                labels.append(f"{modality.upper()} {'+' if sign == 'positive' else '-'}")
                colours.append(colour)
        n = len({(r["subject"], r["region"]) for r in rows if r["group"] == group})
        parts = ax.boxplot(data, patch_artist=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        for patch, colour in zip(parts["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.axhline(0, color="black", linewidth=0.7)
        ax.set_title(f"{'true positives' if group == 'TP' else 'false negatives'} ({n} regions)")
        if n == 0:
            ax.text(0.5, 0.5, "no regions in this group", ha="center", va="center", transform=ax.transAxes)
    axes[0][0].set_ylabel("sum of gradients / region voxels\n(logit per z-scored unit)")
    figure.suptitle("Localized signed SmoothGrad inside the ROI components, per modality and sign")
    figure.tight_layout()
    try:
        return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(figure)


def cohort_saliency(run_dir: str | Path, *, contributions: bool = True, reports: bool = False,
                    out: str | Path | None = None, device: str = "auto", method: str | None = None,
                    nt_samples: int | None = None, noise_sd: float | None = None) -> dict[str, Any]:
    """Modality contributions over a run's test patients and/or every test subject's report.

    See the module docstring. Returns the summary (also ``contributions.json``).
    """
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.explain.localized_smoothgrad import check_options
    from FCDDetectLib.io.atomic_files import csv_text, write_json_atomic, write_text_atomic
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDDetectLib.outputs.detection_files import write_detection
    from FCDDetectLib.outputs.pdf_report import check_writable, write_report

    from FCDTrainLib.experiment.evaluate_run import check_evaluation_out, run_test_sets
    from FCDTrainLib.experiment.train_run import resolve_device
    from FCDTrainLib.run_folder.layout import RunLayout

    if not contributions and not reports:
        raise FCDInputError("cohort: ask for --modality-contributions and/or --reports")
    from FCDDetectLib.explain.localized_smoothgrad import DEFAULT_NOISE_SD, DEFAULT_NT_SAMPLES

    nt_samples = DEFAULT_NT_SAMPLES if nt_samples is None else nt_samples
    noise_sd = DEFAULT_NOISE_SD if noise_sd is None else noise_sd
    check_options(nt_samples, noise_sd)
    run_dir = Path(run_dir)
    config, bundles, test_sets = run_test_sets(run_dir)
    method = method or config.explain_method
    device = resolve_device(device)
    out_dir = Path(out) if out is not None else RunLayout(run_dir).evaluation()
    check_evaluation_out(out_dir, RunLayout(run_dir))
    out_dir = check_writable(out_dir)
    saliency_dir = out_dir / "modality-contributions"
    modalities = list(config.modalities)

    rows: list[dict[str, Any]] = []
    reports_written = 0
    total = sum(len(subjects) for subjects in test_sets.values())
    done = 0
    for fold, path in sorted(bundles.items()):
        bundle = None
        for subject in test_sets[fold]:
            done += 1
            patient = int(subject.label) == 1 and subject.roi is not None
            cached = saliency_dir / "subjects" / f"{subject.subject_id}.json"
            report_dir = out_dir / "reports" / subject.subject_id
            need_saliency = contributions and patient and not cached.is_file()
            need_report = reports and not (report_dir / "report.pdf").is_file()
            if need_saliency or need_report:
                bundle = bundle or load_bundle(path, device=device)
                images = [subject.images[m] for m in modalities]
                _progress(f"[{done}/{total}] fold {fold} {subject.subject_id}")
                result = detect(bundle, images, roi=subject.roi if patient else None, method=method, device=device,
                                localized_smoothgrad=contributions and patient, nt_samples=nt_samples,
                                noise_sd=noise_sd)
                if need_report:
                    write_detection(result, report_dir)
                    write_report(result, images, report_dir, roi=subject.roi if patient else None,
                                 subject=subject.subject_id)
                    reports_written += 1
                if need_saliency:
                    write_json_atomic(cached, {"fold": fold, "subject": subject.subject_id,
                                               "probability": result.probability, "prediction": result.prediction,
                                               "threshold": result.threshold,
                                               "saliency": result.saliency.to_json()})
            if contributions and patient:
                rows.extend(_cached_rows(cached))
    summary: dict[str, Any] = {"run": str(run_dir), "out": str(out_dir), "method": method,
                               "reports": {"written": reports_written, "folder": str(out_dir / "reports")}
                               if reports else None}
    if contributions:
        groups = {g: len({r["subject"] for r in rows if r["group"] == g}) for g in GROUPS}
        summary.update({
            "nt_samples": nt_samples, "noise_sd": noise_sd, "modalities": modalities,
            "grouping": "TP: patient classified FCD (p >= bundle threshold); FN: classified control",
            "patients": groups,
            "paired_test": paired_test(rows) if set(MODALITIES) <= set(modalities)
            else {"note": f"the run has one modality ({config.modality}): no FLAIR vs T1 test"},
        })
        write_text_atomic(saliency_dir / "contributions.csv", csv_text(rows, CSV_COLUMNS))
        box_plots(rows, modalities, saliency_dir / "contributions.png")
        write_json_atomic(saliency_dir / "contributions.json", summary)
    return summary


def _cached_rows(path: Path) -> list[dict[str, Any]]:
    """:func:`_rows` of a subject's cached result; a damaged one is an error naming it (it is recomputed once deleted)."""
    from FCDDetectLib.errors import FCDInputError

    from FCDTrainLib.run_folder.run_files import read_json_object

    try:
        return _rows(read_json_object(path, "cached saliency result"))
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, FCDInputError):
            raise
        raise FCDInputError(f"{path}: damaged cached saliency result ({type(error).__name__}: {error}); delete it "
                            "and run again (it is recomputed)") from None


def _rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    group = "TP" if entry["probability"] >= entry["threshold"] else "FN"
    rows = []
    for region in entry["saliency"]["regions"]:
        for m in region["modalities"]:
            rows.append({"fold": entry["fold"], "subject": entry["subject"], "group": group,
                         "probability": entry["probability"], "region": region["name"], "voxels": region["voxels"],
                         **m})
    return rows
