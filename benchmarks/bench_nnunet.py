"""nnU-Net v2 beside our lesion model: same cohort, same folds, same wall-clock budget, same lesion-level code.

Users who want an FCD segmentation reach for nnU-Net (Isensee et al., *nnU-Net*, Nature Methods
18, 2021). This script trains its ``3d_fullres`` configuration on the folds of a
``bench_lesion.py`` run and scores its segmentations of each fold's held-out subjects with the
engine's lesion-level code (:func:`FCDDetectLib.maps.clusters.find_clusters` at the engine's
defaults, 0.5 and 50 mm3, then :func:`FCDDetectLib.maps.lesion_metrics.subject_lesion_metrics`),
exactly as our models' maps are scored.

- **Data**: the cohort's FLAIRs as ``imagesTr/<subject>_0000.nii.gz`` and their ROIs (0/1, on the
  FLAIR's grid; all zero for controls) as ``labelsTr``; ``splits_final.json`` holds our folds'
  training and validation subjects, so nnU-Net never sees a fold's test subjects.
- **Budget**: each fold trains for the wall-clock seconds our lesion model's fold took
  (``--budget`` seconds, else the sum of the epoch times in ``RUN/fold-K/history.json``). The
  trainer is nnU-Net's own (poly learning rate, SGD with Nesterov momentum, deep supervision,
  foreground oversampling, its augmentations); only its length changes: 50 iterations per
  epoch (nnU-Net: 250) and 10 validation iterations (50) so that the budget is met to within
  an epoch, and after the first epoch the number of epochs (and so the poly schedule's length)
  is set to what fits in the budget.
- **Inference**: nnU-Net's sliding-window predictor on each test FLAIR, without mirroring (test
  time augmentation costs 8 forward passes; our detection makes one).
- **Evidence**: nnU-Net has no subject-level score; the ROC-AUC uses our definition on its
  segmentation (the largest cluster's peak x volume = its volume, since a segmentation is 0/1).

nnU-Net is a benchmark-only extra. ``pip install nnunetv2`` would replace torch (its
``timm``/``torchvision`` dependencies pull another torch), so install it beside the project
with ``--no-deps`` and only its light dependencies (this is how it was run here)::

    pip install --no-deps --target /tmp/nnunet-pkgs nnunetv2==2.8.1 acvl_utils==0.2.6 \\
        dynamic_network_architectures==0.4.4 batchgenerators==0.25.5 batchgeneratorsv2==0.3.6 \\
        blosc2==3.6.1 ndindex einops connected-components-3d scikit-image lazy-loader imageio tifffile \\
        yacs graphviz seaborn unittest2 traceback2 linecache2 future six numexpr py-cpuinfo
    PYTHONPATH=$PYTHONPATH:/tmp/nnunet-pkgs python benchmarks/bench_nnunet.py --run benchmarks/.bench-lesion/run-lesion

Example:
    $ nice -n 10 python benchmarks/bench_nnunet.py --run /tmp/work/run-lesion --work /tmp/nnunet --folds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

DATASET_ID = 527
DATASET_NAME = f"Dataset{DATASET_ID:03d}_FCDSynth"
FIGURES = ("detection_rate", "specificity", "fp_per_patient", "fp_per_control", "cluster_ppv", "dice_mean",
           "n_patients", "n_controls")


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the lesion run folder of bench_lesion.py (config, folds)")
    parser.add_argument("--work", default="benchmarks/.bench-nnunet", help="nnUNet_raw/preprocessed/results here")
    parser.add_argument("--folds", type=int, nargs="+", help="folds to run (default: every fold of the run)")
    parser.add_argument("--budget", type=float, help="training seconds per fold (default: the lesion fold's)")
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--key", default="nnunet_side_by_side")
    parser.add_argument("--results", default="benchmarks/results-lesion-cpu.json")
    return parser.parse_args()


def _environment(work: Path) -> None:
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
    os.environ.setdefault("nnUNet_n_proc_DA", "1")  # one augmentation worker: a shared 2-core CPU


def _write_raw(subjects: list[Any], raw: Path) -> None:
    """imagesTr / labelsTr / dataset.json (the ROI on the FLAIR's grid, nearest neighbour, 0/1)."""
    import nibabel as nib
    import numpy as np
    from FCDDetectLib.grid.geometry import mask_onto_grid, same_grid
    from FCDDetectLib.io.image_io import Image, load_image, load_mask
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    images, labels = raw / "imagesTr", raw / "labelsTr"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        target = labels / f"{subject.subject_id}.nii.gz"
        if target.is_file():
            continue
        flair = nib.load(subject.images["flair"])
        nib.save(flair, images / f"{subject.subject_id}_0000.nii.gz")
        mask = np.zeros(flair.shape[:3], np.uint8)
        if int(subject.label) == 1 and subject.roi is not None:
            reference = load_image(subject.images["flair"])
            roi = load_mask(subject.roi)
            grid = Image(np.zeros(reference.array.shape, np.uint8), reference.affine)
            on_grid = roi.array > 0.5 if same_grid(roi, grid) else mask_onto_grid(roi, grid)
            mask = on_grid.astype(np.uint8)
        nib.save(nib.Nifti1Image(mask, flair.affine, flair.header), target)
    generate_dataset_json(str(raw), channel_names={0: "FLAIR"}, labels={"background": 0, "lesion": 1},
                          num_training_cases=len(subjects), file_ending=".nii.gz", dataset_name=DATASET_NAME)


def _budget_trainer():
    """nnU-Net's trainer with a wall-clock budget (the schedule's length fitted after the first epoch)."""
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    cpu = torch.device("cpu")

    class BudgetTrainer(nnUNetTrainer):
        budget_seconds = 600.0
        iterations = 50

        # nnU-Net records its __init__ arguments by name (locals()): the same signature, spelled out
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = cpu) -> None:
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch = self.iterations
            self.num_val_iterations_per_epoch = max(1, self.iterations // 5)

        def run_training(self) -> None:
            self.on_train_start()
            started = time.perf_counter()
            epoch = self.current_epoch
            while epoch < self.num_epochs:
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
                self.on_train_epoch_end(outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    outputs = [self.validation_step(next(self.dataloader_val))
                               for _ in range(self.num_val_iterations_per_epoch)]
                    self.on_validation_epoch_end(outputs)
                self.on_epoch_end()
                epoch = self.current_epoch
                spent = time.perf_counter() - started
                if epoch == 1:  # the schedule's length: as many epochs as the budget holds
                    self.num_epochs = max(2, int(self.budget_seconds // max(spent, 1e-3)))
                    self.lr_scheduler.max_steps = self.num_epochs
                if spent >= self.budget_seconds:
                    break
            self.epochs_run, self.seconds_spent = epoch, time.perf_counter() - started
            self.on_train_end()

    # nnU-Net's predictor finds a trainer class by name inside its own package: put it there
    trainer_module.BudgetTrainer = BudgetTrainer
    return BudgetTrainer


def _train_fold(fold: int, budget: float, iterations: int, work: Path) -> dict[str, Any]:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    preprocessed = work / "nnUNet_preprocessed" / DATASET_NAME
    trainer_class = _budget_trainer()
    trainer_class.budget_seconds, trainer_class.iterations = float(budget), int(iterations)
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False  # what nnunetv2.run.run_training sets before building a trainer
    trainer = trainer_class(plans=plans, configuration="3d_fullres",
                            fold=fold, dataset_json=load_json(str(preprocessed / "dataset.json")),
                            device=torch.device("cpu"))
    final = Path(trainer.output_folder) / "checkpoint_final.pth"
    if final.is_file():
        return {"fold": fold, "resumed": True, "model_folder": str(Path(trainer.output_folder).parent)}
    t0 = time.perf_counter()
    trainer.run_training()
    return {"fold": fold, "epochs_run": trainer.epochs_run, "train_seconds": round(trainer.seconds_spent, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1), "budget_seconds": budget,
            "iterations_per_epoch": iterations, "patch_size": trainer.configuration_manager.patch_size,
            "model_folder": str(Path(trainer.output_folder).parent)}


def _predict(fold: int, model_folder: str, subjects: list[Any], out: Path) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    _budget_trainer()  # registered by name for the predictor
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in subjects if not (out / f"{s.subject_id}.nii.gz").is_file()]
    if not todo:
        return
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder, use_folds=(fold,), checkpoint_name="checkpoint_final.pth")
    predictor.predict_from_files([[str(s.images["flair"])] for s in todo], [str(out / s.subject_id) for s in todo],
                                 save_probabilities=False, overwrite=True, num_processes_preprocessing=1,
                                 num_processes_segmentation_export=1)


def _score(subjects: list[Any], out: Path) -> dict[str, Any]:
    """Lesion-level figures of nnU-Net's segmentations with the engine's code (defaults 0.5, 50 mm3)."""
    import nibabel as nib
    import numpy as np
    from FCDDetectLib.io.image_io import load_mask
    from FCDDetectLib.maps.clusters import find_clusters
    from FCDDetectLib.maps.lesion_evidence import evidence_score
    from FCDDetectLib.maps.lesion_metrics import cohort_lesion_metrics, subject_lesion_metrics
    from FCDTrainLib.training.fold_model import roc_auc_or_nan

    rows, scores, labels = [], [], []
    for subject in subjects:
        # nibabel, not load_image: a segmentation with no lesion is all zero, which load_image refuses
        segmentation = nib.load(str(out / f"{subject.subject_id}.nii.gz"))
        lesion = (np.asarray(segmentation.dataobj) > 0.5).astype(np.float32)
        clusters = find_clusters(lesion, segmentation.affine)
        roi = subject.roi if int(subject.label) == 1 else None
        roi_image = load_mask(roi) if roi is not None else None
        rows.append({**subject_lesion_metrics(lesion, segmentation.affine, clusters, roi_image),
                     "label": int(subject.label)})
        scores.append(evidence_score(clusters))
        labels.append(int(subject.label))
    figures = {k: v for k, v in cohort_lesion_metrics(rows).items() if k in FIGURES}
    figures["lesion_evidence_roc_auc"] = roc_auc_or_nan(np.asarray(labels), np.asarray(scores))
    return figures


def main() -> int:
    args = _options()
    work = Path(args.work).resolve()
    _environment(work)  # before nnunetv2 is imported: it reads these at import
    from FCDDetectLib.io.atomic_files import write_json_atomic
    from FCDTrainLib.data.dataset_loader import load_dataset
    from FCDTrainLib.run_folder.run_config import load_config
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    run = Path(args.run)
    config = load_config(run)
    subjects = {s.subject_id: s for s in load_dataset(config.data).subjects}
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    raw = work / "nnUNet_raw" / DATASET_NAME
    t0 = time.perf_counter()
    _write_raw(list(subjects.values()), raw)
    preprocessed = work / "nnUNet_preprocessed" / DATASET_NAME
    if not (preprocessed / "nnUNetPlans.json").is_file():
        extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=True)
        plan_experiments([DATASET_ID])
    if not (preprocessed / "nnUNetPlans_3d_fullres").is_dir():
        preprocess([DATASET_ID], configurations=("3d_fullres",), num_processes=(1,))
    write_json_atomic(preprocessed / "splits_final.json", [{"train": f["train"], "val": f["val"]} for f in folds])
    preparation = round(time.perf_counter() - t0, 1)
    entry: dict[str, Any] = {"note": "synthetic data (fcd synth); nnU-Net v2.8.1 3d_fullres, CPU, same folds and "
                             "budget as the lesion run; lesion-level code and defaults of the engine (0.5, 50 mm3)",
                             "date": time.strftime("%Y-%m-%d"), "run": str(run), "preparation_seconds": preparation,
                             "per_fold": {}}
    for split in folds:
        fold = int(split["fold"])
        if args.folds and fold not in args.folds:
            continue
        history = run / f"fold-{fold}" / "history.json"
        budget = args.budget or (sum(h["seconds"] for h in json.loads(history.read_text(encoding="utf-8"))) if history.is_file() else None)
        if budget is None:
            print(f"fold {fold}: no lesion history and no --budget; skipped", flush=True)
            continue
        trained = _train_fold(fold, budget, args.iterations, work)
        test = [subjects[i] for i in split["test"]]
        predictions = work / "predictions" / f"fold-{fold}"
        _predict(fold, trained["model_folder"], test, predictions)
        figures = {**_score(test, predictions), "training": trained}
        entry["per_fold"][fold] = figures
        print(json.dumps({f"nnU-Net fold {fold}": figures}), flush=True)
        target = Path(args.results)
        results = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
        results[args.key] = {**results.get(args.key, {}), **entry,
                             "per_fold": {**results.get(args.key, {}).get("per_fold", {}),
                                          **{str(k): v for k, v in entry["per_fold"].items()}}}
        write_json_atomic(target, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
