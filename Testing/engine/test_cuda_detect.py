"""Detection on a CUDA GPU gives the CPU's answer (issue 15, item 4).

These tests need a CUDA GPU: on a machine without one (CI, the project's 2-core CPU) they
are skipped, and their verdicts have only been seen where ``benchmarks/gpu/run_checks.sh``
ran them. Tolerances are not measured yet (no GPU has been lent to the project so far):
they allow for cuDNN's TF32 convolutions (about 1e-3 relative error per layer), not for a
different algorithm, and the test prints the figures it saw so that a GPU run records them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from FCDDetectLib.detection.detect import detect
from FCDDetectLib.io.image_io import Image

from Testing.builders.geometry_fixtures import centred_affine
from Testing.builders.planted_model import save_planted_bundle, train_planted_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu/run_checks.sh)"),
]

CENTER = (24, 16, 16)  # on a Grad-CAM cell centre of the planted model's 32^3 grid (see test_detect.py)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_detection_on_cuda_matches_the_cpu(tmp_path, method):
    planted = train_planted_model()
    bundle = save_planted_bundle(planted, tmp_path / "planted.fcdbundle")
    image = Image(planted.make_volume(CENTER), centred_affine((4.0, 4.0, 4.0), planted.shape))  # the bundle's grid
    roi = Image(planted.blob_mask(CENTER), image.affine)

    on_cpu = detect(bundle, [image], roi=roi, method=method, device="cpu")
    on_gpu = detect(bundle, [image], roi=roi, method=method, device="cuda")

    correlation = float(np.corrcoef(on_cpu.heatmap.ravel(), on_gpu.heatmap.ravel())[0, 1])
    print(f"{method}: p(FCD) cpu {on_cpu.probability:.5f} cuda {on_gpu.probability:.5f}; heatmap r {correlation:.5f}; "
          f"Heat-Score cpu {on_cpu.heat_score} cuda {on_gpu.heat_score}")
    assert on_gpu.device == "cuda"
    assert on_gpu.heatmap.shape == on_cpu.heatmap.shape and on_gpu.heatmap.dtype == np.float32
    assert abs(on_gpu.probability - on_cpu.probability) <= 0.02
    assert on_gpu.prediction == on_cpu.prediction
    assert correlation >= 0.98
    assert np.unravel_index(on_gpu.heatmap.argmax(), on_gpu.heatmap.shape) in _near(on_cpu.heatmap)


def _near(heatmap: np.ndarray, within: int = 1) -> set[tuple[int, ...]]:
    """Voxels within ``within`` of the CPU map's maximum (ties included)."""
    peaks = np.argwhere(heatmap >= heatmap.max() - 1e-6)
    offsets = np.stack(np.meshgrid(*[np.arange(-within, within + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return {tuple(int(v) for v in p + o) for p in peaks for o in offsets}
