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

Gradients are taken with captum ``NoiseTunnel(Saliency(f), ...)`` with ``abs=False``:
``Saliency`` returns d f / d input for every input element, channels apart, and ``f``
reduces the network output to one number per noisy copy (the target). The noise is drawn by
captum from torch's generator, seeded with ``seed`` inside ``torch.random.fork_rng`` (the
caller's RNG state is left as it was), so a run is reproducible. The maps are computed on
the model grid (units: logit per unit of the z-scored input) and mapped back onto the input
grid with :func:`FCDDetectLib.preprocess.to_input_grid` (linear, 0 outside the model's
field of view). Their values are not normalised: the sign and the magnitude are the result.

Example:
    >>> from FCDDetectLib.localized_saliency import localized_smoothgrad, roi_regions
    >>> regions = roi_regions(roi_image, prep.reference)  # doctest: +SKIP
    >>> sal = localized_smoothgrad(net, prep, ["t1", "flair"], regions, class_index=1)  # doctest: +SKIP
    >>> sal.regions[0].modalities[1].positive  # FLAIR, positive gradients per voxel  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FCDInputError
from .geometry import voxel_sizes
from .image_io import Image

DEFAULT_NT_SAMPLES = 50
"""Noisy copies per SmoothGrad (Spagnolo et al.: 50)."""
DEFAULT_NOISE_SD = 0.05
"""Noise sd as a fraction of the model input's value range (Spagnolo et al.: 0.05)."""
DEFAULT_BAND_MM = 3.0
"""Width of the band around a region (mm): about one to two voxels of a clinical 3D scan."""
DEFAULT_SEED = 0
TARGETS = ("fcd-logit", "lesion-logits")

Target = Callable[[Any, Any], Any]
"""``target(model_output, region_weights_or_None) -> tensor (N,)``, one value per noisy copy."""


@dataclass
class Region:
    """A set of voxels on the reference input grid (``mask``, bool) with a name and its kind
    (``"roi-component"``, ``"cluster"`` or ``"brain"``)."""

    name: str
    kind: str
    mask: np.ndarray


@dataclass
class ModalityContribution:
    """One modality's signed gradients in one region (values per voxel, see the module docstring)."""

    modality: str
    positive: float
    negative: float
    band_positive: float | None
    band_negative: float | None
    share: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RegionContributions:
    """The contributions of every modality inside one region and in the band around it."""

    name: str
    kind: str
    voxels: int
    band_voxels: int
    volume_mm3: float
    modalities: list[ModalityContribution]
    band_mm: float = DEFAULT_BAND_MM

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "voxels": self.voxels, "band_voxels": self.band_voxels,
            "band_mm": self.band_mm, "volume_mm3": round(self.volume_mm3, 3),
            "modalities": [m.to_json() for m in self.modalities],
        }


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
    """FCDInputError unless ``nt_samples`` >= 1, ``noise_sd`` >= 0 and ``band_mm`` >= 0 (all finite).

    Example:
        >>> check_options(50, 0.05)
    """
    if isinstance(nt_samples, bool) or not isinstance(nt_samples, (int, np.integer)) or nt_samples < 1:
        raise FCDInputError(f"SmoothGrad: nt_samples must be an integer >= 1, got {nt_samples!r}")
    if not (isinstance(noise_sd, (int, float)) and math.isfinite(noise_sd)) or noise_sd < 0:
        raise FCDInputError(f"SmoothGrad: noise sd must be a finite number >= 0, got {noise_sd!r}")
    if not (isinstance(band_mm, (int, float)) and math.isfinite(band_mm)) or band_mm < 0:
        raise FCDInputError(f"SmoothGrad: band width must be a finite number of mm >= 0, got {band_mm!r}")


# ---------------------------------------------------------------- targets


def _class_logits(output: Any) -> Any:
    """The (N, K) class logits of a model output: a tensor, a (logits, lesion) pair or a dict."""
    if isinstance(output, dict):
        for key in ("logits", "class_logits", "classification"):
            if key in output:
                return output[key]
        raise FCDInputError(f"model output has no class logits (keys: {', '.join(map(str, output))})")
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def _lesion_logits(output: Any) -> Any:
    """The (N, 1, X, Y, Z) lesion logit map of a model output: a 5D tensor, the second item of a
    (logits, lesion) pair, or ``output["lesion"]`` / ``output["lesion_logits"]``."""
    if isinstance(output, dict):
        for key in ("lesion_logits", "lesion"):
            if key in output:
                return output[key]
        raise FCDInputError(f"model output has no lesion logit map (keys: {', '.join(map(str, output))})")
    if isinstance(output, (tuple, list)):
        if len(output) < 2:
            raise FCDInputError("model output has no lesion logit map (a sequence of one item)")
        return output[1]
    if getattr(output, "ndim", 0) == 5:
        return output
    raise FCDInputError("model output has no lesion logit map: this bundle has no lesion head")


def classifier_logit(class_index: int) -> Target:
    """Target: the logit of the class probability, log(p / (1 - p)) = z_k - logsumexp(other z)
    (for two classes z_fcd - z_control). The raw score z_k alone is not identified by a softmax
    (adding one function to every class changes nothing), so its gradient can point anywhere;
    the log-odds is what the probability follows. The region does not enter; it only selects
    where the gradients are summed.

    Example:
        >>> import torch
        >>> classifier_logit(1)(torch.tensor([[0.5, 2.0]]), None).tolist()
        [1.5]
    """
    import torch

    def target(output: Any, _weights: Any) -> Any:
        logits = _class_logits(output)
        others = torch.cat([logits[:, :class_index], logits[:, class_index + 1:]], dim=1)
        return logits[:, class_index] - torch.logsumexp(others, dim=1)

    return target


def lesion_logits_in_region(output: Any, weights: Any) -> Any:
    """Target: the lesion head's logits summed over the region (``weights``: (X, Y, Z) on the
    lesion map's grid, the region's share of each model voxel), as in the seed paper.

    Example:
        >>> import torch
        >>> lesion = torch.ones(1, 1, 2, 2, 2)
        >>> w = torch.zeros(2, 2, 2); w[0, 0, 0] = 1
        >>> lesion_logits_in_region(lesion, w).tolist()
        [1.0]
    """
    lesion = _lesion_logits(output)
    if weights is None:
        raise FCDInputError("lesion-logits target needs a region")
    if tuple(lesion.shape[-3:]) != tuple(weights.shape):
        raise FCDInputError(
            f"lesion logit map {tuple(lesion.shape[-3:])} is not on the model grid {tuple(weights.shape)}"
        )
    return (lesion.reshape(lesion.shape[0], -1, *weights.shape) * weights).sum(dim=(1, 2, 3, 4))


# ---------------------------------------------------------------- SmoothGrad


def signed_smoothgrad(
    model: Any, x: Any, target: Target, weights: Any = None, *, nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_stdev: float, seed: int = DEFAULT_SEED, batch_size: int = 1,
) -> Any:
    """Mean signed input gradient of ``target(model(x + noise), weights)`` over ``nt_samples``
    noisy copies: a (C, X, Y, Z) tensor on ``x``'s grid (``x`` is (1, C, X, Y, Z)).

    captum ``NoiseTunnel`` (``nt_type="smoothgrad"``) over ``Saliency(abs=False)``; the noise,
    sd ``noise_stdev`` in the input's units, comes from torch's generator seeded with ``seed``
    (the caller's RNG state is restored). The model must be in eval mode.

    Example:
        >>> g = signed_smoothgrad(net, x, classifier_logit(1), nt_samples=4, noise_stdev=0.3)  # doctest: +SKIP
        >>> g.shape  # doctest: +SKIP
        torch.Size([2, 96, 112, 96])
    """
    import torch
    from captum.attr import NoiseTunnel, Saliency

    def forward(noisy: Any) -> Any:
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


# ---------------------------------------------------------------- regions


def roi_regions(roi: Image, grid: Image, name: str = "ROI") -> list[Region]:
    """The connected components (26-connectivity) of ``roi`` on ``grid``'s voxels, largest first.

    An ROI on another grid is resampled (nearest neighbour, as for the Heat-Score). Raises
    FCDInputError for an empty ROI or one that does not overlap ``grid``.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((8, 8, 8), bool); m[1:3, 1:3, 1:3] = True; m[6, 6, 6] = True
        >>> [r.mask.sum() for r in roi_regions(Image(m, np.eye(4)), Image(np.zeros((8, 8, 8)), np.eye(4)))]
        [8, 1]
    """
    from scipy import ndimage

    from .geometry import mask_onto_grid, same_grid

    array = np.asarray(roi.array) > 0.5
    if not array.any():
        raise FCDInputError(f"{name}: ROI is empty (no voxel set)")
    if not same_grid(roi, grid):
        array = mask_onto_grid(roi, grid)
        if not array.any():
            raise FCDInputError(
                f"{name}: ROI does not overlap the image's grid after resampling "
                "(outside its field of view, or smaller than one voxel)"
            )
    labels, count = ndimage.label(array, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1
    return [Region(f"roi-{rank}", "roi-component", labels == int(k)) for rank, k in enumerate(order, start=1)]


def brain_region(reference: Image) -> Region:
    """The whole head of the reference image (preprocessing's head mask on its own grid)."""
    from .preprocess import head_mask

    return Region("brain", "brain", head_mask(np.asarray(reference.array, np.float32)))


def cluster_regions(labels: np.ndarray, ids: Sequence[int]) -> list[Region]:
    """Regions of a cluster label volume (``ClusterSet.labels``), in the order of ``ids``."""
    return [Region(f"cluster-{int(k)}", "cluster", np.asarray(labels) == int(k)) for k in ids]


def band_around(mask: np.ndarray, affine: np.ndarray, band_mm: float) -> np.ndarray:
    """Voxels outside ``mask`` within ``band_mm`` of it (Euclidean distance in mm between voxel
    centres, voxel sizes from the affine's columns).

    Example:
        >>> import numpy as np
        >>> m = np.zeros((9, 9, 9), bool); m[4, 4, 4] = True
        >>> int(band_around(m, np.eye(4), 1.0).sum())  # the 6 face neighbours
        6
    """
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if band_mm <= 0 or not mask.any():
        return np.zeros_like(mask)
    sizes = np.asarray(voxel_sizes(affine))
    reach = np.ceil(band_mm / sizes).astype(int) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - reach, 0)
    hi = np.minimum(idx.max(0) + reach + 1, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    distance = ndimage.distance_transform_edt(~mask[box], sampling=sizes)
    band = np.zeros_like(mask)
    band[box] = (distance > 0) & (distance <= band_mm + 1e-6)
    return band


def region_contributions(
    maps: dict[str, np.ndarray], region: Region, affine: np.ndarray, band_mm: float = DEFAULT_BAND_MM,
) -> RegionContributions:
    """Per-modality positive and negative sums / voxel count inside ``region`` and in its band.

    The band is :func:`band_around` with ``max(band_mm, largest voxel size)`` (so it always
    holds at least the face neighbours; ``band_mm`` of the result is the width used).

    ``share`` = (positive - negative) of the modality / the same summed over modalities
    (None when every gradient inside is 0). Raises FCDInputError for a region without voxels.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((4, 4, 4), bool); m[1, 1, 1] = True
        >>> g = np.zeros((4, 4, 4), np.float32); g[1, 1, 1] = 3.0
        >>> r = region_contributions({"flair": g, "t1": -g / 3}, Region("a", "roi-component", m), np.eye(4), 0)
        >>> [(c.modality, c.positive, c.negative, c.share) for c in r.modalities]
        [('flair', 3.0, 0.0, 0.75), ('t1', 0.0, -1.0, 0.25)]
    """
    inside = np.asarray(region.mask, bool)
    n = int(inside.sum())
    if n == 0:
        raise FCDInputError(f"region {region.name}: has no voxels")
    if band_mm > 0:
        band_mm = max(float(band_mm), max(voxel_sizes(affine)))
    band = band_around(inside, affine, band_mm)
    n_band = int(band.sum())
    rows = []
    for modality, grad in maps.items():
        values = np.asarray(grad, np.float64)
        v_in = values[inside]
        v_band = values[band]
        rows.append([
            modality, float(v_in[v_in > 0].sum() / n), float(v_in[v_in < 0].sum() / n),
            float(v_band[v_band > 0].sum() / n_band) if n_band else None,
            float(v_band[v_band < 0].sum() / n_band) if n_band else None,
        ])
    total = sum(pos - neg for _, pos, neg, _, _ in rows)
    contributions = [
        ModalityContribution(m, pos, neg, bpos, bneg, float((pos - neg) / total) if total > 0 else None)
        for m, pos, neg, bpos, bneg in rows
    ]
    volume = float(n * abs(np.linalg.det(np.asarray(affine, float)[:3, :3])))
    return RegionContributions(region.name, region.kind, n, n_band, volume, contributions, float(band_mm))


# ---------------------------------------------------------------- the whole computation


def localized_smoothgrad(
    model: Any, prep: Any, modalities: Sequence[str], regions: Sequence[Region], *,
    target: str | Target = "fcd-logit", class_index: int = 1, nt_samples: int = DEFAULT_NT_SAMPLES,
    noise_sd: float = DEFAULT_NOISE_SD, band_mm: float = DEFAULT_BAND_MM, seed: int = DEFAULT_SEED,
    batch_size: int = 1,
) -> LocalizedSaliency:
    """Signed SmoothGrad maps per modality on the input grid and the contributions of ``regions``.

    ``prep`` is the :class:`~FCDDetectLib.preprocess.Preprocessed` input; ``regions`` lie on
    ``prep.reference``'s grid. ``target``: ``"fcd-logit"`` (:func:`classifier_logit` of
    ``class_index``; one SmoothGrad for all regions), ``"lesion-logits"``
    (:func:`lesion_logits_in_region`; one SmoothGrad per region, the written map is their sum)
    or a callable ``target(output, weights)`` (called with the region's model-grid weights, one
    pass per region). Checks everything before the first gradient.

    Example:
        >>> sal = localized_smoothgrad(net, prep, ["flair"], [brain_region(prep.reference)])  # doctest: +SKIP
    """
    import torch

    from .explain import _clean_model
    from .preprocess import to_input_grid

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
    with _clean_model(model):
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


def detection_regions(prep: Any, roi: Image | None = None, clusters: Any = None, heatmap: np.ndarray | None = None,
                      roi_name: str = "ROI") -> tuple[list[Region], list[str]]:
    """The regions of one detection and notes: the ROI's components when an ROI is given, else the
    clusters of the map (``clusters``, a :class:`~FCDDetectLib.clusters.ClusterSet` on the input
    grid, or found in ``heatmap`` with the cluster defaults), else (no cluster) the whole head.

    Example:
        >>> regions, notes = detection_regions(prep, roi=roi_image)  # doctest: +SKIP
    """
    reference = prep.reference
    if roi is not None:
        return roi_regions(roi, reference, name=roi_name), []
    if clusters is None and heatmap is not None:
        from .clusters import find_clusters

        clusters = find_clusters(heatmap, reference.affine, image=np.asarray(reference.array, np.float32))
    if clusters is not None and clusters.clusters:
        return cluster_regions(clusters.labels, [c.id for c in clusters.clusters]), []
    return [brain_region(reference)], ["no ROI and no cluster: the region is the whole head"]


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
            _lesion_logits(probe)
            target = "lesion-logits"
        except FCDInputError:
            pass
    result = localized_smoothgrad(model, prep, modalities, regions, target=target, class_index=class_index,
                                  nt_samples=nt_samples, noise_sd=noise_sd, band_mm=band_mm, seed=seed)
    result.notes[:0] = notes
    return result
