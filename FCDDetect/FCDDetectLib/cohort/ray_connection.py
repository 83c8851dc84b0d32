"""Connecting to a Ray cluster and checking it before any work is submitted.

Ray is an optional extra (``pip install "fcd-detect[ray]"``): this module imports it
only inside its functions, so the engine and the local executor never need it. Both
Ray executors (the trainer's experiment grid and cohort detection)
go through these checks, so that bad input is one ``error:`` line before anything runs:

- :func:`connect`: ``--ray-address`` must answer within seconds. Ray itself retries an
  unreachable GCS for minutes, so the TCP port is probed first: a closed port, an
  unknown host or a silent one fails within ``PORT_PROBE_TIMEOUT_S``. (A port that
  accepts connections but is no Ray GCS is left to Ray's own retries.)
- :func:`check_resources`: a per-task request (``--gpus-per-run``, ``--cpus-per-run``)
  that no node of the cluster can satisfy would wait forever; it is refused.
- :func:`check_shared_folders`: every node must see and write the output folders (the
  run folders live on a file system all nodes share). A probe task on each node checks
  that it sees a marker file the driver wrote and that it can create a file there.

Example:
    >>> session = connect(None, num_cpus=2)  # doctest: +SKIP
    >>> check_resources(gpus=0, cpus=1)  # doctest: +SKIP
    >>> check_shared_folders(["exp/runs"])  # doctest: +SKIP
    >>> session.close()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from FCDDetectLib.errors import FCDInputError

PORT_PROBE_TIMEOUT_S = 5.0


def require_ray() -> Any:
    """The ``ray`` module, or FCDInputError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise FCDInputError(
            f"--executor ray: Ray is not installed ({error}); pip install \"fcd-detect[ray]\"") from error
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto`` and the like."""
    text = address.split("://", 1)[-1].rstrip("/")
    if ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError as error:
        raise FCDInputError(f"--ray-address {address}: expected HOST:PORT (e.g. head-node:6379)") from error


def probe_port(address: str, timeout: float = PORT_PROBE_TIMEOUT_S) -> None:
    """FCDInputError unless something accepts TCP connections at ``address``."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as error:
        raise FCDInputError(
            f"--ray-address {address}: no Ray cluster answers there ({error.strerror or error}); "
            "start one with `ray start --head` or check the address") from error


@dataclass
class RaySession:
    """A connection made by :func:`connect`; ``close`` disconnects only what it connected."""

    ray: Any
    owned: bool

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str | None, num_cpus: int | None = None) -> RaySession:
    """Connect to the cluster at ``address`` (None: reuse this process's Ray, or start a local one).

    A Ray already initialised in this process (a script or a test that called
    ``ray.init``) is reused when no address is given. ``num_cpus`` applies only when a
    local cluster is started here.
    """
    ray = require_ray()
    if ray.is_initialized():
        if address:
            raise FCDInputError(f"--ray-address {address}: this process is already connected to another Ray")
        return RaySession(ray, owned=False)
    if address:
        probe_port(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)  # main thread: Ray's own signal handlers and child processes need it
    except Exception as error:  # noqa: BLE001 - reported as one line
        where = f"--ray-address {address}" if address else "--executor ray"
        first = str(error).splitlines()[0] if str(error) else ""
        raise FCDInputError(f"{where}: could not connect to Ray ({type(error).__name__}: {first})") from error
    return RaySession(ray, owned=True)


def alive_nodes() -> list[dict[str, Any]]:
    """``ray.nodes()`` entries of the nodes that are alive."""
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def check_resources(gpus: float = 0.0, cpus: float = 1.0, what: str = "run") -> None:
    """FCDInputError when no single alive node has ``gpus`` GPUs and ``cpus`` CPUs.

    Checked against the nodes present now: an autoscaling cluster that adds GPU nodes
    on demand needs one such node up before submitting (see docs/cluster.md).
    """
    nodes = alive_nodes()
    if not nodes:
        raise FCDInputError("--executor ray: the cluster has no alive node")
    most_gpus = max(float(n.get("Resources", {}).get("GPU", 0.0)) for n in nodes)
    most_cpus = max(float(n.get("Resources", {}).get("CPU", 0.0)) for n in nodes)
    if gpus > most_gpus:
        raise FCDInputError(f"--gpus-per-{what} {gpus:g}: no node of the Ray cluster has that many GPUs "
                            f"(largest: {most_gpus:g} on {len(nodes)} node(s))")
    if cpus > most_cpus:
        raise FCDInputError(f"--cpus-per-{what} {cpus:g}: no node of the Ray cluster has that many CPUs "
                            f"(largest: {most_cpus:g})")


def task_slots(gpus: float = 0.0, cpus: float = 1.0) -> int:
    """How many tasks of this size the alive nodes can run at once (at least 1)."""
    slots = 0
    for node in alive_nodes():
        resources = node.get("Resources", {})
        fits = int(float(resources.get("CPU", 0.0)) // cpus) if cpus > 0 else 10**6
        if gpus > 0:
            fits = min(fits, int(float(resources.get("GPU", 0.0)) // gpus))
        slots += fits
    return max(1, slots)


def _probe_folders(folders: list[str], marker: str) -> str | None:
    """Runs on a node: None when every folder holds ``marker`` and takes a new file, else why not."""
    for folder in folders:
        path = Path(folder)
        if not (path / marker).is_file():
            return f"{folder}: not visible from this node (is it on a file system every node shares?)"
        probe = path / f".fcd-write-probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as error:
            return f"{folder}: this node cannot write there ({error.strerror or error})"
    return None


def check_shared_folders(folders: list[str | Path], timeout: float = 60.0) -> None:
    """FCDInputError unless every alive node sees each of ``folders`` and can write into it.

    The driver writes a marker file into each folder (they must exist), then one probe
    task pinned to each node looks for the markers and creates and deletes a file beside
    each. The markers are removed afterwards.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = [Path(f).resolve() for f in folders]
    marker = f".fcd-shared-probe-{uuid.uuid4().hex}"
    written: list[Path] = []
    try:
        for path in paths:
            try:
                (path / marker).write_bytes(b"ok")
            except OSError as error:
                raise FCDInputError(f"{path}: cannot write there ({error.strerror or error})") from error
            written.append(path / marker)
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe_folders)
        nodes = alive_nodes()
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote([str(p) for p in paths], marker) for n in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if len(ready) < len(refs):
            raise FCDInputError(f"{paths[0]}: the write check did not finish on every node within {timeout:.0f} s")
        for node, problem in zip(nodes, ray.get(refs), strict=True):
            if problem:
                raise FCDInputError(f"{problem} (node {node.get('NodeManagerAddress', '?')})")
    finally:
        for path in written:
            try:
                os.unlink(path)
            except OSError:
                pass
