"""A lesion model's map of one scan: the lesion head's probability on the input grid, and its outputs.

The map comes back onto the reference image's grid through the same inverse as the heatmap
(linear, 0 outside the model field of view) and is restricted to the head, but not min-max
normalised: its values stay voxel probabilities. :func:`lesion_outputs` adds its clusters,
lesion-level figures and Heat-Score, the ``lesion_*`` fields of a detection result.

Example:
    >>> from FCDDetectLib.detection.lesion_map import lesion_map_of
    >>> lesion = lesion_map_of(bundle.model, x, prep, head)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from FCDDetectLib.io.image_io import Image
from FCDDetectLib.maps.clusters import find_clusters
from FCDDetectLib.maps.heat_score import heat_score_images
from FCDDetectLib.maps.lesion_metrics import subject_lesion_metrics

__all__ = ["lesion_map_of", "lesion_map_on_input_grid", "lesion_outputs"]


def lesion_map_of(net: Any, x: Any, prep: Any, head: np.ndarray, features: Sequence[Any] | None = None) -> np.ndarray:
    """The lesion head's probability on the input grid, restricted to ``head`` (float32, not rescaled).

    ``features``: the encoder's feature maps of a pass over ``x`` already made (see
    :func:`~FCDDetectLib.detection.detect.explain_and_classify`); without them the encoder runs again.

    Example:
        >>> lesion = lesion_map_of(bundle.model, x, prep, head_mask(prep.reference.array))  # doctest: +SKIP
    """
    return np.where(head, lesion_map_on_input_grid(net, x, prep, features), np.float32(0.0)).astype(np.float32)


def lesion_map_on_input_grid(net: Any, x: Any, prep: Any, features: Sequence[Any] | None = None) -> np.ndarray:
    """The lesion head's voxel probability for ``x``, mapped onto the input grid.

    The same inverse as the heatmap (:func:`FCDDetectLib.grid.preprocess.to_input_grid`, linear,
    0 outside the model field of view) but no min-max: the values stay probabilities in [0, 1].

    Example:
        >>> lesion_map_on_input_grid(bundle.model, x, prep).max() <= 1.0  # doctest: +SKIP
        True
    """
    import torch

    from FCDDetectLib.grid.input_grid import to_input_grid

    with torch.no_grad():
        whole = net.lesion_probability_from_features(x, features) if features else net.lesion_probability(x)
        probability = whole[0, 0].float().cpu().numpy()
    return np.clip(to_input_grid(probability, prep), 0.0, 1.0)


def lesion_outputs(net: Any, x: Any, prep: Any, head: np.ndarray, roi_image: Image | None,
                   roi_mask: np.ndarray | None, mask_image: Image | None, roi_name: str,
                   cluster_threshold: float, min_cluster_mm3: float,
                   features: Sequence[Any] | None = None) -> dict[str, Any]:
    """Lesion map (restricted to the head like the heatmap), its clusters, lesion figures and Heat-Score.

    The ``lesion_*`` fields of :class:`~FCDDetectLib.detection.result.DetectionResult`.

    Example:
        >>> outputs = lesion_outputs(net, x, prep, head, None, None, None, "ROI", 0.5, 50.0)  # doctest: +SKIP
        >>> sorted(outputs)  # doctest: +SKIP
        ['lesion_clusters', 'lesion_map', 'lesion_map_metrics']
    """
    lesion_map = lesion_map_of(net, x, prep, head, features)
    affine = np.asarray(prep.reference.affine, dtype=np.float64)
    clusters = find_clusters(lesion_map, affine, cluster_threshold, min_cluster_mm3, head_mask=head)
    outputs: dict[str, Any] = {
        "lesion_map": lesion_map,
        "lesion_clusters": clusters,
        "lesion_map_metrics": subject_lesion_metrics(lesion_map, affine, clusters, roi_mask, roi_name=roi_name),
    }
    if roi_image is not None:
        details = heat_score_images(Image(lesion_map, affine), roi_image, mask_image, roi_name=roi_name,
                                    undefined_ok=True)
        outputs.update(lesion_heat_score=details.heat_score, lesion_heat_score_details=details)
    return outputs
