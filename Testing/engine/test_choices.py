"""Each choice list is declared once, in FCDDetectLib.choices, and imported everywhere else.

The test reads every Python file of the project (packages, Slicer module files, benchmarks,
examples, screenshot script) and fails on any tuple, list or set literal of constants that
holds a whole choice list (the same values, or more): a second copy of a list.
"""

from __future__ import annotations

import ast
from pathlib import Path

from FCDDetectLib import choices

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("FCDDetect", "FCDTrain", "benchmarks", "examples", "Resources")
ALLOWED = {ROOT / "FCDDetect" / "FCDDetectLib" / "choices.py"}


def _literals(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
            if all(isinstance(e, ast.Constant) for e in node.elts):
                yield node, {e.value for e in node.elts}


def test_every_choice_list_is_declared_once():
    lists = {name: set(values) for name, values in choices.CHOICE_LISTS.items() if len(values) >= 2}
    copies = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in ALLOWED:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node, values in _literals(tree):
                for name, wanted in lists.items():
                    if wanted <= values:
                        copies.append(f"{path.relative_to(ROOT)}:{node.lineno} repeats {name}")
    assert copies == []


def test_lists_are_tuples_without_duplicates():
    for name, values in choices.CHOICE_LISTS.items():
        assert isinstance(values, tuple) and len(set(values)) == len(values), name
    assert set(choices.CAM_METHODS) <= set(choices.EXPLANATION_METHODS)
    assert {"t1", "flair"} == set(choices.MODALITIES)
    assert all(set(m.split("+")) <= set(choices.MODALITIES) for m in choices.INPUT_MODALITIES)


def test_cli_and_config_read_the_lists():
    from FCDDetectLib.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # argparse keeps sub-commands here

    def option(command: str, flag: str):
        return next(a for a in sub[command]._actions if flag in a.option_strings)

    assert tuple(option("detect", "--device").choices) == choices.DEVICES
    assert tuple(option("detect", "--method").choices) == choices.EXPLANATION_METHODS
    assert tuple(option("train", "--depth").choices) == choices.DEPTHS
    assert tuple(option("train", "--pretrained").choices) == choices.PRETRAINED_STRATEGIES
    assert tuple(option("train", "--modality").choices) == choices.INPUT_MODALITIES
    assert tuple(option("experiment", "--modalities").choices) == choices.INPUT_MODALITIES
    assert tuple(option("evaluate", "--method").choices) == choices.EXPLANATION_METHODS
