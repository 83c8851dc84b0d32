"""Tissue maps -> T1-weighted and FLAIR intensities, then scanner effects (bias field, Rician noise).

Relative intensities (WM = 1 in T1w): T1w (MPRAGE) WM 1.00 > GM 0.62 > CSF 0.18, bright
scalp fat, dark skull; FLAIR WM 0.55 < GM 0.78, CSF suppressed (0.08). Each subject gets
its own contrasts (each value x U(0.94, 1.06)), a smooth multiplicative bias field
(quadratic in position, ~8% spread) and Rician noise (1.5-3.5% of WM).

Example:
    >>> c = subject_contrasts(np.random.default_rng(0))
    >>> c["t1"]["wm"] > c["t1"]["gm"] > c["t1"]["csf"], c["flair"]["gm"] > c["flair"]["wm"] > c["flair"]["csf"]
    (True, True)
"""

from __future__ import annotations

import numpy as np

BASE = {
    "t1": {"wm": 1.00, "gm": 0.62, "csf": 0.18, "skull": 0.06, "scalp": 0.85},
    "flair": {"wm": 0.55, "gm": 0.78, "csf": 0.08, "skull": 0.05, "scalp": 0.45},
}
STORED_WM = {"t1": 1000.0, "flair": 1000.0}
"""Stored (int16) intensity of white matter, before bias and noise."""


def subject_contrasts(rng: np.random.Generator, jitter: float = 0.06) -> dict[str, dict[str, float]]:
    """Per-subject tissue intensities: the base values, each x U(1 - jitter, 1 + jitter)."""
    return {
        contrast: {tissue: value * float(rng.uniform(1 - jitter, 1 + jitter)) for tissue, value in values.items()}
        for contrast, values in BASE.items()
    }


def intensity_map(
    tissues: dict[str, np.ndarray], contrast: dict[str, float], added: np.ndarray | None = None
) -> np.ndarray:
    """Noise-free image: sum of tissue fraction x intensity, plus ``added`` (in units of WM intensity)."""
    image = sum(tissues[name] * contrast[name] for name in ("wm", "gm", "csf", "skull", "scalp"))
    if added is not None:
        image = image + added * contrast["wm"]
    return image.astype(np.float32)


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], affine: np.ndarray, spread: float = 0.08) -> np.ndarray:
    """A smooth multiplicative field exp(quadratic in world position), std about ``spread`` over a head."""
    i, j, k = (axis.astype(np.float32) for axis in np.ogrid[: shape[0], : shape[1], : shape[2]])
    x, y, z = ((a[0] * i + a[1] * j + a[2] * k + a[3]) / np.float32(80.0) for a in affine[:3].astype(np.float32))
    terms = [x, y, z, x * x - 0.3, y * y - 0.3, z * z - 0.3, x * y, x * z, y * z]
    coefficients = rng.normal(size=9).astype(np.float32) * np.float32(spread / 1.8)
    log_field = sum(c * term for c, term in zip(coefficients, terms, strict=True))
    return np.exp(np.broadcast_to(log_field, shape)).astype(np.float32)


def scanner(image: np.ndarray, rng: np.random.Generator, affine: np.ndarray, wm_value: float, noise: float) -> np.ndarray:
    """Bias field and Rician noise (sigma = ``noise`` x ``wm_value``) applied to a noise-free image."""
    biased = image * bias_field(rng, image.shape, affine)
    sigma = noise * wm_value
    real = biased + rng.normal(0, sigma, image.shape).astype(np.float32)
    imaginary = rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.sqrt(real * real + imaginary * imaginary)
