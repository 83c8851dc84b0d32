"""``fcd demo``: the whole method on a fresh machine, in minutes, on the CPU.

1. generate a small synthetic FCD-II cohort (ds004199 layout, real MNI152 anatomy);
2. train a ResNet-18 on one fold (the others never see its test subjects);
3. run detection with Grad-CAM on the held-out subjects: heatmap, result.json and an
   overlay PNG per subject;
4. write ``summary.json``: held-out accuracy, ROC-AUC and the mean Heat-Score of the
   held-out patients;
5. with ``lesion=True`` (``fcd demo --lesion``), also train the lesion-supervised model
   (``--supervision lesion``) on a cohort of subtler lesions (``lesion_subtlety``) and put
   both models' held-out figures side by side (``summary.json``'s ``side_by_side``). Off
   by default: it does not fit the demo's few minutes on 2 CPU cores
   (docs/lesion-supervision.md gives the measured time).

Each step resumes: an existing cohort, a finished training fold, or a subject already
detected are kept, so an interrupted demo picks up where it stopped.

Example:
    >>> from FCDTrainLib.experiment.demo import run_demo
    >>> summary = run_demo("demo-output")  # doctest: +SKIP
    >>> summary["held_out"]["roc_auc"]  # doctest: +SKIP
    0.912
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from FCDDetectLib.io.atomic_files import write_json_atomic
from FCDDetectLib.io.image_io import load_image, load_mask

from FCDTrainLib.run_folder.layout import BUNDLE_NAME, RunLayout
from FCDTrainLib.run_folder.run_config import RunConfig
from FCDTrainLib.run_folder.run_files import read_json_object


@dataclass
class DemoOptions:
    """The demo's cohort and where it runs. Training is RunConfig's preset ``"demo"``
    (:data:`FCDTrainLib.run_folder.run_config.PRESETS`; about 6 minutes on 2 CPU cores, docs/demo.md),
    with ``training`` overrides of RunConfig fields on top (e.g. ``{"max_epochs": 1}``).
    """

    subjects: int = 250
    subtlety: float = 0.0
    seed: int = 0
    device: str = "auto"
    training: dict[str, Any] = field(default_factory=dict)
    lesion: bool = False
    lesion_subtlety: float = 0.5
    lesion_subjects: int = 160
    lesion_max_epochs: int = 30

    def run_config(self, data: str | Path, **overrides: Any) -> RunConfig:
        """The demo's RunConfig for the cohort at ``data`` (``overrides`` on top of ``training``)."""
        return RunConfig.preset("demo", data=str(data), seed=self.seed, device=self.device,
                                **{**self.training, **overrides})


def _cohort(out: Path, options: DemoOptions, name: str = "cohort", subjects: int | None = None,
            subtlety: float | None = None) -> Path:
    from tqdm import tqdm

    from FCDTrainLib.data.synth.write_cohort import synth_cohort

    cohort = out / name
    subjects = options.subjects if subjects is None else subjects
    if (cohort / "participants.tsv").is_file():
        print(f"cohort: reusing {cohort}")
        return cohort
    with tqdm(total=subjects, desc="synthetic cohort", unit="subject") as bar:
        synth_cohort(cohort, subjects, seed=options.seed, size="small",
                     subtlety=options.subtlety if subtlety is None else subtlety,
                     progress=lambda done, total: bar.update(done - bar.n))
    return cohort


SIDE_BY_SIDE_KEYS = ("accuracy", "roc_auc", "heat_score", "lesion_detection_rate", "lesion_specificity",
                     "fp_per_control", "peak_in_roi_rate", "dice_mean", "lesion_map_heat_score")


def _lesion_model(out: Path, options: DemoOptions) -> dict[str, Any]:
    """The lesion-supervised model on a subtler cohort (fold 0 held out); its fold figures."""
    cohort = _cohort(out, options, "cohort-subtle", options.lesion_subjects, options.lesion_subtlety)
    _train(cohort, out, options, run_name="run-lesion", supervision="lesion", max_epochs=options.lesion_max_epochs,
           early_stop_patience=options.lesion_max_epochs)
    metrics = read_json_object(RunLayout(out / "run-lesion").metrics(0), "fold metrics")
    return {"cohort_subtlety": options.lesion_subtlety, **{k: metrics.get(k) for k in SIDE_BY_SIDE_KEYS},
            "lesion_level": metrics.get("lesion_level")}


def _train(cohort: Path, out: Path, options: DemoOptions, run_name: str = "run",
           **overrides: Any) -> tuple[Path, list[str]]:
    from FCDTrainLib.experiment.train_run import train_run
    from FCDTrainLib.training.folds import read_folds

    config = options.run_config(cohort, **overrides)
    run = out / run_name
    train_run(config, run, only_fold=0)
    return RunLayout(run).bundle(0), read_folds(RunLayout(run).folds, config.folds)[0].test


def _detect_held_out(cohort: Path, bundle: Path, held_out: list[str], out: Path,
                     options: DemoOptions) -> list[dict[str, Any]]:
    from FCDDetectLib.detection.detect import detect
    from FCDDetectLib.io.output_set import read_output_set
    from FCDDetectLib.outputs.detection_files import write_detection
    from FCDDetectLib.outputs.overlay import render_detection
    from tqdm import tqdm

    from FCDTrainLib.data.dataset_loader import load_dataset

    subjects = {s.subject_id: s for s in load_dataset(cohort).subjects}
    rows = []
    for subject_id in tqdm(held_out, desc="detection (held-out)", unit="subject"):
        subject = subjects[subject_id]
        folder = out / "subjects" / subject_id
        if (folder / "result.json").is_file() and (folder / "overlay.png").is_file():
            result_json = read_output_set(folder)  # checked against its checksums
        else:
            result = detect(bundle, [subject.images["flair"]], roi=subject.roi,
                            method=options.run_config(cohort).explain_method, device=options.device)
            write_detection(result, folder)
            render_detection(result, load_image(subject.images["flair"]), folder / "overlay.png",
                             roi=load_mask(subject.roi) if subject.roi else None,
                             label=f"{subject_id} ({'FCD' if subject.label else 'control'})")
            result_json = result.to_json()
        rows.append({"subject": subject_id, "label": subject.label, **result_json})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out accuracy, sensitivity, specificity, ROC-AUC and the patients' Heat-Scores.

    The same functions as a fold's test metrics (:mod:`FCDTrainLib.evaluation.metrics`: the bundle's
    threshold, sample sd).
    """
    from FCDTrainLib.evaluation.metrics import classification_metrics, summarise_heat

    threshold = float(rows[0]["threshold"]) if rows else 0.5
    metrics = classification_metrics([r["label"] for r in rows], [r["probability"] for r in rows], threshold)
    heat = summarise_heat({r["subject"]: r["heat_score"] for r in rows if r["label"] == 1})
    return {
        "subjects": metrics["n"], "patients": metrics["n_fcd"], "controls": metrics["n_control"],
        "accuracy": metrics["accuracy"], "sensitivity": metrics["sensitivity"],
        "specificity": metrics["specificity"], "roc_auc": metrics["roc_auc"], "threshold": threshold,
        "heat_score_mean": heat["heat_score"], "heat_score_std": heat["heat_score_std"],
        "heat_score_above_1": heat["heat_score_above_1"],
    }


def run_demo(out: str | Path = "demo-output", options: DemoOptions | None = None) -> dict[str, Any]:
    """Run (or resume) the demo into ``out``; returns and writes ``summary.json``."""
    from FCDTrainLib.run_folder.environment import software_environment

    options = options or DemoOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cohort = _cohort(out, options)
    trained_bundle, held_out = _train(cohort, out, options)
    bundle = out / BUNDLE_NAME
    if not bundle.exists():
        tmp = out / f".{BUNDLE_NAME}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(trained_bundle, tmp)
        tmp.rename(bundle)
    rows = _detect_held_out(cohort, bundle, held_out, out, options)
    summary = {
        "held_out": summarise(rows),
        "per_subject": rows,
        "training": read_json_object(RunLayout(out / "run").metrics(0), "fold metrics"),
        "seed": options.seed,
        "options": {"subjects": options.subjects, "subtlety": options.subtlety, "seed": options.seed,
                    "device": options.device, "preset": "demo", "training": options.training,
                    "lesion": options.lesion},
        "config": options.run_config(cohort).to_dict(),
        "environment": software_environment(),
        "seconds": round(time.perf_counter() - started, 1),
        "note": "synthetic data: figures show the pipeline learns planted FCD-like lesions, "
        "not clinical performance",
    }
    if options.lesion:
        training = summary["training"]
        summary["side_by_side"] = {
            "paper": {"cohort_subtlety": options.subtlety, **{k: training.get(k) for k in SIDE_BY_SIDE_KEYS}},
            "lesion": _lesion_model(out, options),
        }
        summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out / "summary.json", summary)
    return summary
