"""Extensions Index readiness, checked offline (issue 29, item 7).

- the extension ``CMakeLists.txt`` and the catalogue entry ``Resources/FCDDetection.json`` agree;
- the catalogue entry validates (``jsonschema``) against the schema's constraints written out here;
- the description survives ``SlicerExtensionCPack.cmake`` (no ``;``), is one or two sentences;
  contributors, status, the 5.10 template's CMake minimum, the screenshot made by ``make screenshots``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("FCDDetect", "FCDTrain")
# Fields of slicer-extension-catalog-entry-schema v1.0.1 (Slicer/Slicer Schemas/), additionalProperties false.
CATALOGUE_FIELDS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                    "build_subdirectory", "enabled", "tier"}
# The catalogue entry schema as far as it can be checked offline: written from the Extensions
# Index's documentation and checker (check_description_files.py), not downloaded (no network
# here); the real file may constrain more (see docs/slicer.md, "Submitting").
CATALOGUE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["$schema", "category", "scm_url", "scm_revision"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string", "pattern": r"slicer-extension-catalog-entry-schema-v1\.0\.1\.json#?$"},
        "category": {"type": "string", "minLength": 1},
        "scm_url": {"type": "string", "pattern": r"^https://github\.com/[^/]+/Slicer[^/]+\.git$"},
        "scm_revision": {"type": "string", "minLength": 1},
        "scm_type": {"enum": ["git"]},
        "build_dependencies": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "build_subdirectory": {"type": "string"},
        "enabled": {"type": "boolean"},
        "tier": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}
EXTENSION_STATUSES = {"Experimental", "Beta", "Production"}  # values the Extensions Index lists use
TEMPLATE_CMAKE_MINIMUM = "cmake_minimum_required(VERSION 3.20.6...3.22.6 FATAL_ERROR)"  # Slicer 5.10's template


def _cmake_value(text: str, name: str) -> str:
    match = re.search(rf'set\({name}\s+"(.*?)"\)', text, re.S)
    assert match, f"{name} not set"
    return match.group(1)


def _source(module: str) -> str:
    return (ROOT / module / f"{module}.py").read_text(encoding="utf-8")


def test_extension_cmakelists_and_catalogue_entry_agree():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    homepage = _cmake_value(text, "EXTENSION_HOMEPAGE")
    category = _cmake_value(text, "EXTENSION_CATEGORY")
    depends = _cmake_value(text, "EXTENSION_DEPENDS").split()
    assert category == "Neuroimaging" and depends == ["PyTorch"]
    for name in ("EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION"):
        assert len(_cmake_value(text, name)) > 20
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    repo_raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    for name in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        for url in _cmake_value(text, name).split():
            assert url.startswith(repo_raw), f"{name} {url} is not in {homepage}"
            if name == "EXTENSION_ICONURL":
                assert (ROOT / url[len(repo_raw):]).is_file(), f"{url}: no such file in the repository"

    entry = json.loads((ROOT / "Resources" / "FCDDetection.json").read_text(encoding="utf-8"))
    assert {"$schema", "category", "scm_url"} <= set(entry) <= CATALOGUE_FIELDS
    assert "slicer-extension-catalog-entry-schema" in entry["$schema"]
    assert entry["category"] == category
    assert entry["scm_url"].removesuffix(".git") == homepage
    assert set(depends) <= set(entry.get("build_dependencies", []))
    assert isinstance(entry.get("tier", 1), int) and 1 <= entry.get("tier", 1) <= 5


def test_extensions_index_readiness():
    """What the Extensions Index needs that can be checked offline (issue 29, item 7)."""
    import jsonschema

    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    # SlicerExtensionCPack.cmake passes the description unquoted: CMake would split it at ";".
    description = _cmake_value(text, "EXTENSION_DESCRIPTION")
    assert ";" not in description
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", description.strip()) if s]
    assert 1 <= len(sentences) <= 2, sentences
    assert "5.10 or newer" in description and "research use only" in description.lower()
    contributors = _cmake_value(text, "EXTENSION_CONTRIBUTORS")
    assert re.fullmatch(r"[^,()]+ \([^()]+\)(, [^,()]+ \([^()]+\))*", contributors), contributors
    assert _cmake_value(text, "EXTENSION_STATUS") in EXTENSION_STATUSES
    assert text.splitlines()[0] == TEMPLATE_CMAKE_MINIMUM
    homepage = _cmake_value(text, "EXTENSION_HOMEPAGE")
    repo_raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    screenshots = _cmake_value(text, "EXTENSION_SCREENSHOTURLS").split()
    assert screenshots == [repo_raw + "Resources/Screenshots/slicer-views.png"]  # made by `make screenshots`
    assert all((ROOT / url[len(repo_raw):]).is_file() for url in screenshots)
    # The catalogue entry: the schema's checks, the file named after project(), a "Slicer*" repository.
    path = ROOT / "Resources" / "FCDDetection.json"
    entry = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(CATALOGUE_SCHEMA)
    jsonschema.validate(entry, CATALOGUE_SCHEMA)
    assert re.search(r"^project\((\w+)\)", text, re.M).group(1) == path.stem
    for bad in ({**entry, "screenshot": "x"}, {**entry, "tier": 9}, {k: v for k, v in entry.items() if k != "scm_url"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, CATALOGUE_SCHEMA)
    for module in MODULES:  # the modules' own contributors line follows the same format
        assert f'self.parent.contributors = ["{contributors}"]' in _source(module)
