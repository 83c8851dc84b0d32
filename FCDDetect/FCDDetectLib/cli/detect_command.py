"""``fcd detect``: classify a scan (or a cohort), write its heatmap, its clusters and result.json (and overlay.png with ``--png``).

Example:
    $ fcd detect --model model.fcdbundle --image sub-01_FLAIR.nii.gz \\
          --roi sub-01_FLAIR_roi.nii.gz --method layercam --layer layer2 \\
          --cluster-threshold 0.5 --min-cluster-mm3 50 --out out/
    {"probability": 0.91, "prediction": "fcd", "heat_score": 2.4, ...}
    $ fcd detect --model model.fcdbundle --image DICOM/ --series "FLAIR 3D" --out out/ --dicom-out pacs/
    $ fcd detect --model model.fcdbundle --data ds004199/ --out results/ --workers 2
    $ fcd detect --model runs/r18-lesion --image sub-01_FLAIR.nii.gz --out out/   # every fold: an ensemble
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from FCDDetectLib.choices import DEVICES, EXPLANATION_LAYERS, EXPLANATION_METHODS
from FCDDetectLib.cli.executor_options import add_executor_options

if TYPE_CHECKING:  # pragma: no cover - typing only: the command's import stays light
    from FCDDetectLib.detection.options import DetectOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` sub-command (its defaults are :class:`DetectOptions`'s)."""
    from FCDDetectLib.detection.options import DetectOptions
    from FCDDetectLib.explain.localized_smoothgrad import MAX_NT_SAMPLES

    defaults = DetectOptions()
    parser = subparsers.add_parser(
        "detect",
        help="classify a scan or a cohort, explain it (heatmap) and score the explanation",
        description="Writes OUT/heatmap.nii.gz (on the first image's grid, float32 in [0, 1], "
        "restricted to the head), OUT/clusters.nii.gz (int16 label map, 1 = highest-ranked cluster), "
        "OUT/clusters.json, OUT/clusters.csv and OUT/result.json, and prints the result as JSON. "
        "Images: NIfTI, NRRD/NHDR, MetaImage "
        "(.mha/.mhd) or a DICOM series folder. With --data: one folder per subject under OUT and "
        "OUT/summary.csv; exit 0 when every subject ran, 1 when some failed (listed in summary.csv).",
    )
    parser.add_argument("--model", required=True, action="append",
                        help="model bundle folder (*.fcdbundle); or a run folder of fcd train, or this option "
                        "repeated with several bundles: a fold ensemble (mean maps and probability, "
                        "OUT/uncertainty.nii.gz = the spread across the folds)")
    parser.add_argument("--require-all-folds", action="store_true",
                        help="with a run folder: refuse when a fold has no model (default: detect with the folds "
                        "present and say which are missing)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--image", action="append", help="input image or DICOM series folder; repeat in the model's modality order"
    )
    source.add_argument(
        "--data", help="cohort: a BIDS folder (ds004199 layout), a CSV manifest or a folder of images"
    )
    parser.add_argument("--series", help="DICOM folder with several series: SeriesInstanceUID or SeriesDescription")
    parser.add_argument("--roi", help="lesion outline (mask, labelmap or Slicer .seg.nrrd) for the Heat-Score; any grid")
    parser.add_argument("--roi-segment", help="segment of a .seg.nrrd ROI (name or label value), or a labelmap value")
    parser.add_argument("--brain-mask", help="brain mask restricting the Heat-Score background")
    parser.add_argument(
        "--method", choices=EXPLANATION_METHODS,
        help="heatmap method (default: the bundle's explain_method, else gradcam)",
    )
    parser.add_argument(
        "--layer", choices=EXPLANATION_LAYERS,
        help="network stage for the CAM methods; multi = mean of layer2-4 (default: the bundle's, else layer4)",
    )
    engine = defaults.for_bundle(None)  # the engine's cluster settings, when the bundle has none
    parser.add_argument(
        "--cluster-threshold", type=float, default=defaults.cluster_threshold,
        help="map value in [0, 1] at or above which voxels form clusters (default: the bundle's operating point, "
        f"chosen on its validation subjects for a lesion model, else {engine.cluster_threshold})",
    )
    parser.add_argument(
        "--min-cluster-mm3", type=float, default=defaults.min_cluster_mm3,
        help=f"smallest cluster kept, mm3 (default: the bundle's operating point, else {engine.min_cluster_mm3:g})",
    )
    parser.add_argument("--target-class", default=defaults.target_class,
                        help=f"class the heatmap explains (default: {defaults.target_class})")
    parser.add_argument("--device", default=defaults.device, choices=DEVICES)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--png", action="store_true",
                        help="also write OUT/overlay.png: axial, coronal, sagittal slices through the heatmap peak "
                        "with the heatmap over the first image and the ROI outline")
    parser.add_argument(
        "--dicom-out", help="also write DICOM for PACS here (input must be a DICOM series): "
        "DICOM SEG of the clusters, Parametric Map of the heatmap, RGB overlay series"
    )
    parser.add_argument("--workers", type=int, default=None,
                        help="cohort: local: threads reading/writing beside the network (default 1); "
                        "ray: workers, each loading the model once (default: as many as the cluster holds)")
    parser.add_argument("--no-resume", action="store_true", help="cohort: recompute subjects already finished")
    add_executor_options(parser, unit="worker")
    parser.add_argument("--localized-smoothgrad", action="store_true",
                        help="also write signed SmoothGrad maps per modality (smoothgrad_<modality>.nii.gz) and "
                        "their contributions per ROI component or cluster (result.json: modality_contributions)")
    parser.add_argument("--nt-samples", type=int, default=defaults.nt_samples,
                        help=f"SmoothGrad noisy copies, 1 to {MAX_NT_SAMPLES} (default {defaults.nt_samples}); "
                        "a progress bar shows on a terminal")
    parser.add_argument("--noise-sd", type=float, default=defaults.noise_sd,
                        help=f"SmoothGrad noise sd as a fraction of the input's value range (default {defaults.noise_sd})")
    parser.add_argument("--report", action="store_true",
                        help="also write OUT/report.pdf and each page as OUT/report-page-N.png")
    parser.set_defaults(func=run)


def _checksums(out: str) -> dict:
    from FCDDetectLib.io.output_set import read_output_set

    return read_output_set(out).get("files", {})


def detect_options(args: argparse.Namespace) -> DetectOptions:
    """The parsed command line as one :class:`DetectOptions` (checked here, before any work)."""
    from FCDDetectLib.detection.options import DetectOptions

    return DetectOptions(
        method=args.method, layer=args.layer, device=args.device, target_class=args.target_class,
        cluster_threshold=args.cluster_threshold, min_cluster_mm3=args.min_cluster_mm3,
        localized_smoothgrad=args.localized_smoothgrad, nt_samples=args.nt_samples, noise_sd=args.noise_sd,
        series=args.series, roi_segment=args.roi_segment,
    )


def model_metadata(args: argparse.Namespace):
    """The metadata of ``--model`` (one bundle, or an ensemble's: its members checked to agree), no torch.

    A run folder with missing folds prints one ``warning:`` line naming them (or, with
    ``--require-all-folds``, is refused). Checked before a scan is read or a file written.
    """
    from FCDDetectLib.detection.ensemble_detect import is_ensemble_request
    from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata
    from FCDDetectLib.networks.ensemble import read_ensemble_metadata

    if not is_ensemble_request(args.model):
        return read_bundle_metadata(args.model[0])
    metadata, members, missing = read_ensemble_metadata(args.model, args.require_all_folds)
    if missing:
        print(f"warning: {args.model[0]}: fold(s) {', '.join(missing)} have no model; detecting with "
              f"{', '.join(label for label, _ in members)}", file=sys.stderr)
    return metadata


def run(args: argparse.Namespace) -> int:
    """Run detection; bad input raises FCDInputError before anything is written."""
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.networks.lean_monai import import_monai_lean

    import_monai_lean()  # MONAI without matplotlib/pandas/scikit-learn: seconds off every call
    options = detect_options(args)  # every option checked before any subject runs
    if args.data:
        return run_cohort_command(args, options)
    if args.executor != "local":
        raise FCDInputError(f"--executor {args.executor}: only for a cohort (--data)")
    import sys

    from FCDDetectLib.detection.ensemble_detect import detect_any, is_ensemble_request
    from FCDDetectLib.detection.inputs import DetectionInputs
    from FCDDetectLib.io.output_folder import check_output_folder
    from FCDDetectLib.outputs.detection_files import DETECTION_FILES, write_detection

    ensemble = is_ensemble_request(args.model)
    if ensemble and args.localized_smoothgrad:
        raise FCDInputError("--localized-smoothgrad: for one model bundle, not a fold ensemble")
    check_output_folder(args.out, (*DETECTION_FILES, *(["overlay.png"] if args.png else []),
                                   *(["report.pdf"] if args.report else [])))  # first: before anything is read
    metadata = model_metadata(args)  # a run whose folds disagree is refused here, before anything is written

    images: list = list(args.image)
    dicom = None
    if args.dicom_out:
        from FCDDetectLib.io.dicom_series import find_series
        from FCDDetectLib.io.image_io import load_image

        first = Path(images[0])
        if not first.is_dir():
            raise FCDInputError(
                f"--dicom-out: {first} is not a DICOM series folder; DICOM outputs need the source series "
                "(give the DICOM folder as --image)"
            )
        target = Path(args.dicom_out)
        if target.exists() and not target.is_dir():
            raise FCDInputError(f"--dicom-out: {target} exists and is not a folder")
        series = find_series(first, args.series, str(first))
        from FCDDetectLib.outputs.dicom_identity import check_dicom_source

        check_dicom_source(series)  # what the DICOM outputs need, refused before the detection
        scan = load_image(first, series=series.series_uid)
        images[0] = scan
        dicom = (series, scan)
    if len(images) != len(metadata.modalities):
        raise FCDInputError(
            f"model {metadata.name}: expects {len(metadata.modalities)} image(s) "
            f"({', '.join(metadata.modalities)}), got {len(images)}"
        )
    # read once: the network, the overlay and the report all use these
    inputs = DetectionInputs.load(images, args.roi, args.brain_mask, series=options.series,
                                  roi_segment=options.roi_segment, labels=metadata.modalities,
                                  names=[str(p) for p in args.image])
    result = detect_any(list(args.model) if ensemble else args.model[0], inputs, options=options)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    writers = []
    if args.png:  # the overlay belongs to the detection's set: written in the same commit

        def overlay(result, folder):
            from FCDDetectLib.outputs.overlay import render_detection

            render_detection(result, inputs.reference, folder / "overlay.png", roi=inputs.roi)

        writers.append(overlay)
    if args.report:  # the report and its pages too: a later plain run into OUT removes them with the old set

        def report(result, folder):
            from FCDDetectLib.outputs.pdf_report import write_report

            write_report(result, [inputs.reference], folder, roi=inputs.roi)

        writers.append(report)
    write_detection(result, args.out, extra_writers=writers)
    if dicom is not None:
        from FCDDetectLib.outputs.dicom_outputs import write_dicom_outputs

        series, scan = dicom
        written = write_dicom_outputs(result, scan, series, args.dicom_out)
        for warning in written.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps({**result.to_json(), "files": _checksums(args.out)}, indent=2))
    return 0


def run_cohort_command(args: argparse.Namespace, options: DetectOptions) -> int:
    """``--data``: every subject with one loaded model; summary.csv; exit 1 when a subject failed."""
    from FCDDetectLib.cohort.discovery import discover_subjects
    from FCDDetectLib.cohort.summary import SUMMARY_NAME, failed
    from FCDDetectLib.detection.ensemble_detect import is_ensemble_request
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.io.output_folder import check_output_folder, create_folder, remove_created

    for option in ("roi", "brain_mask", "dicom_out", "png", "report", "localized_smoothgrad"):
        if getattr(args, option):
            raise FCDInputError(
                f"--{option.replace('_', '-')} is for one scan; with --data give ROIs and masks in the manifest "
                "(roi, brain_mask columns) or the BIDS *_roi files"
            )
    metadata = model_metadata(args)
    model = list(args.model) if is_ensemble_request(args.model) else args.model[0]
    local = args.executor == "local"
    out = check_output_folder(args.out, (SUMMARY_NAME,)) if local else Path(args.out)  # ray: after connecting
    subjects = discover_subjects(args.data, metadata.modalities, exclude=[out])
    for subject in subjects:  # --series / --roi-segment: the default for subjects the manifest leaves open
        subject.series = subject.series or args.series
        subject.roi_segment = subject.roi_segment or args.roi_segment
    created = create_folder(out) if local else []
    try:
        rows = _run_cohort_executor(args, options, model, subjects, out)
    except BaseException:
        remove_created(created)  # no empty folder left behind (a full disk, a refused model, Ctrl-C)
        raise
    bad = failed(rows)
    counts = {status: sum(r["status"] == status for r in rows) for status in ("done", "resumed", "error", "pending")}
    print(json.dumps({"subjects": len(rows), **counts, "summary": str(out / SUMMARY_NAME)}, indent=2))
    if bad:
        print(f"warning: {len(bad)} of {len(rows)} subjects failed, each listed with its error in "
              f"{out / SUMMARY_NAME} (first: {bad[0]['subject']}: {bad[0]['error']})", file=sys.stderr)
        return 1
    return 0


def _run_cohort_executor(args: argparse.Namespace, options: DetectOptions, model: Any, subjects: list,
                         out: Path) -> list[dict]:
    """The subjects on the chosen executor (local threads or Ray), with a progress bar on stderr."""
    from tqdm import tqdm

    from FCDDetectLib.cohort.runner import run_cohort
    from FCDDetectLib.errors import FCDInputError

    with tqdm(total=len(subjects), desc="fcd detect", unit="subject", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int, row: dict) -> None:
            bar.set_postfix_str(f"{row['subject']} {row['status']}")
            bar.update(1)

        if args.executor == "ray":
            from FCDDetectLib.cohort.ray_runner import run_cohort_ray

            rows = run_cohort_ray(
                model, subjects, out, options=options, workers=args.workers,
                gpus_per_worker=args.gpus_per_task or 0.0, cpus_per_worker=args.cpus_per_task or 1.0,
                address=args.ray_address or os.environ.get("RAY_ADDRESS"), max_retries=args.max_retries,
                progress=progress, resume=not args.no_resume,
            )
        else:
            if args.ray_address or args.gpus_per_task:
                raise FCDInputError("--ray-address and --gpus-per-worker: only with --executor ray")
            rows = run_cohort(
                model, subjects, out, options=options, workers=args.workers or 1, progress=progress,
                resume=not args.no_resume,
            )
    return rows
