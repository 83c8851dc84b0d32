"""The software a result was computed with: Python, torch, numpy and their BLAS builds.

Trained floats differ between BLAS kernels (MKL, OpenBLAS, Accelerate) and thread counts;
``summary.json`` of the demo records this so that two machines' figures can be compared.

Example:
    >>> env = software_environment()
    >>> {"torch", "blas", "numpy_blas"} <= set(env)
    True
"""

from __future__ import annotations

import platform
import re
from typing import Any


def _torch_blas(config_text: str) -> str | None:
    """``BLAS_INFO=mkl`` (and ``LAPACK_INFO``) from ``torch.__config__.show()``."""
    found = {key: value for key, value in re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]+)", config_text)}
    if not found:
        return None
    return ", ".join(f"{key.split('_')[0].lower()} {value}" for key, value in sorted(found.items()))


def _numpy_blas() -> str | None:
    import numpy as np

    try:
        config = np.show_config(mode="dicts")  # numpy >= 1.26
    except TypeError:  # pragma: no cover - older numpy prints only
        return None
    blas = (config or {}).get("Build Dependencies", {}).get("blas", {})
    return " ".join(str(blas[k]) for k in ("name", "version") if blas.get(k)) or None


def software_environment() -> dict[str, Any]:
    """Python, torch (version, BLAS/LAPACK build, threads), numpy (version, BLAS) and the CPU."""
    import numpy as np
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "blas": _torch_blas(torch.__config__.show()),
        "mkl": bool(torch.backends.mkl.is_available()),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
    }
