"""The scanner effects and storage of randomised and rescaled scans (``fcd synth --randomize``, ``--rescale``).

The standard cohort keeps :func:`FCDTrainLib.data.synth.contrast.scanner` (a quadratic bias
field of ~8 % and Rician noise) and int16 storage. A randomised scan takes its effects from
MONAI instead of hand-written code: ``RandBiasField`` (smooth polynomial field of degree 3,
coefficients in +/- ``style.bias``) and ``RandGibbsNoise`` (k-space truncation ringing,
``style.gibbs[modality]``), each seeded from the subject's generator so that the same seed
gives the same files; Rician noise stays ours (MONAI's ``RandRicianNoise`` draws its sigma
relative to the image's own range, we need it relative to white matter). :func:`store`
then applies the intensity scale, offset and storage type.

Example:
    >>> from FCDTrainLib.data.synth.protocols import PROTOCOLS
    >>> from FCDTrainLib.data.synth.scan_style import standard_style
    >>> style = standard_style(PROTOCOLS["new"], {}, 0.02)
    >>> stored, dtype = store(np.full((4, 4, 4), 990.6, np.float32), style, 1.0, 1000.0)
    >>> float(stored[0, 0, 0]), dtype.__name__
    (991.0, 'int16')
"""

from __future__ import annotations

import numpy as np

from FCDTrainLib.data.synth.scan_style import ScanStyle

_INT16_MAX = 32767.0
_TWELVE_BIT = 4095.0


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def random_scanner(image: np.ndarray, rng: np.random.Generator, style: ScanStyle, modality: str,
                   wm_value: float, noise: float) -> np.ndarray:
    """Bias field, Gibbs ringing and Rician noise (sigma ``noise`` x ``wm_value``) on a noise-free image."""
    from monai.transforms import RandBiasField, RandGibbsNoise

    volume = np.asarray(image, np.float32)[None]
    seeds = (_seed(rng), _seed(rng))
    if style.bias > 0:
        bias = RandBiasField(degree=3, coeff_range=(-style.bias, style.bias), prob=1.0)
        bias.set_random_state(seed=seeds[0])
        volume = np.asarray(bias(volume), np.float32)
    alpha = float(style.gibbs.get(modality, 0.0))
    if alpha > 0:
        gibbs = RandGibbsNoise(prob=1.0, alpha=(alpha, alpha))
        gibbs.set_random_state(seed=seeds[1])
        volume = np.abs(np.asarray(gibbs(volume), np.float32))
    sigma = np.float32(noise * wm_value)
    real = volume[0] + rng.normal(0, 1, volume.shape[1:]).astype(np.float32) * sigma
    imaginary = rng.normal(0, 1, volume.shape[1:]).astype(np.float32) * sigma
    return np.sqrt(real * real + imaginary * imaginary)


def store(image: np.ndarray, style: ScanStyle, scale: float, wm_value: float) -> tuple[np.ndarray, type]:
    """``image`` (white matter near ``wm_value``) as stored: (array, numpy dtype to write).

    int16: x ``scale`` x (``style.wm_stored`` / 1000), plus the offset, rounded and clipped to
    0..32767; 12bit: the same, then mapped so the image's maximum is 4095 x ``scale`` / 1.25
    (integers); unit: the same, then divided by its maximum (floats in 0..1).
    """
    data = np.asarray(image, np.float32) * np.float32(scale * style.wm_stored / 1000.0)
    data = data + np.float32(style.offset * wm_value * scale * style.wm_stored / 1000.0)
    if style.storage == "int16":
        return np.round(np.clip(data, 0, _INT16_MAX)).astype(np.float32), np.int16
    peak = max(float(data.max()), 1e-6)
    if style.storage == "12bit":
        return np.round(np.clip(data / peak * _TWELVE_BIT * min(scale, 1.25) / 1.25, 0, _TWELVE_BIT)).astype(np.float32), np.int16
    return (data / peak).astype(np.float32), np.float32
