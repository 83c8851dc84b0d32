"""The cases of ``benchmarks/probe_hostile.py``, one module per kind of hostile input.

Importing the package puts the repository's ``FCDDetect``, ``FCDTrain`` and root folders on
``sys.path`` (the probe runs from a checkout, installed or not), so every module here imports
``FCDDetectLib`` and ``Testing.builders`` directly. The script's folder, ``benchmarks/``, is
on ``sys.path`` when it runs, which is how it finds this package.

- :mod:`hostile.harness`: the shared runner (``fcd`` in a subprocess, watched for changes
  outside its outputs), the result rows, and the probe's tiny trained run;
- :mod:`hostile.refusal_cases`: planted pickles and commit journals, unusable ``--out``, sizes out of
  bounds;
- :mod:`hostile.input_data_cases`: big, out-of-distribution and damaged scans, ROIs, affine noise;
- :mod:`hostile.bundle_cases`: bundles of the same name, swapped and NaN weights, the stale report;
- :mod:`hostile.detect_input_cases`: NIfTI headers, odd tables and names, a full disk for ``fcd detect``;
- :mod:`hostile.run_folder_cases`: damaged run files, a changed dataset, a full disk for ``fcd train``;
- :mod:`hostile.interrupts`: SIGKILL, SIGINT and SIGTERM of ``fcd detect`` and ``fcd train``.

Example:
    >>> from hostile.harness import setup  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for part in ("FCDDetect", "FCDTrain", ""):
    if str(ROOT / part) not in sys.path:
        sys.path.insert(0, str(ROOT / part))
