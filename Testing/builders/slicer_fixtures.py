"""A real MRML scene from the ``slicer-core`` wheel, set up like a Slicer application.

The set-up is the product's own (:class:`FCDDetectLib.mrml.offscreen_scene.OffscreenScene`,
which ``make screenshots`` uses too): an application logic owning the scene, its colour
logic's default colour nodes (so ``vtkMRMLColorTableNodeIron`` exists), and the Colors,
Volumes, Segmentations, Subject Hierarchy and Markups module logics registered with it.
No Qt and no ``slicer.app``.

The ``slicer_app`` fixture is made available to every test by ``Testing/conftest.py``.

Example (in a test module)::

    def test_load(slicer_app, tmp_path):
        node = slicer_app.load_volume(path)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ARTEFACTS = Path(__file__).resolve().parents[1] / ".tmp"
"""Where tests keep what a person may want to look at (``Testing/.tmp``, git-ignored): the
slice views' PNGs of ``test_slicer_rendering.py``."""


def make_slicer_app() -> Any:
    """An :class:`~FCDDetectLib.mrml.offscreen_scene.OffscreenScene` (skips without slicer-core)."""
    pytest.importorskip("slicer")
    from FCDDetectLib.mrml.offscreen_scene import OffscreenScene

    return OffscreenScene.create()


@pytest.fixture
def slicer_app() -> Any:
    """A fresh scene with the default colour nodes and module logics."""
    app = make_slicer_app()
    yield app
    app.scene.Clear(1)


def node_matrix(node: Any) -> np.ndarray:
    """IJK-to-RAS of a volume node as numpy."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
