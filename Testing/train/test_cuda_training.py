"""Training on a CUDA GPU: augmentation on the device, bf16 autocast, resume, bundles (issue 15, item 4).

These tests need a CUDA GPU: on a machine without one (CI, the project's 2-core CPU) they
are skipped, and their verdicts have only been seen where ``benchmarks/gpu/run_checks.sh``
ran them. The rotation's tolerance allows for float32 ``grid_sample`` on another device
(not measured yet: no GPU has been lent to the project so far).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from FCDDetectLib.cli import main
from FCDDetectLib.networks.bundle import load_bundle
from FCDTrainLib.training.augment import random_rotate
from FCDTrainLib.training.fold_model import autocast_context

from Testing.builders.train_fixtures import train_args, write_cohort

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu/run_checks.sh)"),
]


def test_rotation_on_the_gpu_draws_the_cpu_angles_and_resamples_alike():
    batch = torch.randn(3, 1, 20, 24, 20, generator=torch.Generator().manual_seed(1))
    on_cpu = random_rotate(batch, 15.0, torch.Generator().manual_seed(7))
    on_gpu = random_rotate(batch.cuda(), 15.0, torch.Generator().manual_seed(7))
    assert on_gpu.device.type == "cuda"
    difference = float((on_gpu.cpu() - on_cpu).abs().max())
    print(f"largest difference cpu/cuda rotation: {difference:.2e}")
    assert difference <= 1e-3


def test_training_policy_on_cuda_is_bf16_autocast():
    with autocast_context(torch.device("cuda")):
        out = torch.nn.Linear(4, 4).cuda()(torch.randn(2, 4, device="cuda"))
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("supervision", ["none", "lesion"])
def test_a_fold_trains_on_cuda_resumes_and_its_bundle_detects_on_both_devices(tmp_path, supervision):
    from FCDDetectLib.detection.detect import detect

    cohort = write_cohort(tmp_path / "cohort", n_fcd=6, n_hc=6, seed=5)
    args = train_args(cohort, tmp_path / "run", "--fold", "0", "--supervision", supervision, "--device", "cuda",
                      epochs=3)
    assert main(args) == 0
    fold = tmp_path / "run" / "fold-0"
    metrics = json.loads((fold / "metrics.json").read_text(encoding="utf-8"))
    history = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    epochs = [event for event in history if event.get("event") == "epoch"]
    assert epochs and all(math.isfinite(event["train_loss"]) for event in epochs)
    before = (fold / "model.fcdbundle").stat().st_mtime_ns
    assert main(args) == 0  # a finished fold is not trained again
    assert (fold / "model.fcdbundle").stat().st_mtime_ns == before
    bundle = load_bundle(fold / "model.fcdbundle", device="cpu")  # saved from the GPU, loads on the CPU
    image = next(cohort.glob("sub-*/anat/*FLAIR.nii.gz"))
    on_cpu = detect(bundle, [image], device="cpu")
    on_gpu = detect(fold / "model.fcdbundle", [image], device="cuda")
    print(f"{supervision}: metrics {metrics.get('test', metrics)}; p(FCD) cpu {on_cpu.probability:.5f} "
          f"cuda {on_gpu.probability:.5f}")
    assert abs(on_cpu.probability - on_gpu.probability) <= 0.02
