"""Which Python packages the modules still need (pure part of the first-use installer).

Reads the module's ``Resources/requirements.txt`` (``name>=version`` lines) and compares
with what is installed, using only the standard library (``importlib.metadata``), so it
runs before torch, MONAI or nibabel exist. The Qt module asks the user, installs torch
through the PyTorch extension and the rest with ``slicer.util.pip_install``, and tells
the user when a restart is needed: a package that was already imported in this session
and got upgraded.

Example:
    >>> from FCDDetectLib.slicer_support.dependencies import missing_requirements, parse_requirement
    >>> parse_requirement("monai>=1.4  # networks").name
    'monai'
    >>> missing_requirements(["pip>=1.0"])
    []
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


def needs_restart(installed: list[Requirement]) -> list[str]:
    """Packages installed or upgraded now that this Python had already imported."""
    return [r.name for r in installed if r.import_name in sys.modules]
