"""Probe: can a whole-brain ResNet-18 trained from scratch learn the synthetic FCD lesions?

Generates ``--subjects`` synthetic subjects in memory (half patients, FLAIR only), brings
them onto the demo's model grid with the engine's preprocessing, then:

- scores the trivial rule "brightest voxel" (ROC-AUC on all subjects): is the lesion in
  what the network sees?
- trains a ResNet-18 (``medicalnet`` geometry) on the first 80% and reports, per epoch, the
  training loss and the ROC-AUC on the other 20%; ``--flip`` and ``--shift`` add the
  training augmentation of ``fcd train --flip --shift`` (``--rotation`` its rotations).

Prints one JSON line per epoch and records the run in ``benchmarks/results-learnability.json``
under a key made of its options (earlier runs with other options are kept). This is how the
README's statements about what the demo's network can learn were checked.

Usage:
    python benchmarks/probe_learnability.py --subjects 200 --epochs 25 --flip --shift 4
    python benchmarks/probe_learnability.py --subjects 200 --epochs 25        # no augmentation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def make_inputs(n_subjects: int, subtlety: float, seed: int, spacing, shape) -> tuple[np.ndarray, np.ndarray]:
    from FCDDetectLib.grid.preprocess import preprocess
    from FCDTrainLib.data.synth.protocols import PROTOCOLS
    from FCDTrainLib.data.synth.subject import make_subject

    arrays, labels = [], []
    for index in range(n_subjects):
        label = index % 2
        subject = make_subject(np.random.default_rng([seed, index]), PROTOCOLS["new"], "small", bool(label), subtlety)
        arrays.append(preprocess([subject.flair], spacing, shape).tensor.numpy())
        labels.append(label)
    return np.stack(arrays), np.array(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--subtlety", type=float, default=0.0)
    parser.add_argument("--width", type=float, default=0.25, help="widen factor of the ResNet-18")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flip", action="store_true", help="mirror half of the training volumes left-right")
    parser.add_argument("--shift", type=float, default=0.0, help="random shifts up to +/- this many voxels")
    parser.add_argument("--rotation", type=float, default=0.0, help="random rotations up to +/- degrees")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from FCDDetectLib.networks.resnets import build_resnet
    from FCDTrainLib.training.augment import random_augment
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    spacing, shape = (4.0, 4.0, 4.0), (48, 56, 48)
    x_all, y_all = make_inputs(args.subjects, args.subtlety, args.seed, spacing, shape)
    brightest = float(roc_auc_score(y_all, x_all.reshape(len(x_all), -1).max(1)))
    print(json.dumps({"subjects": args.subjects, "brightest_voxel_auc": round(brightest, 3),
                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    x, y = torch.from_numpy(x_all), torch.from_numpy(y_all)
    n_train = int(0.8 * len(x))
    train, test = torch.arange(n_train), torch.arange(n_train, len(x))
    torch.manual_seed(args.seed)
    model = build_resnet(18, 1, geometry="medicalnet", widen_factor=args.width)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = train[torch.randperm(n_train, generator=generator)]
        total = 0.0
        for start in range(0, n_train, args.batch_size):
            batch = order[start:start + args.batch_size]
            inputs = random_augment(x[batch], generator, args.rotation, (args.shift,) * 3,
                                    flip_axis=0 if args.flip else None)
            loss = F.cross_entropy(model(inputs), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        with torch.no_grad():
            probabilities = torch.softmax(model(x[test]), 1)[:, 1].numpy()
        row = {"epoch": epoch, "train_loss": round(total / n_train, 4),
               "test_auc": round(float(roc_auc_score(y[test].numpy(), probabilities)), 3),
               "seconds": round(time.perf_counter() - started, 1)}
        epochs.append(row)
        print(json.dumps(row), flush=True)
    report = {"options": vars(args), "brightest_voxel_auc": brightest, "epochs": epochs,
              "model_grid": {"spacing": spacing, "shape": shape}}
    out = Path(__file__).with_name("results-learnability.json")
    runs = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    if "options" in runs:  # the single-run layout of earlier versions
        runs = {}
    key = (f"subjects={args.subjects} subtlety={args.subtlety} width={args.width} lr={args.lr} "
           f"flip={args.flip} shift={args.shift} rotation={args.rotation}")
    runs[key] = report
    out.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
