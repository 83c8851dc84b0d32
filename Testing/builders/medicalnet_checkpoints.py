"""MedicalNet checkpoints in the released file format, built here (no weights can be downloaded in tests).

The released files hold ``{"state_dict": {"module.<key>": tensor}}`` of an encoder without
``conv_seg``; :func:`released_format` writes that from any model.
"""

from __future__ import annotations

import monai.networks.nets as monai_nets
import torch

WIDTH = 0.25  # narrow networks: same key layout, small files


def medicalnet_source(depth: int, widen_factor: float = WIDTH) -> torch.nn.Module:
    """A MedicalNet-shaped encoder built independently of build_resnet (MONAI's own
    constructor, MedicalNet's shortcut/bias settings, conv1 stride 2, no classifier)."""
    shortcut = "A" if depth in (18, 34) else "B"
    constructor = {18: monai_nets.resnet18, 34: monai_nets.resnet34, 50: monai_nets.resnet50}[depth]
    torch.manual_seed(depth)
    model = constructor(
        spatial_dims=3,
        n_input_channels=1,
        conv1_t_stride=2,
        shortcut_type=shortcut,
        bias_downsample=depth in (18, 34),
        feed_forward=False,
        widen_factor=widen_factor,
    )
    with torch.no_grad():  # BatchNorm statistics that differ from the defaults
        for name, buffer in model.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    return model


def released_format(model: torch.nn.Module, path, drop=(), extra=None) -> dict:
    """Write {"state_dict": {"module.<k>": v}} like the released files; returns the state."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items() if not any(d in k for d in drop)}
    state.update(extra or {})
    torch.save({"state_dict": state}, path)
    return state
