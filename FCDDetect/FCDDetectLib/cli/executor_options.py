"""The ``--executor`` options shared by commands that can run on a Ray cluster.

``fcd experiment`` (one task per fold) uses them; Ray itself is an optional extra and is
imported only once ``--executor ray`` runs (see :mod:`FCDDetectLib.cohort.ray_connection`).

Example:
    $ fcd experiment --data ds004199/ --out exp/ --executor ray --ray-address head-node:6379 \\
          --gpus-per-run 1 --cpus-per-run 4
"""

from __future__ import annotations

import argparse


def add_executor_options(parser: argparse.ArgumentParser, unit: str = "run") -> None:
    """Add ``--executor``, ``--ray-address``, ``--gpus-per-UNIT``, ``--cpus-per-UNIT``, ``--max-retries``."""
    group = parser.add_argument_group("where the work runs")
    group.add_argument("--executor", default="local", choices=["local", "ray"],
                       help="local: one after another in this process (default); ray: one Ray task per "
                       f"{unit} on a Ray cluster (pip install \"fcd-detect[ray]\"; see docs/cluster.md)")
    group.add_argument("--ray-address", metavar="HOST:PORT",
                       help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray on this machine)")
    group.add_argument(f"--gpus-per-{unit}", dest="gpus_per_task", type=float, default=None, metavar="N",
                       help=f"GPUs each {unit} reserves on the cluster (default: 0)")
    group.add_argument(f"--cpus-per-{unit}", dest="cpus_per_task", type=float, default=None, metavar="N",
                       help=f"CPUs each {unit} reserves (ray, default: 1) and torch threads it uses "
                       "(both executors; local default: torch's own)")
    group.add_argument("--max-retries", type=int, default=3,
                       help=f"ray: times a {unit} is retried when its worker or node dies (default: 3)")
