"""What ``benchmarks/bench_families.py`` measures with one trained model.

:func:`evaluate_family`: ``detect()`` on every subject of a family's cohort, the cohort's
lesion-map figures (``FIGURES``) and the share the out-of-distribution check flags;
:func:`hostile_flags`: the share of hostile inputs (noise, CT-like range, a cropped head)
the check flags; :func:`retest_pairs`: ``fcd detect --data`` on a rescan cohort and the
per-pair cluster Dice, peak distance and detection agreement.

Example:
    >>> figures = evaluate_family(run / "fold-0" / "model.fcdbundle", work / "family-standard")  # doctest: +SKIP
    >>> figures["detection_rate"], figures["ood_flagged"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "peak_in_roi_rate", "dice_mean",
           "n_patients", "n_controls")


def evaluate_family(bundle_path: Path, cohort: Path) -> dict[str, Any]:
    """detect() on every subject of ``cohort``: lesion-map figures, OOD flags, seconds."""
    from FCDDetectLib.detection.detect import detect, load_model
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics
    from FCDTrainLib.data.dataset_loader import load_dataset

    bundle = load_model(bundle_path, "cpu")
    modalities = list(bundle.metadata.modalities)
    rows, flagged, reasons, errors, started = [], 0, {}, [], time.perf_counter()
    subjects = load_dataset(cohort).subjects
    for subject in subjects:
        roi = subject.roi if int(subject.label) == 1 else None
        try:
            result = detect(bundle, [subject.images[m] for m in modalities], roi=roi, device="cpu")
        except FCDInputError as error:  # counted, and left out of the figures
            errors.append(f"{subject.subject_id}: {error}")
            continue
        rows.append({**result.lesion_map_metrics, "label": int(subject.label), "subject": subject.subject_id,
                     "probability": result.probability, "max_lesion_probability": float(result.lesion_map.max())})
        if result.out_of_distribution:
            flagged += 1
            for reason in result.ood_reasons:
                key = reason.split(" ")[0]
                reasons[key] = reasons.get(key, 0) + 1
    figures = cohort_lesion_metrics(rows)
    return {**{k: figures.get(k) for k in FIGURES}, "errors": errors, "ood_flagged": flagged / max(1, len(rows)),
            "ood_reasons": reasons, "seconds_per_subject": round((time.perf_counter() - started) / len(subjects), 2),
            "subjects": [{k: r.get(k) for k in ("subject", "label", "detected", "n_clusters", "fp_clusters", "dice",
                                                 "max_lesion_probability")} for r in rows]}


def hostile_flags(bundle_path: Path, cohort: Path, n: int = 4) -> dict[str, Any]:
    """Share of hostile inputs (made from the cohort's first ``n`` subjects) the OOD check flags."""
    import numpy as np
    from FCDDetectLib.detection.detect import detect, load_model
    from FCDDetectLib.grid.head_mask import head_mask
    from FCDDetectLib.io.image_io import Image, load_image
    from FCDTrainLib.data.dataset_loader import load_dataset

    bundle = load_model(bundle_path, "cpu")
    modalities = list(bundle.metadata.modalities)
    rng = np.random.default_rng(0)

    def noise(image: Image) -> Image:
        return Image(rng.random(image.array.shape).astype(np.float32) * 1000, image.affine)

    def ct_like(image: Image) -> Image:
        head = head_mask(image.array)
        tissue = np.clip(image.array / max(float(np.percentile(image.array[head], 99)), 1e-6), 0, 1) * 80
        return Image(np.where(head, tissue, -1000.0).astype(np.float32), image.affine)

    def cropped(image: Image) -> Image:
        axis = int(np.argmax(np.abs(image.affine[2, :3])))  # the voxel axis closest to S
        keep = [slice(None)] * 3
        size = image.array.shape[axis]
        keep[axis] = slice(size // 2, size) if image.affine[2, axis] > 0 else slice(0, size - size // 2)
        start = np.array([s.start or 0 for s in keep] + [1.0])
        affine = image.affine.copy()
        affine[:3, 3] = (image.affine @ start)[:3]
        return Image(image.array[tuple(keep)], affine)

    out: dict[str, Any] = {}
    subjects = load_dataset(cohort).subjects[:n]
    for name, change in (("noise", noise), ("ct-range", ct_like), ("cropped-head", cropped)):
        flags, reasons = 0, []
        for subject in subjects:
            images = [change(load_image(subject.images[m])) for m in modalities]
            try:
                result = detect(bundle, images, device="cpu")
            except Exception as error:  # noqa: BLE001 - a refused input counts as flagged
                flags += 1
                reasons.append(f"refused: {str(error).splitlines()[0][:80]}")
                continue
            flags += bool(result.out_of_distribution)
            reasons.extend(r.split(" ")[0] for r in result.ood_reasons)
        out[name] = {"flagged": flags / max(1, len(subjects)), "reasons": sorted(set(reasons))}
    return out


def _label_map(path: Path) -> Any:
    """A cluster label map we wrote (nibabel: an empty one is all zero), as an engine ``Image``."""
    import nibabel as nib
    import numpy as np
    from FCDDetectLib.io.image_io import Image

    image = nib.load(str(path))
    return Image(np.asarray(image.dataobj), image.affine)


def retest_pairs(bundle_path: Path, cohort: Path, out: Path) -> dict[str, Any]:
    """fcd detect --data on the rescan cohort, then the per-pair figures (see the module docstring)."""
    import numpy as np
    from FCDDetectLib.cohort.discovery import discover_subjects
    from FCDDetectLib.cohort.runner import run_cohort
    from FCDDetectLib.grid.geometry import mask_onto_grid
    from FCDDetectLib.io.image_io import Image
    from FCDDetectLib.networks.bundle import load_bundle
    from FCDTrainLib.data.dataset_loader import load_dataset

    modalities = list(load_bundle(bundle_path).metadata.modalities)
    subjects = discover_subjects(cohort, modalities)
    run_cohort(bundle_path, subjects, out, device="cpu")
    labels = {s.subject_id: int(s.label) for s in load_dataset(cohort).subjects}
    by_subject: dict[str, list[Any]] = {}
    for entry in subjects:
        by_subject.setdefault(entry.info["subject"], []).append(entry)
    pairs = []
    for subject_id, sessions in sorted(by_subject.items()):
        first, second = (out / s.subject_id for s in sessions[:2])
        results = [json.loads((folder / "result.json").read_text(encoding="utf-8")) for folder in (first, second)]
        lesion = [r["lesion_map"] for r in results]
        # a label map, all zero when a session has no cluster (load_image refuses constant images)
        masks = [_label_map(folder / "lesion_clusters.nii.gz") for folder in (first, second)]
        a = masks[0].array > 0
        b = mask_onto_grid(Image(masks[1].array > 0, masks[1].affine), Image(a, masks[0].affine))
        listed = [json.loads((folder / "lesion_clusters.json").read_text(encoding="utf-8"))["clusters"] for folder in (first, second)]
        peaks = [np.array(c[0]["peak_ras"]) if c else None for c in listed]
        patient = labels[subject_id] == 1
        hits = [bool(x.get("detected")) if patient else bool(x.get("n_clusters")) for x in lesion]
        pairs.append({
            "subject": subject_id, "label": labels[subject_id],
            "n_clusters": [x.get("n_clusters") for x in lesion],
            "dice": None if not (a.any() or b.any()) else float(2 * (a & b).sum() / (a.sum() + b.sum())),
            "peak_distance_mm": None if peaks[0] is None or peaks[1] is None else float(np.linalg.norm(peaks[0] - peaks[1])),
            "detected": hits, "agree": hits[0] == hits[1],
        })
    dice = [p["dice"] for p in pairs if p["dice"] is not None]
    distance = [p["peak_distance_mm"] for p in pairs if p["peak_distance_mm"] is not None]
    patients = [p for p in pairs if p["label"] == 1]
    return {
        "pairs": len(pairs),
        "dice_mean": float(np.mean(dice)) if dice else None, "dice_median": float(np.median(dice)) if dice else None,
        "dice_pairs": len(dice),
        "patient_dice_mean": float(np.mean([p["dice"] for p in patients if p["dice"] is not None] or [np.nan])),
        "peak_distance_median_mm": float(np.median(distance)) if distance else None, "peak_pairs": len(distance),
        "agreement": float(np.mean([p["agree"] for p in pairs])) if pairs else None,
        "patient_agreement": float(np.mean([p["agree"] for p in patients])) if patients else None,
        "per_pair": pairs,
    }
