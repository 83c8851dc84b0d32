"""Localized, signed SmoothGrad: which input modality carries the evidence inside each region.

After Spagnolo et al. (FLAIR vs MPRAGE, localized saliency; ``docs/saliency.md``):

- SmoothGrad over ``nt_samples`` noisy copies (default 50) with Gaussian noise of sd
  ``noise_sd`` (default 0.05) x (max - min) of the model input (all channels together);
- the gradient is kept **signed** and **per input channel** (one map per modality);
- the *target* is the FCD logit of the classifier, log(p / (1 - p)) of p(FCD)
  (:func:`classifier_logit`), or, for a
  model with a lesion head, the lesion logits summed over the region
  (:func:`lesion_logits_in_region`; one SmoothGrad pass per region); any callable
  ``target(output, region_weights) -> (N,)`` can be passed;
- per region and per modality: the sum of the positive and of the negative values inside
  the region divided by its voxel count, the same in a band of ``band_mm`` (default 3 mm,
  at least one voxel) around it, and the modality's share of the total ``|positive| + |negative|`` inside.

Regions live on the reference input's grid: the connected components of an ROI
(26-connectivity), the clusters of a map, or the whole head (:func:`brain_region`).
The targets are in :mod:`FCDDetectLib.explain.saliency_targets`; the regions and the per-region
figures in :mod:`FCDDetectLib.explain.saliency_regions`. This module takes the gradients.

Gradients are taken with captum ``NoiseTunnel(Saliency(f), ...)`` with ``abs=False``:
``Saliency`` returns d f / d input for every input element, channels apart, and ``f``
reduces the network output to one number per noisy copy (the target). The noise is drawn by
captum from torch's generator, seeded with ``seed`` inside ``torch.random.fork_rng`` (the
caller's RNG state is left as it was), so a run is reproducible. The maps are computed on
the model grid (units: logit per unit of the z-scored input) and mapped back onto the input
grid with :func:`FCDDetectLib.grid.preprocess.to_input_grid` (linear, 0 outside the model's
field of view). Their values are not normalised: the sign and the magnitude are the result.

Example:
    >>> from FCDDetectLib.explain.localized_smoothgrad import localized_smoothgrad
    >>> from FCDDetectLib.explain.saliency_regions import roi_regions
    >>> regions = roi_regions(roi_image, prep.reference)  # doctest: +SKIP
    >>> sal = localized_smoothgrad(net, prep, ["t1", "flair"], regions, class_index=1)  # doctest: +SKIP
    >>> sal.regions[0].modalities[1].positive  # FLAIR, positive gradients per voxel  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.saliency_regions import (
    DEFAULT_BAND_MM,
    Region,
    RegionContributions,
    detection_regions,
    region_contributions,
)
from FCDDetectLib.explain.saliency_targets import (
    Target,
    classifier_logit,
    lesion_logits,
    lesion_logits_in_region,
)
from FCDDetectLib.io.image_io import Image

DEFAULT_NT_SAMPLES = 50
"""Noisy copies per SmoothGrad (Spagnolo et al.: 50)."""
MAX_NT_SAMPLES = 1000
"""Most noisy copies accepted: 20 times the default. Smilkov et al. (SmoothGrad, 2017) saw the maps stop changing
visibly beyond about 50 copies, and each copy costs one forward and one backward pass of a 3D network (per
region with ``lesion-logits``), so more only adds time: a typo such as 50000 would run for many hours."""
DEFAULT_NOISE_SD = 0.05
"""Noise sd as a fraction of the model input's value range (Spagnolo et al.: 0.05)."""
DEFAULT_SEED = 0
TARGETS = ("fcd-logit", "lesion-logits")


@dataclass
class LocalizedSaliency:
    """Signed SmoothGrad maps (modality -> (X, Y, Z) float32 on the input grid, ``affine``) and
    the per-region contributions."""

    maps: dict[str, np.ndarray]
    affine: np.ndarray
    regions: list[RegionContributions]
    target: str
    nt_samples: int
    noise_sd: float
    noise_stdev: float
    band_mm: float
    seed: int
    units: str = "logit per unit of z-scored input, per voxel"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``modality_contributions`` section of ``result.json``."""
        return {
            "method": "localized signed SmoothGrad (captum NoiseTunnel + Saliency, abs=False)",
            "target": self.target, "nt_samples": self.nt_samples, "noise_sd": self.noise_sd,
            "noise_stdev": self.noise_stdev, "band_mm": self.band_mm, "seed": self.seed, "units": self.units,
            "maps": {m: f"smoothgrad_{m}.nii.gz" for m in self.maps},
            "regions": [r.to_json() for r in self.regions], "notes": list(self.notes),
        }


def check_options(nt_samples: int, noise_sd: float, band_mm: float = DEFAULT_BAND_MM) -> None:
    """FCDInputError unless 1 <= ``nt_samples`` <= :data:`MAX_NT_SAMPLES`, ``noise_sd`` >= 0 and ``band_mm`` >= 0 (all finite).

    Example:
        >>> check_options(50, 0.05)
    """
    if isinstance(nt_samples, bool) or not isinstance(nt_samples, (int, np.integer)) or not 1 <= nt_samples <= MAX_NT_SAMPLES:
        raise FCDInputError(f"SmoothGrad: nt_samples must be an integer from 1 to {MAX_NT_SAMPLES}, got {nt_samples!r} "
                            f"(the maps stop changing beyond about 50)")
    if not (isinstance(noise_sd, (int, float)) and math.isfinite(noise_sd)) or noise_sd < 0:
        raise FCDInputError(f"SmoothGrad: noise sd must be a finite number >= 0, got {noise_sd!r}")
    if not (isinstance(band_mm, (int, float)) and math.isfinite(band_mm)) or band_mm < 0:
        raise FCDInputError(f"SmoothGrad: band width must be a finite number of mm >= 0, got {band_mm!r}")


# ---------------------------------------------------------------- SmoothGrad


def signed_smoothgrad(
    model: Any, x: Any, target: Target, weights: Any = None, *, nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_stdev: float, seed: int = DEFAULT_SEED, batch_size: int = 1,
) -> Any:
    """Mean signed input gradient of ``target(model(x + noise), weights)`` over ``nt_samples``
    noisy copies: a (C, X, Y, Z) tensor on ``x``'s grid (``x`` is (1, C, X, Y, Z)).

    captum ``NoiseTunnel`` (``nt_type="smoothgrad"``) over ``Saliency(abs=False)``; the noise,
    sd ``noise_stdev`` in the input's units, comes from torch's generator seeded with ``seed``
    (the caller's RNG state is restored). The model must be in eval mode. Progress (one step per
    noisy copy) shows as a bar on stderr when it is a terminal.

    Example:
        >>> g = signed_smoothgrad(net, x, classifier_logit(1), nt_samples=4, noise_stdev=0.3)  # doctest: +SKIP
        >>> g.shape  # doctest: +SKIP
        torch.Size([2, 96, 112, 96])
    """
    import sys

    import torch
    from captum.attr import NoiseTunnel, Saliency
    from tqdm import tqdm

    with tqdm(total=int(nt_samples), desc="SmoothGrad", unit="copy", file=sys.stderr, disable=None,
              leave=False) as bar:

        def forward(noisy: Any) -> Any:
            bar.update(int(noisy.shape[0]))  # one call per batch of noisy copies
            return target(model(noisy), weights)

        inputs = x.detach().clone().requires_grad_(True)
        devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(int(seed))
            grads = NoiseTunnel(Saliency(forward)).attribute(
                inputs, nt_type="smoothgrad", nt_samples=int(nt_samples), nt_samples_batch_size=int(batch_size),
                stdevs=float(noise_stdev), abs=False,
            )
    return grads.detach()[0]


def _region_on_model_grid(region: np.ndarray, prep: Any) -> np.ndarray:
    """The share of each model voxel covered by ``region`` (input grid), by linear resampling."""
    from scipy import ndimage

    to_input = np.linalg.inv(np.asarray(prep.reference.affine, float)) @ np.asarray(prep.model_affine, float)
    return ndimage.affine_transform(
        region.astype(np.float32), to_input[:3, :3], offset=to_input[:3, 3], output_shape=tuple(prep.shape),
        output=np.float32, order=1, mode="constant", cval=0.0,
    )


# ---------------------------------------------------------------- the whole computation


def localized_smoothgrad(
    model: Any, prep: Any, modalities: Sequence[str], regions: Sequence[Region], *,
    target: str | Target = "fcd-logit", class_index: int = 1, nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_sd: float = DEFAULT_NOISE_SD, band_mm: float = DEFAULT_BAND_MM, seed: int = DEFAULT_SEED,
    batch_size: int = 1,
) -> LocalizedSaliency:
    """Signed SmoothGrad maps per modality on the input grid and the contributions of ``regions``.

    ``prep`` is the :class:`~FCDDetectLib.grid.preprocess.Preprocessed` input; ``regions`` lie on
    ``prep.reference``'s grid. ``target``: ``"fcd-logit"`` (:func:`classifier_logit` of
    ``class_index``; one SmoothGrad for all regions), ``"lesion-logits"``
    (:func:`lesion_logits_in_region`; one SmoothGrad per region, the written map is their sum)
    or a callable ``target(output, weights)`` (called with the region's model-grid weights, one
    pass per region). Checks everything before the first gradient.

    Example:
        >>> sal = localized_smoothgrad(net, prep, ["flair"], [brain_region(prep.reference)])  # doctest: +SKIP
    """
    import torch

    from FCDDetectLib.explain.cams import clean_model
    from FCDDetectLib.grid.input_grid import to_input_grid

    check_options(nt_samples, noise_sd, band_mm)
    if len(modalities) != int(prep.tensor.shape[0]):
        raise FCDInputError(f"{len(modalities)} modality name(s) for a {int(prep.tensor.shape[0])}-channel input")
    if not regions:
        raise FCDInputError("localized SmoothGrad: no region given")
    shape = tuple(np.asarray(prep.reference.array).shape[:3])
    for region in regions:
        if tuple(region.mask.shape) != shape:
            raise FCDInputError(f"region {region.name}: shape {region.mask.shape} is not the input grid {shape}")
        if not np.any(region.mask):
            raise FCDInputError(f"region {region.name}: has no voxels")
    if isinstance(target, str):
        if target not in TARGETS:
            raise FCDInputError(f"SmoothGrad target {target!r}: choose one of {', '.join(TARGETS)}")
        target_name = target
        per_region = target == "lesion-logits"
        target_fn = lesion_logits_in_region if per_region else classifier_logit(class_index)
    else:
        target_name, per_region, target_fn = getattr(target, "__name__", "custom"), True, target

    parameter = next(model.parameters())
    x = prep.tensor.unsqueeze(0).to(device=parameter.device, dtype=parameter.dtype)
    spread = float((x.max() - x.min()).detach())
    noise_stdev = noise_sd * spread if spread > 0 else noise_sd
    weights_of = {}
    if per_region:
        for region in regions:
            weights = _region_on_model_grid(region.mask, prep)
            if not weights.any():
                raise FCDInputError(f"region {region.name}: does not reach the model grid (outside its field of view)")
            weights_of[region.name] = torch.from_numpy(weights).to(x.device, x.dtype)

    def run(weights: Any) -> dict[str, np.ndarray]:
        grads = signed_smoothgrad(model, x, target_fn, weights, nt_samples=nt_samples, noise_stdev=noise_stdev,
                                  seed=seed, batch_size=batch_size).float().cpu().numpy()
        return {m: to_input_grid(grads[c], prep) for c, m in enumerate(modalities)}

    affine = np.asarray(prep.reference.affine, np.float64)
    with clean_model(model):
        if per_region:
            results, maps = [], {m: np.zeros(shape, np.float32) for m in modalities}
            for region in regions:
                region_maps = run(weights_of[region.name])
                results.append(region_contributions(region_maps, region, affine, band_mm))
                for m in modalities:
                    maps[m] += region_maps[m]
        else:
            maps = run(None)
            results = [region_contributions(maps, region, affine, band_mm) for region in regions]
    notes = ["the maps are the sum of the per-region SmoothGrads"] if per_region and len(regions) > 1 else []
    return LocalizedSaliency(maps=maps, affine=affine, regions=results, target=target_name, nt_samples=int(nt_samples),
                             noise_sd=float(noise_sd), noise_stdev=float(noise_stdev), band_mm=float(band_mm),
                             seed=int(seed), notes=notes)


def localize_detection(model: Any, prep: Any, modalities: Sequence[str], class_index: int, *,
                       roi: Image | None = None, clusters: Any = None, heatmap: np.ndarray | None = None,
                       roi_name: str = "ROI", target: str | Target | None = None,
                       nt_samples: int = DEFAULT_NT_SAMPLES, noise_sd: float = DEFAULT_NOISE_SD,
                       band_mm: float = DEFAULT_BAND_MM, seed: int = DEFAULT_SEED) -> LocalizedSaliency:
    """:func:`localized_smoothgrad` over :func:`detection_regions`, as ``fcd detect`` runs it.

    ``target`` None: ``"lesion-logits"`` when the model's output carries a lesion map (a
    lesion-supervised bundle), else ``"fcd-logit"``.

    Example:
        >>> sal = localize_detection(net, prep, ["flair"], 1, roi=roi_image)  # doctest: +SKIP
    """
    import torch

    check_options(nt_samples, noise_sd, band_mm)
    regions, notes = detection_regions(prep, roi=roi, clusters=clusters, heatmap=heatmap, roi_name=roi_name)
    if target is None:
        parameter = next(model.parameters())
        with torch.no_grad():
            probe = model(prep.tensor[None].to(device=parameter.device, dtype=parameter.dtype))
        target = "fcd-logit"
        try:
            lesion_logits(probe)
            target = "lesion-logits"
        except FCDInputError:
            pass
    result = localized_smoothgrad(model, prep, modalities, regions, target=target, class_index=class_index,
                                  nt_samples=nt_samples, noise_sd=noise_sd, band_mm=band_mm, seed=seed)
    result.notes[:0] = notes
    return result
