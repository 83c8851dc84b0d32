"""FCDDetectLib.outputs.pdf_report: the per-subject PDF report (summary, one page per cluster, below-threshold page).

A planted subject: an oblique-free LPS-free RAS grid, non-cubic, with two hot spots in the
map (two clusters) and a weak one (below the threshold). Each cluster's axial slice carries a dark
marker square that exists only on that slice, and a second square two slices away: the
cluster page's axial panel must show the first and not the second, so the slice drawn is the
centroid slice.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from FCDDetectLib.detection.result import DetectionResult
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.explain.localized_smoothgrad import localized_smoothgrad
from FCDDetectLib.explain.saliency_regions import Region
from FCDDetectLib.grid.preprocess import Preprocessed
from FCDDetectLib.io.image_io import Image, save_image
from FCDDetectLib.outputs.pdf_report import write_report
from PIL import Image as PILImage
from pypdf import PdfReader

SHAPE = (40, 48, 36)
HOT = [((12, 14, 10), 1.0), ((28, 32, 24), 0.8)]  # (centre, peak): two clusters above 0.5
WEAK = ((28, 12, 26), 0.4)  # a cluster between 0.25 and 0.5: listed on the last page


def _blob(centre, radius=3.0):
    grid = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def _subject():
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    affine[:3, 3] = -np.array(SHAPE) * np.diag(affine)[:3] / 2
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    head = sum(((g - (n - 1) / 2) / (0.47 * n)) ** 2 for g, n in zip(grid, SHAPE, strict=True)) <= 1
    image = np.where(head, 100.0, 0.0) + rng.normal(0, 2, SHAPE)
    heat = np.zeros(SHAPE, np.float32)
    for centre, peak in [*HOT, WEAK]:
        heat[_blob(centre)] = peak
    markers = {}
    for centre, _ in HOT:
        i, j, k = centre
        # a dark square on the centroid slice, a second one 2 slices up, both inside the head, away from the blob
        image[i + 5:i + 8, j - 1:j + 2, k] = 0.0
        image[i - 8:i - 5, j - 1:j + 2, k + 2] = 0.0
        markers[centre] = ((i + 6.5, j + 0.5), (i - 6.5, j + 0.5))
    roi = _blob(HOT[0][0], 2.5)
    result = DetectionResult(probability=0.93, prediction="fcd", threshold=0.5, method="gradcam", model="planted",
                             target_class="fcd", seconds=1.0, heatmap=heat, affine=affine, modalities=["flair"],
                             inputs=["sub-00042_acq-T2sel_FLAIR.nii.gz"],
                             model_metadata={"depth": 18, "geometry": "medicalnet", "modalities": ["flair"],
                                             "training": {"source": "planted"}, "metrics": {"roc_auc": 0.9}})
    return result, Image(image.astype(np.float32), affine), roi, markers


def _gray(png):
    return np.asarray(PILImage.open(png).convert("L"), dtype=np.float32)


def _panel_pixel(box, ij, shape=SHAPE):
    """PNG pixel of voxel (i, j) in an axial panel: radiological, i.e. +x (R) on the left, +y (A) up."""
    x0, y0, x1, y1 = box
    col = x0 + (shape[0] - 0.5 - ij[0]) / shape[0] * (x1 - x0)
    row = y0 + (shape[1] - 0.5 - ij[1]) / shape[1] * (y1 - y0)
    return int(round(row)), int(round(col))


def test_report_pages_and_the_centroid_slice_drawn(tmp_path):
    result, image, roi, markers = _subject()
    prep = Preprocessed(tensor=__import__("torch").from_numpy(image.array[None] / 100), reference=image,
                        model_affine=image.affine, head_masks=np.ones((1, *SHAPE), bool), spacing=(1, 1, 1),
                        shape=SHAPE)
    import torch

    model = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3, padding=1), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 1, *SHAPE))
    result.saliency = localized_smoothgrad(model, prep, ["flair"], [Region("brain", "brain", image.array > 50)],
                                           nt_samples=2)
    files = write_report(result, [image], tmp_path / "report", roi=Image(roi, image.affine))
    reader = PdfReader(str(files.pdf))
    assert len(reader.pages) == 1 + 2 + 1  # summary, 2 clusters, below-threshold page
    assert [p.kind for p in files.pages] == ["summary", "cluster", "cluster", "below-threshold"]
    assert all(p.png.is_file() for p in files.pages)
    assert "sub-00042" in reader.pages[0].extract_text()
    assert "weak 1" in reader.pages[3].extract_text()
    for page, (centre, _) in zip(files.pages[1:3], HOT, strict=True):
        assert page.slices["axial"] == (2, centre[2])
        gray = _gray(page.png)
        on_slice, off_slice = markers[centre]
        box = page.panels["axial"]
        assert gray[_panel_pixel(box, on_slice)] < 60  # the marker of the centroid slice is drawn
        assert gray[_panel_pixel(box, off_slice)] > 180  # the one 2 slices away is not (bright head there)
    assert sorted(os.listdir(tmp_path / "report")) == ["report-page-1.png", "report-page-2.png",
                                                        "report-page-3.png", "report-page-4.png", "report.pdf"]
    # the Slicer panel's call: result and folder only, the scan read from result.inputs
    save_image(tmp_path / "flair.nii.gz", image.array, image.affine)
    result.inputs = [str(tmp_path / "flair.nii.gz")]
    assert str(write_report(result, out_dir=tmp_path / "panel")) == str(tmp_path / "panel" / "report.pdf")


def test_report_into_an_unwritable_folder_writes_nothing(tmp_path):
    result, image, _, _ = _subject()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FCDInputError, match="cannot write the report"):
        write_report(result, [image], blocker / "out")
    assert not (blocker.parent / "out").exists()
    with pytest.raises(FCDInputError, match="names no readable file"):  # the Slicer panel's call
        write_report(result, out_dir=tmp_path / "r")
    with pytest.raises(FCDInputError, match="not on the map's grid"):
        write_report(result, [Image(image.array[:-1], image.affine)], tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_saved_report_replaces_the_previous_one_as_a_unit(tmp_path):
    """The Slicer panel's *Save report* (issue 25, item 4): a report of a scan with fewer clusters
    saved into the same folder leaves no page of the previous report; a file of the user's stays."""
    import copy

    from FCDDetectLib.outputs.report_set import REPORT_MANIFEST, write_report_set

    result, image, _, _ = _subject()
    out = tmp_path / "saved"
    assert write_report_set(result, [image], out) == out / "report.pdf"
    first = sorted(os.listdir(out))
    assert first == sorted([REPORT_MANIFEST, "report-page-1.png", "report-page-2.png", "report-page-3.png",
                            "report-page-4.png", "report.pdf"])
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    fewer = copy.deepcopy(result)
    fewer.heatmap[_blob(HOT[1][0])] = 0.0  # one cluster less: one page less
    fewer.probability = 0.61
    write_report_set(fewer, [image], out)
    assert sorted(os.listdir(out)) == sorted(["notes.txt", REPORT_MANIFEST, "report-page-1.png",
                                              "report-page-2.png", "report-page-3.png", "report.pdf"])
    manifest = json.loads((out / REPORT_MANIFEST).read_text(encoding="utf-8"))
    assert manifest["probability"] == 0.61 and set(manifest["files"]) == set(manifest["pages"]) | {"report.pdf"}
    assert len(PdfReader(str(out / "report.pdf")).pages) == 3
