"""The targets of localized SmoothGrad: the number per noisy copy whose input gradient is taken.

A target is a callable ``target(model_output, region_weights_or_None) -> (N,)`` (:data:`Target`):
:func:`classifier_logit` (the classifier's FCD log-odds; the region does not enter, so one
SmoothGrad serves every region) or :func:`lesion_logits_in_region` (a lesion head's logits
summed over the region; one SmoothGrad per region). The model output may be a tensor, a
``(logits, lesion)`` pair or a dict; the private readers here find the class logits and the
lesion logit map in each form. The gradients themselves are taken in
:mod:`FCDDetectLib.explain.localized_smoothgrad`.

Example:
    >>> import torch
    >>> from FCDDetectLib.explain.saliency_targets import classifier_logit
    >>> classifier_logit(1)(torch.tensor([[0.5, 2.0]]), None).tolist()
    [1.5]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from FCDDetectLib.errors import FCDInputError

Target = Callable[[Any, Any], Any]
"""``target(model_output, region_weights_or_None) -> tensor (N,)``, one value per noisy copy."""


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


def lesion_logits(output: Any) -> Any:
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
    lesion = lesion_logits(output)
    if weights is None:
        raise FCDInputError("lesion-logits target needs a region")
    if tuple(lesion.shape[-3:]) != tuple(weights.shape):
        raise FCDInputError(
            f"lesion logit map {tuple(lesion.shape[-3:])} is not on the model grid {tuple(weights.shape)}"
        )
    return (lesion.reshape(lesion.shape[0], -1, *weights.shape) * weights).sum(dim=(1, 2, 3, 4))
