"""Which Python packages the modules still need (pure part of the first-use installer).

Reads the module's ``Resources/requirements.txt`` (``name>=version`` lines) and compares
with what is installed, using only the standard library (``importlib.metadata``), so it
runs before torch, MONAI or nibabel exist. The Qt module asks the user, installs torch
through the PyTorch extension *first* and the rest with ``slicer.util.pip_install`` under
a ``torch==<installed>`` constraint (:func:`install_plan`), and tells the user when a
restart is needed: a package already imported in this session whose version the install
changed (:func:`restart_needed`, computed after installing).

Example:
    >>> from FCDDetectLib.slicer_support.dependencies import install_plan, missing_requirements, parse_requirement
    >>> parse_requirement("monai>=1.4  # networks").name
    'monai'
    >>> missing_requirements(["pip>=1.0"])
    []
    >>> plan = install_plan([parse_requirement("monai>=1.4"), parse_requirement("torch>=2.8")])
    >>> str(plan.torch), plan.pip_arguments("2.8.0", "torch-constraint.txt")
    ('torch>=2.8', ['monai>=1.4', '-c', 'torch-constraint.txt'])
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Distribution name -> module name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "pillow": "PIL"}
_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9][0-9A-Za-z.\-+]*))?\s*$")


@dataclass(frozen=True)
class Requirement:
    """``name>=minimum`` (``minimum`` may be None)."""

    name: str
    minimum: str | None = None

    @property
    def import_name(self) -> str:
        return IMPORT_NAMES.get(self.name.lower(), self.name.replace("-", "_"))

    def __str__(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name


def parse_requirement(line: str) -> Requirement:
    """One requirements line (comments stripped); only ``name`` and ``name>=version``."""
    text = line.split("#", 1)[0].strip()
    match = _LINE.match(text)
    if not match:
        raise ValueError(f"unsupported requirement line {line!r} (use 'name>=version')")
    return Requirement(match.group(1), match.group(2))


def read_requirements(path: str | Path) -> list[Requirement]:
    """Requirements of a ``requirements.txt`` file, blank and comment lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [parse_requirement(line) for line in lines if line.split("#", 1)[0].strip()]


def _version_tuple(text: str) -> tuple:
    """Release part of a version as integers ('2.13.0+cpu' -> (2, 13, 0)); no packaging needed."""
    parts = []
    for piece in re.split(r"[.+\-]", text):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_satisfied(requirement: Requirement | str) -> bool:
    """Installed, and at least the minimum version."""
    req = parse_requirement(requirement) if isinstance(requirement, str) else requirement
    version = installed_version(req.name)
    if version is None:
        return False
    return req.minimum is None or _version_tuple(version) >= _version_tuple(req.minimum)


def missing_requirements(requirements: list[Requirement | str]) -> list[Requirement]:
    """The requirements not installed or too old, in the given order."""
    reqs = [parse_requirement(r) if isinstance(r, str) else r for r in requirements]
    return [r for r in reqs if not is_satisfied(r)]


@dataclass(frozen=True)
class InstallPlan:
    """What the first-use installer does, in order.

    1. ``torch``: the torch requirement for the PyTorch extension (``PyTorchUtils``), which
       picks the CUDA build matching the driver; None when torch is already fine.
    2. ``pip_requirements``: the rest, installed with pip *after* torch, with
       ``constraints`` (``torch==<installed>``) so pip can never replace the torch build
       PyTorchUtils chose while resolving MONAI or captum.
    """

    torch: Requirement | None
    pip_requirements: list[Requirement]

    def pip_arguments(self, torch_version: str | None, constraints_file: str | Path | None) -> list[str]:
        """Arguments for ``slicer.util.pip_install`` (``-c FILE`` pins torch when it is installed)."""
        args = [str(r) for r in self.pip_requirements]
        if args and torch_version and constraints_file is not None:
            args += ["-c", str(constraints_file)]
        return args


def install_plan(missing: list[Requirement]) -> InstallPlan:
    """Split the missing requirements: torch first (PyTorch extension), then pip."""
    torch = next((r for r in missing if r.name.lower() == "torch"), None)
    return InstallPlan(torch, [r for r in missing if r.name.lower() != "torch"])


def torch_constraint(torch_version: str) -> str:
    """The constraints-file line that keeps pip from touching the installed torch build."""
    return f"torch=={torch_version}\n"


def installed_versions(requirements: list[Requirement]) -> dict[str, str | None]:
    """Installed version of each requirement's distribution (None: not installed)."""
    return {r.name: installed_version(r.name) for r in requirements}


def restart_needed(requirements: list[Requirement], before: dict[str, str | None],
                   after: dict[str, str | None], imported: set[str] | None = None) -> list[str]:
    """Packages whose installed version changed *during* this install and that this
    Python had already imported: the old code is still in memory, so Slicer must restart.

    Computed after installing, from the versions seen before and after (a package pip
    left alone, or one never imported, needs no restart).
    """
    imported = set(sys.modules) if imported is None else imported
    return [r.name for r in requirements
            if before.get(r.name) is not None and before.get(r.name) != after.get(r.name)
            and r.import_name in imported]


def install_decision(missing: list[Requirement], testing: bool) -> str:
    """``"ready"`` (nothing missing), ``"refuse"`` (missing while Slicer runs its tests: never
    install over the network inside ctest, as ``slicer.packaging.pip_ensure`` does, and fail
    instead of passing without detecting) or ``"ask"`` (ask the user once, then install)."""
    if not missing:
        return "ready"
    return "refuse" if testing else "ask"
