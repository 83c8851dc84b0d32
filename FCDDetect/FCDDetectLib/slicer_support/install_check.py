"""First-run check: Slicer, Python, torch / CUDA / device, MONAI, captum, and each bundle.

``check_installation()`` is what the FCDDetect panel's "Check installation" button and the
console function ``FCDDetect.FCDDetectLogic().checkInstallation()`` report. It never
installs anything; a package that is missing is a line of the report, not an error.
Each bundle of the models folders is loaded (weights included, ``weights_only=True``)
and reported as loading or with the reason it does not.

Example:
    >>> report = check_installation(folders=[], slicer_version="5.10.0")
    >>> report.lines[0]
    'Slicer: 5.10.0'
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

PACKAGES = ("torch", "monai", "captum", "nibabel", "numpy", "scipy")


@dataclass
class InstallationReport:
    """Lines of the report and the problems found among them."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bundles: dict[str, str] = field(default_factory=dict)  # path -> "ok" or the reason it fails

    def text(self) -> str:
        out = list(self.lines)
        if self.problems:
            out += ["", f"{len(self.problems)} problem(s):"] + [f"- {p}" for p in self.problems]
        else:
            out += ["", "No problem found."]
        return "\n".join(out)


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_lines() -> tuple[list[str], list[str]]:
    """torch version, CUDA availability and the device detection would use."""
    if _version("torch") is None:
        return ["torch: not installed"], ["torch is not installed (it is installed on first use)"]
    import torch

    lines = [f"torch: {torch.__version__}"]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        lines += [f"CUDA: available (CUDA {torch.version.cuda}), {torch.cuda.device_count()} device(s)",
                  f"device: cuda ({name})"]
    else:
        built = torch.version.cuda
        lines += [f"CUDA: not available ({'CUDA build ' + built if built else 'CPU-only build'})", "device: cpu"]
    return lines, []


def bundle_lines(folders: Sequence[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """Load each bundle of ``folders``; a line per bundle."""
    from FCDDetectLib.errors import FCDInputError
    from FCDDetectLib.slicer_support.models_folder import list_bundles

    lines: list[str] = []
    problems: list[str] = []
    status: dict[str, str] = {}
    if not folders:
        return ["models: no models folder chosen"], [], status
    try:
        from FCDDetectLib.networks.bundle import load_bundle
    except ImportError as error:  # torch/monai missing: bundles cannot be loaded yet
        return [f"models: not checked ({error})"], [], status
    for folder in folders:
        try:
            listing = list_bundles(folder)
        except FCDInputError as error:
            lines.append(f"models folder {folder}: {error}")
            problems.append(str(error))
            continue
        lines.append(f"models folder {folder}: {len(listing.bundles)} bundle(s)")
        for note in listing.skipped:
            lines.append(f"  skipped: {note}")
            problems.append(note)
        for entry in listing.bundles:
            try:
                load_bundle(entry.path, device="cpu")
            except Exception as error:  # noqa: BLE001 (any failure to load is reported, not raised)
                status[str(entry.path)] = f"does not load: {error}"
                lines.append(f"  {entry.name}: does not load: {error}")
                problems.append(f"{entry.path}: does not load: {error}")
            else:
                status[str(entry.path)] = "ok"
                lines.append(f"  {entry.name}: loads")
    return lines, problems, status


def check_installation(folders: Sequence[str] = (), slicer_version: str | None = None) -> InstallationReport:
    """The first-run report (see the module docstring)."""
    report = InstallationReport()
    report.lines.append(f"Slicer: {slicer_version or 'not running in Slicer'}")
    report.lines.append(f"Python: {platform.python_version()} ({sys.executable})")
    lines, problems = torch_lines()
    report.lines += lines
    report.problems += problems
    for name in PACKAGES[1:]:
        version = _version(name)
        report.lines.append(f"{name if name != 'monai' else 'MONAI'}: {version or 'not installed'}")
        if version is None and name in ("monai", "captum", "nibabel"):
            report.problems.append(f"{name} is not installed (it is installed on first use)")
    lines, problems, report.bundles = bundle_lines(folders)
    report.lines += lines
    report.problems += problems
    return report
