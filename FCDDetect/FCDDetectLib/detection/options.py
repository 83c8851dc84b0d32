"""The options of one detection, declared once and carried from every entry point into detection.

:class:`DetectOptions` holds every option that changes what a detection computes, with its
default; it is validated when it is made, so a bad value is refused before any work starts.
``fcd detect`` (one scan or ``--data``), the cohort runner, the Ray workers, the training's
per-fold evaluation and the Slicer logic all build one and hand it on unchanged.

Three different thresholds, three names: ``cluster_threshold`` (the map value at which voxels
form clusters, here), the bundle's ``threshold`` (the probability at which the prediction is
"fcd", in ``bundle.json``) and the Slicer display's lower threshold (display only).

``cluster_threshold`` and ``min_cluster_mm3`` left ``None`` take the bundle's operating point
(a lesion model's, chosen on its validation subjects), else the engine's defaults
(:data:`FCDDetectLib.maps.clusters.DEFAULT_THRESHOLD`, ``DEFAULT_MIN_SIZE_MM3``), like ``method``
and ``layer``: :meth:`DetectOptions.for_bundle` fills all four.

Example:
    >>> options = DetectOptions(method="layercam", layer="layer2", cluster_threshold=0.4)
    >>> options.cluster_threshold, options.min_cluster_mm3
    (0.4, None)
    >>> options.for_bundle(None).min_cluster_mm3
    50.0
    >>> DetectOptions(cluster_threshold=2.0)
    Traceback (most recent call last):
    ...
    FCDDetectLib.errors.FCDInputError: cluster threshold: 2.0 is outside [0, 1]
    >>> options.replace(layer="layer3").layer
    'layer3'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from FCDDetectLib.choices import (
    DEFAULT_LAYER,
    DEFAULT_METHOD,
    DEVICES,
    EXPLANATION_LAYERS,
    EXPLANATION_METHODS,
)
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.localized_smoothgrad import DEFAULT_NOISE_SD, DEFAULT_NT_SAMPLES, check_options
from FCDDetectLib.maps.clusters import DEFAULT_MIN_SIZE_MM3, DEFAULT_THRESHOLD, check_cluster_settings

__all__ = ["DetectOptions"]


@dataclass(frozen=True)
class DetectOptions:
    """Every option of one detection (the images, ROI and brain mask travel apart, as inputs).

    ``method`` and ``layer`` left ``None`` take the bundle's ``explain_method`` /
    ``explain_layer``, else Grad-CAM on layer4 (the paper): :meth:`for_bundle` fills them.
    """

    method: str | None = None
    """Explanation method (:data:`FCDDetectLib.choices.EXPLANATION_METHODS`); None: the bundle's."""
    layer: str | None = None
    """Network stage of the CAM methods (:data:`FCDDetectLib.choices.EXPLANATION_LAYERS`); None: the bundle's."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda`` (:data:`FCDDetectLib.choices.DEVICES`)."""
    target_class: str = "fcd"
    """The class the heatmap explains."""
    cluster_threshold: float | None = None
    """Map value in [0, 1] at or above which voxels form clusters; None: the bundle's operating point, else 0.5."""
    min_cluster_mm3: float | None = None
    """Smallest cluster kept, mm3; None: the bundle's operating point, else 50."""
    localized_smoothgrad: bool = False
    """Also compute signed SmoothGrad per modality and region."""
    nt_samples: int = DEFAULT_NT_SAMPLES
    """SmoothGrad noisy copies."""
    noise_sd: float = DEFAULT_NOISE_SD
    """SmoothGrad noise sd, a fraction of the input's value range."""
    series: str | None = None
    """Which series of a DICOM folder holding several (UID or description)."""
    roi_segment: str | None = None
    """Which segment of a ``.seg.nrrd`` ROI (name or label value), or a labelmap value."""

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in EXPLANATION_METHODS:
            raise FCDInputError(f"method {self.method!r}: expected one of {', '.join(EXPLANATION_METHODS)}")
        if self.layer is not None and self.layer not in EXPLANATION_LAYERS:
            raise FCDInputError(f"layer {self.layer!r}: expected one of {', '.join(EXPLANATION_LAYERS)}")
        if self.device not in DEVICES:
            raise FCDInputError(f"device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if not isinstance(self.target_class, str) or not self.target_class:
            raise FCDInputError(f"target class {self.target_class!r}: expected a class name")
        threshold, size = check_cluster_settings(
            DEFAULT_THRESHOLD if self.cluster_threshold is None else self.cluster_threshold,
            DEFAULT_MIN_SIZE_MM3 if self.min_cluster_mm3 is None else self.min_cluster_mm3)
        if self.cluster_threshold is not None:
            object.__setattr__(self, "cluster_threshold", threshold)
        if self.min_cluster_mm3 is not None:
            object.__setattr__(self, "min_cluster_mm3", size)
        if self.localized_smoothgrad:
            check_options(self.nt_samples, self.noise_sd)

    def replace(self, **changes: Any) -> DetectOptions:
        """A copy with ``changes`` (checked again); an unknown name is an error.

        Example:
            >>> DetectOptions().replace(min_cluster_mm3=10).min_cluster_mm3
            10.0
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown detection option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes) if changes else self

    def for_bundle(self, metadata: Any) -> DetectOptions:
        """``method``, ``layer`` and the cluster settings filled from the bundle's defaults, else the engine's.

        The cluster settings come from the bundle's ``operating_point`` (a lesion model's,
        chosen on its validation subjects), each only where the caller left it None.

        Example:
            >>> DetectOptions().for_bundle(None).method
            'gradcam'
            >>> class Meta:
            ...     operating_point = {"cluster_threshold": 0.7, "min_cluster_mm3": 200.0}
            >>> options = DetectOptions(min_cluster_mm3=10).for_bundle(Meta())
            >>> options.cluster_threshold, options.min_cluster_mm3
            (0.7, 10.0)
        """
        method = self.method or getattr(metadata, "explain_method", None) or DEFAULT_METHOD
        layer = self.layer or getattr(metadata, "explain_layer", None) or DEFAULT_LAYER
        point = getattr(metadata, "operating_point", None) or {}
        threshold = self.cluster_threshold
        if threshold is None:
            threshold = point.get("cluster_threshold", DEFAULT_THRESHOLD)
        size = self.min_cluster_mm3
        if size is None:
            size = point.get("min_cluster_mm3", DEFAULT_MIN_SIZE_MM3)
        return self.replace(method=method, layer=layer, cluster_threshold=threshold, min_cluster_mm3=size)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values (JSON, a Ray task's arguments); :meth:`from_dict` reads them back.

        Example:
            >>> DetectOptions.from_dict(DetectOptions(layer="layer2").to_dict()).layer
            'layer2'
        """
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The options that change a detection's output (all but ``device``), as recorded in ``result.json``.

        A cohort reuses a finished subject only when these equal the run's (after
        :meth:`for_bundle`), so another layer, threshold or target class is recomputed.

        Example:
            >>> "device" in DetectOptions().identity(), DetectOptions().identity()["target_class"]
            (False, 'fcd')
        """
        return {name: value for name, value in self.to_dict().items() if name != "device"}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectOptions:
        """Options from :meth:`to_dict`'s form; unknown keys are an error."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise FCDInputError(f"detection options: unknown {', '.join(unknown)}")
        return cls(**values)
