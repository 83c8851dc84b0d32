"""Shared pytest set-up: small thread count, deterministic torch, repo on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for sub in ("FCDDetect", "FCDTrain"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))


@pytest.fixture(autouse=True, scope="session")
def _torch_settings():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        yield
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield


# --- MRML scene fixture for the Slicer module logic tests (see slicer_fixtures.py) ---
from slicer_fixtures import slicer_app  # noqa: E402,F401
