"""What the Slicer panel tests share: a metadata-only bundle, a fake detect logic, its presenter, result nodes.

The fake implements the Protocol the Qt widget is given (``DetectPanelLogic``) and records
what the presenter asked; :func:`metadata_bundle` writes a bundle folder whose
``bundle.json`` is all ``list_bundles`` reads (no weights), and :func:`result_nodes` stands
in for the nodes of a shown result.

Example (in a test module)::

    def test_x(tmp_path):
        metadata_bundle(tmp_path / "models" / "m.fcdbundle")
        presenter = detect_presenter(FakeDetectLogic())
        assert presenter.result_message_kind(result_nodes()) == "info"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.slicer_support.detect_presenter import DetectPresenter
from FCDDetectLib.slicer_support.models_registry import DictSettings, ModelsFolderRegistry


def metadata_bundle(folder: Path, name: str = "m") -> Path:
    """A bundle folder whose bundle.json is valid for list_bundles (metadata only)."""
    from FCDDetectLib.networks.bundle_metadata import BundleMetadata

    folder.mkdir(parents=True)
    meta = BundleMetadata(depth=18, geometry="paper", modalities=["flair"], target_spacing=[2.0, 2.0, 2.0],
                          target_shape=[24, 24, 24], name=name)
    (folder / "bundle.json").write_text(json.dumps(meta.to_dict()), encoding="utf-8")
    return folder


@dataclass
class FakeDetectLogic:
    """Implements DetectPanelLogic; records what the presenter asked."""

    listings: dict = field(default_factory=dict)
    listed: list = field(default_factory=list)
    jumps: list = field(default_factory=list)

    def listBundles(self, folder):
        self.listed.append(folder)
        if folder not in self.listings:
            raise FCDInputError(f"models folder {folder}: unreadable")
        return self.listings[folder]

    def process(self, inputVolumes, model, **options):
        raise AssertionError("not used")

    def clusterJumpPoint(self, clustersTable, row):
        self.jumps.append((clustersTable, row))
        return [1.0, 2.0, 3.0] if row < 2 else None

    def checkInstallation(self, folders, wait=True):
        return SimpleNamespace(problems=[], text=lambda: f"checked {list(folders)}")

    def startReport(self, nodes, folder):
        raise AssertionError("the widget starts the report, after report_problem")


def detect_presenter(logic=None, **kwargs):
    """A DetectPresenter on ``logic`` (a new FakeDetectLogic by default) and an empty settings store."""
    return DetectPresenter(logic or FakeDetectLogic(), ModelsFolderRegistry(DictSettings()), **kwargs)


def result_nodes(**result_fields):
    """Stand-ins for a shown result's nodes: a result carrying ``result_fields``, a heatmap node "heat"."""
    result = SimpleNamespace(model="m", seconds=1.0, heat_score_details=None, **result_fields)
    return SimpleNamespace(result=result, summary=lambda: "FCD  p(FCD) = 0.900", heatmap_node="heat",
                           lesion_map_node=result_fields.get("lesion_map_node"))
