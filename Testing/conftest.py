"""Shared pytest set-up: small thread count, deterministic torch, shared fixtures.

The packages under test come from the editable install (``pip install -e .``); a
checkout that is not installed runs with ``PYTHONPATH=FCDDetect:FCDTrain``. Test
builders live in ``Testing/builders`` and are imported as ``Testing.builders.*``
(pytest puts the repository root on ``sys.path`` because ``Testing`` is a package).
"""

from __future__ import annotations

import pytest

from Testing.builders.slicer_fixtures import slicer_app  # noqa: F401  (fixture)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: trains a real network (seconds to a minute); `make test` runs it")
    config.addinivalue_line(
        "markers",
        "numerics: verdict depends on a trained model's floats; `make test-repeat` runs these under "
        "FCD_TEST_SEED=0..4 (the planted model's training seed)",
    )
    config.addinivalue_line(
        "markers",
        "rendering: renders Slicer's slice views offscreen (VTK's EGL window, Mesa's llvmpipe without a GPU); "
        "skipped only where no OpenGL context can be made",
    )
    config.addinivalue_line(
        "markers",
        "cuda: needs a CUDA GPU (skipped without one); benchmarks/gpu/run_checks.sh runs them on a GPU machine",
    )


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
