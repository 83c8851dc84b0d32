"""Every choice list of the project, declared once and imported everywhere.

The CLI (``choices=``), the trainer's ``RunConfig`` validation, the bundle
metadata checks, the Slicer modules' parameter nodes (``Choice(...)``) and the engine
functions all read these tuples; ``Testing/engine/test_choices.py`` checks that no other
module spells one out again. Only the standard library is imported here, so reading a
list costs nothing (no torch).

Example:
    >>> from FCDDetectLib.choices import DEVICES, EXPLANATION_METHODS
    >>> DEVICES
    ('auto', 'cpu', 'cuda')
    >>> "gradcam++" in EXPLANATION_METHODS
    True
"""

from __future__ import annotations

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""Where a network runs; ``auto`` picks CUDA when available."""

EXPLANATION_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam", "smoothgrad")
"""Heatmap methods of :func:`FCDDetectLib.explain.cams.explain` (``layercam``: Jiang et al. 2021)."""

CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam")
"""The methods that read a stage's activations (one forward pass gives the probability too)."""

EXPLANATION_LAYERS: tuple[str, ...] = ("layer2", "layer3", "layer4", "multi")
"""Network stages a CAM method explains; ``multi`` fuses layer2-4 (mean of their normalised maps)."""

DEPTHS: tuple[int, ...] = (18, 34, 50)
"""ResNet depths of :func:`FCDDetectLib.networks.resnets.build_resnet` (MedicalNet releases these)."""

GEOMETRIES: tuple[str, ...] = ("paper", "medicalnet")
"""Network geometries: ``paper`` (section 2.2, strided) or ``medicalnet`` (dilated layer3/4)."""

PRETRAINED_STRATEGIES: tuple[str, ...] = ("none", "medicalnet8", "medicalnet23")
"""Initialisation: random, or MedicalNet weights from 8 or 23 datasets (table order)."""

TRAINABLE_MODES: tuple[str, ...] = ("all", "transfer")
"""Which parameters train: every one, or only ``layer4`` and ``fc``."""

MODALITIES: tuple[str, ...] = ("t1", "flair")
"""Image modalities a subject can have."""

INPUT_MODALITIES: tuple[str, ...] = ("flair", "t1", "t1+flair")
"""What a model reads: one modality, or both as two channels (``t1+flair``)."""

SUPERVISION: tuple[str, ...] = ("none", "lesion")
"""Training signal beyond the label: none, or the lesion outline (ROI)."""

LESION_SCHEDULES: tuple[str, ...] = ("poly", "plateau")
"""Learning-rate schedules of the lesion trainer (``fcd train --lesion-schedule``): ``poly``, nnU-Net's
fixed decay ``lr * (1 - epoch / epochs) ** 0.9`` with the last epoch's weights, or ``plateau``, the
paper's ReduceLROnPlateau + early stopping + best epoch on the validation lesion loss."""

LESION_EVIDENCE_SCORES: tuple[str, ...] = ("top_component_peak_x_volume_mm3", "top_cluster_peak_x_volume_mm3")
"""Subject-level scores of a lesion map (:mod:`FCDDetectLib.maps.lesion_evidence`): the first is the one new
bundles are calibrated with; the second is read from bundles calibrated before it."""

SYNTH_SIZES: tuple[str, ...] = ("tiny", "small", "full")
"""Voxel sizes of the synthetic cohort (``fcd synth --size``): ~6 mm, ~3 mm, the real protocol's."""

SYNTH_RESCALES: tuple[str, ...] = ("unit", "12bit")
"""``fcd synth --rescale``: intensities stored as floats in 0..1 or as 12-bit integers (0..4095)."""

CHOICE_LISTS: dict[str, tuple] = {
    "DEVICES": DEVICES,
    "EXPLANATION_METHODS": EXPLANATION_METHODS,
    "EXPLANATION_LAYERS": EXPLANATION_LAYERS,
    "DEPTHS": DEPTHS,
    "GEOMETRIES": GEOMETRIES,
    "PRETRAINED_STRATEGIES": PRETRAINED_STRATEGIES,
    "TRAINABLE_MODES": TRAINABLE_MODES,
    "MODALITIES": MODALITIES,
    "INPUT_MODALITIES": INPUT_MODALITIES,
    "SUPERVISION": SUPERVISION,
    "LESION_SCHEDULES": LESION_SCHEDULES,
    "LESION_EVIDENCE_SCORES": LESION_EVIDENCE_SCORES,
    "SYNTH_SIZES": SYNTH_SIZES,
    "SYNTH_RESCALES": SYNTH_RESCALES,
}
"""Name -> list, for tests and docs (CAM_METHODS is a subset of EXPLANATION_METHODS)."""

DEFAULT_METHOD: str = "gradcam"
"""Heatmap method of ``fcd detect`` when neither the caller nor the bundle names one."""
DEFAULT_LAYER: str = "layer4"  # the paper's stage
"""Network stage a CAM method reads when neither the caller nor the bundle names one."""
