"""The Qt side and the packaging, checked without Qt or a Slicer build.

- each ``.ui`` parses, and every ``self.ui.NAME`` the module's Python uses exists in it;
- every ``SlicerParameterName`` of the ``.ui`` is a field of the module's parameterNodeWrapper;
- the module files import nothing heavy at module scope (torch, MONAI... come on first use);
- each module's ``CMakeLists.txt`` lists every Python file and resource of the module;
- (the extension ``CMakeLists.txt`` and the catalogue entry: ``test_slicer_index.py``);
- ``requirements.txt`` holds ``>=`` bounds for what the first-use installer checks.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from FCDDetectLib.slicer_support.dependencies import (
    install_decision,
    install_plan,
    missing_requirements,
    parse_requirement,
    read_requirements,
    restart_needed,
)

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("FCDDetect", "FCDTrain")
HEAVY = {"torch", "monai", "captum", "nibabel", "numpy", "scipy", "sklearn", "matplotlib", "FCDDetectLib.detection.detect"}


def _ui(module: str) -> ET.Element:
    return ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def _source(module: str) -> str:
    return (ROOT / module / f"{module}.py").read_text(encoding="utf-8")


def _widget_sources(module: str) -> str:
    """The module file and its Qt package (FCDDetectWidgets / FCDTrainWidgets)."""
    files = [ROOT / module / f"{module}.py", *sorted((ROOT / module / f"{module}Widgets").glob("*.py"))]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


@pytest.mark.parametrize("module", MODULES)
def test_ui_parses_and_has_every_widget_the_code_uses(module):
    root = _ui(module)
    assert root.tag == "ui"
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    names = {w.get("name") for w in root.iter("widget")}
    source = _widget_sources(module)
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    used |= set(re.findall(r'"(\w+(?:LineEdit))"', source))  # path fields named in PATH_FIELDS
    assert used, "the module uses no widget?"
    assert used <= names, f"widgets used by {module}.py but missing from the .ui: {sorted(used - names)}"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    standard = {"QLabel", "QPushButton", "QComboBox", "QCheckBox", "QSpinBox", "QDoubleSpinBox", "QProgressBar",
                "QPlainTextEdit", "QLineEdit",
                "QListWidget", "QWidget"}
    classes = {w.get("class") for w in root.iter("widget")}
    assert classes - standard <= declared, f"undeclared custom widgets: {classes - standard - declared}"
    for connection in root.iter("connection"):  # MRML widgets get the scene
        assert connection.findtext("receiver") in names


def _parameter_fields(module: str) -> set[str]:
    tree = ast.parse((ROOT / module / f"{module}Widgets" / "parameters.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError(f"{module}Widgets/parameters.py has no @parameterNodeWrapper class")


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_in_ui_are_parameter_node_fields(module):
    fields = _parameter_fields(module)
    bound = {}
    for widget in _ui(module).iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[widget.get("name")] = prop.findtext("string")
    assert bound, "no widget is bound to the parameter node"
    unknown = {w: p for w, p in bound.items() if p not in fields}
    assert not unknown, f"SlicerParameterName not in the parameter node: {unknown}"
    assert len(set(bound.values())) == len(bound), "two widgets bound to one parameter"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_nothing_heavy_at_module_scope(module):
    tree = ast.parse(_source(module))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module)
    heavy = {name for name in top_level if name.split(".")[0] in HEAVY or name in HEAVY}
    assert not heavy, f"{module}.py imports {heavy} at module scope"
    assert "pip_install" not in "".join(ast.get_source_segment(_source(module), n) or "" for n in tree.body
                                        if not isinstance(n, (ast.FunctionDef, ast.ClassDef)))


def _cmake_list(text: str, variable: str, module: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"no set({variable} ...)"
    return [item.replace("${MODULE_NAME}", module) for item in match.group(1).split()]


@pytest.mark.parametrize("module", MODULES)
def test_module_cmakelists_lists_every_script_and_resource(module):
    base = ROOT / module
    text = (base / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"set(MODULE_NAME {module})" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    scripts = set(_cmake_list(text, "MODULE_PYTHON_SCRIPTS", module))
    on_disk = {p.relative_to(base).as_posix() for p in base.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(on_disk - scripts)
    assert not missing, "run `.venv/bin/python Testing/test_slicer_ui.py`, or add to " \
        f"{module}/CMakeLists.txt MODULE_PYTHON_SCRIPTS: " + " ".join(
        m.replace(f"{module}Lib/", "${MODULE_NAME}Lib/", 1) for m in missing)
    assert not scripts - on_disk, f"listed but absent: {sorted(scripts - on_disk)}"
    resources = set(_cmake_list(text, "MODULE_PYTHON_RESOURCES", module))
    present = {p.relative_to(base).as_posix() for p in (base / "Resources").rglob("*") if p.is_file()}
    assert resources == present, f"resources listed {sorted(resources)} != present {sorted(present)}"
    assert f"Resources/Icons/{module}.png" in resources and f"Resources/UI/{module}.ui" in resources


def _cmake_value(text: str, name: str) -> str:
    match = re.search(rf'set\({name}\s+"(.*?)"\)', text, re.S)
    assert match, f"{name} not set"
    return match.group(1)


def test_requirements_have_lower_bounds_for_the_checked_packages():
    path = ROOT / "FCDDetect" / "Resources" / "requirements.txt"
    requirements = {r.name: r for r in read_requirements(path)}
    for name in ("torch", "monai", "captum", "nibabel"):
        assert requirements[name].minimum, f"{name} needs a >= bound"
    assert "requirements.txt" in _widget_sources("FCDDetect")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def test_torch_bound_covers_what_monai_and_captum_need():
    """pip installs the newest MONAI: its torch bound must not be above ours, or pip would
    replace the torch build PyTorchUtils chose (issue 14, item 8). Read from the installed
    MONAI / captum metadata (the versions requirements-dev.txt pins)."""
    import importlib.metadata

    ours = {r.name: r for r in read_requirements(ROOT / "FCDDetect" / "Resources" / "requirements.txt")}
    for package in ("monai", "captum"):
        needs = [r for r in importlib.metadata.requires(package) or [] if re.match(r"torch\s*>=", r)
                 and "extra" not in r]
        assert needs, f"{package} declares no torch bound?"
        needed = _version_tuple(needs[0].split(">=")[1])
        assert _version_tuple(ours["torch"].minimum) >= needed, f"{package} needs {needs[0]}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in ("torch", "monai", "captum"):
        assert f'"{name}>={ours[name].minimum}"' in pyproject, f"pyproject and requirements.txt disagree on {name}"


def test_dependency_check_logic():
    assert parse_requirement("monai>=1.4  # networks").minimum == "1.4"
    with pytest.raises(ValueError, match="unsupported"):
        parse_requirement("torch==2.1")
    assert missing_requirements(["numpy>=1.0", "pytest"]) == []
    missing = missing_requirements(["numpy>=999.0", "fcd-surely-absent-package>=1.0"])
    assert [r.name for r in missing] == ["numpy", "fcd-surely-absent-package"]


def test_install_order_torch_first_then_pip_pinned_to_the_installed_torch():
    missing = [parse_requirement(t) for t in ("monai>=1.4", "torch>=2.8", "captum>=0.7")]
    plan = install_plan(missing)
    assert str(plan.torch) == "torch>=2.8"
    assert [r.name for r in plan.pip_requirements] == ["monai", "captum"]
    assert plan.pip_arguments("2.9.1+cu128", "/tmp/c.txt") == ["monai>=1.4", "captum>=0.7", "-c", "/tmp/c.txt"]
    assert plan.pip_arguments(None, "/tmp/c.txt") == ["monai>=1.4", "captum>=0.7"]  # no torch: nothing to pin
    assert install_plan([parse_requirement("torch>=2.8")]).pip_arguments("2.9", "c.txt") == []


def test_restart_is_decided_from_versions_seen_after_installing():
    reqs = [parse_requirement(t) for t in ("numpy>=1.0", "monai>=1.4", "fcd-absent>=1.0")]
    imported = {"numpy", "monai"}
    before = {"numpy": "1.26.0", "monai": "1.4.0", "fcd-absent": None}
    # pip left monai alone and upgraded numpy: only numpy's old code is in memory.
    after = {"numpy": "2.0.0", "monai": "1.4.0", "fcd-absent": "1.0"}
    assert restart_needed(reqs, before, after, imported) == ["numpy"]
    assert restart_needed(reqs, before, before, imported) == []  # nothing changed: no restart
    assert restart_needed(reqs, before, after, set()) == []  # nothing imported yet: no restart


def test_nothing_is_installed_while_slicer_runs_its_tests_and_missing_packages_fail():
    missing = [parse_requirement("fcd-absent>=1.0")]
    assert install_decision([], testing=True) == "ready"
    assert install_decision(missing, testing=True) == "refuse"  # ensureDependencies raises: the test fails
    assert install_decision(missing, testing=False) == "ask"
    installer = (ROOT / "FCDDetect" / "FCDDetectWidgets" / "installer.py").read_text(encoding="utf-8")
    assert 'if decision == "refuse":\n        raise RuntimeError(' in installer
    self_test = (ROOT / "FCDDetect" / "FCDDetectWidgets" / "self_test.py").read_text(encoding="utf-8")
    assert "self.assertTrue(ensureDependencies(askConfirmation=False)" in self_test  # fails, never skips
    assert "return" not in self_test.split("def test_FCDDetect_sample_detection")[1].split("def load")[0]


def test_one_confirmation_per_install():
    """The installer's question is the only one: PyTorchUtils is told not to ask again."""
    installer = (ROOT / "FCDDetect" / "FCDDetectWidgets" / "installer.py").read_text(encoding="utf-8")
    assert installer.count("confirmOkCancelDisplay(") == 1
    assert "askConfirmation=False, torchVersionRequirement" in installer
    assert "askConfirmation=askConfirmation, torchVersionRequirement" not in installer
    restart = installer.split("restart = restart_needed(")[1]
    assert "infoDisplay(" in restart and "errorDisplay" not in restart and "return False" in restart


@pytest.mark.parametrize("module", MODULES)
def test_no_path_field_is_bound_to_a_path_parameter(module):
    """A ctkPathLineEdit bound by connectGui needs a pathlib.Path parameter, whose unset
    value shows and reads as "." (issue 14, items 2 and 10): they are bound by hand to str."""
    for widget in _ui(module).iter("widget"):
        if widget.get("class") == "ctkPathLineEdit":
            bound = [p for p in widget.findall("property") if p.get("name") == "SlicerParameterName"]
            assert not bound, f"{widget.get('name')} is bound by connectGui"
    tree = ast.parse((ROOT / module / f"{module}Widgets" / "parameters.py").read_text(encoding="utf-8"))
    annotations = [ast.unparse(n.annotation) for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)]
    assert "Path" not in annotations


def test_dataset_browse_picks_a_folder():
    """With the Files flag ctkPathLineEdit opens a file dialog: a BIDS folder could not be picked."""
    for widget in _ui("FCDTrain").iter("widget"):
        if widget.get("name") == "dataPathLineEdit":
            filters = next(p.findtext("set") for p in widget.findall("property") if p.get("name") == "filters")
            assert "Dirs" in filters and "Files" not in filters
    assert "dataManifestButton" in {w.get("name") for w in _ui("FCDTrain").iter("widget")}


def _python_files(*folders: str) -> list[Path]:
    return [p for f in folders for p in (ROOT / f).rglob("*.py") if "__pycache__" not in p.parts]


def test_engine_and_panels_import_no_qt():
    """The engine packages stay Qt-free: only FCDDetectWidgets / FCDTrainWidgets (and the
    module files) import qt, ctk or slicer.app-dependent code."""
    for path in _python_files("FCDDetect/FCDDetectLib", "FCDTrain/FCDTrainLib"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in {"qt", "ctk", "FCDDetectWidgets", "FCDTrainWidgets"}, f"{path} imports {name}"
        uses_app = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "app"
                    and isinstance(n.value, ast.Name) and n.value.id == "slicer"]
        assert not uses_app, f"{path} uses slicer.app"


def test_module_files_and_widgets_parse_on_older_python():
    """An older Slicer (Python 3.9) must reach the version message, not a SyntaxError: the
    module files check the version first and import only these files then (no engine). The
    engine targets 3.10+ (``zip(strict=True)`` is fine there)."""
    files = [ROOT / m / f"{m}.py" for m in MODULES]
    files += [ROOT / "FCDDetect" / "FCDDetectWidgets" / f for f in ("__init__.py", "compat.py", "unsupported.py")]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
        if path.parent.name == "FCDDetectWidgets":  # before the check: no engine import
            modules = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
            modules |= {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
            assert not {m for m in modules if m.startswith(("FCDDetectLib", "FCDTrainLib"))}, path
    for module in MODULES:  # the version is checked before any engine import
        source = _source(module)
        assert source.index("if slicer_version_problem(") < source.index(f"    from {module}Widgets.")
    for path in _python_files("FCDDetect/FCDDetectLib", "FCDTrain/FCDTrainLib"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


def test_slicer_version_gate():
    from FCDDetectWidgets.compat import slicer_version_problem  # plain Python: importable without Qt

    assert slicer_version_problem(5, 10, python=(3, 12)) is None
    assert slicer_version_problem(6, 0, python=(3, 12)) is None
    for major, minor, python in ((5, 8, (3, 9)), (5, 6, (3, 9)), (5, 10, (3, 9))):
        message = slicer_version_problem(major, minor, python=python)
        assert message and "5.10 or newer" in message and f"{major}.{minor}" in message
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "5.10 or newer" in _cmake_value(text, "EXTENSION_DESCRIPTION")
    assert "Slicer 5.10 or newer" in (ROOT / "README.md").read_text(encoding="utf-8")
    for module in MODULES:
        assert "versionProblem()" in _widget_sources(module)


def update_module_cmakelists(module: str) -> bool:
    """Rewrite the SCRIPTS / RESOURCES lists of ``module/CMakeLists.txt`` from the files on disk.

    For maintainers: ``.venv/bin/python Testing/test_slicer_ui.py`` after adding files. Returns True
    when the file changed.
    """
    base = ROOT / module
    path = base / "CMakeLists.txt"
    text = path.read_text(encoding="utf-8")
    scripts = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py") if "__pycache__" not in p.parts)
    scripts = [f"{module}.py"] + [s for s in scripts if s != f"{module}.py"]
    scripts = [s.replace(module, "${MODULE_NAME}", 1) if s.startswith(module) else s for s in scripts]
    resources = sorted(p.relative_to(base).as_posix() for p in (base / "Resources").rglob("*") if p.is_file())
    for variable, items in (("MODULE_PYTHON_SCRIPTS", scripts), ("MODULE_PYTHON_RESOURCES", resources)):
        block = f"set({variable}\n" + "".join(f"  {item}\n" for item in items) + "  )"
        text = re.sub(rf"set\({variable}\s+.*?\)", lambda _m, b=block: b, text, count=1, flags=re.S)
    changed = text != path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    return changed


if __name__ == "__main__":
    for name in MODULES:
        print(f"{name}/CMakeLists.txt", "updated" if update_module_cmakelists(name) else "already complete")
