"""Issue 25, item 5: a NIfTI lies where 3D Slicer puts it, or it is refused with a line saying what to fix.

nibabel (our NIfTI reader) and SimpleITK (the ITK reader Slicer uses) disagree on some
headers: a qform-only file with a negative pixdim is mirrored by ITK and not by nibabel (the
issue's heatmap landed mirrored, 216 mm off the scan), pixdim 0 becomes 1 mm, ITK takes voxel
sizes from pixdim where nibabel takes the sform's, prefers the qform unless sform_code is 1
and refuses a sheared sform. Each test reads the same files through both readers: every
header ``load_image`` accepts must give SimpleITK's geometry; the others must be refused.
A detection's heatmap, read back by SimpleITK, lies exactly on SimpleITK's scan grid.
Headers with voxels of 1e17 mm or a 1e17 mm translation are refused before any grid is built.
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from FCDDetectLib.cli import main
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.image_io import load_image
from FCDDetectLib.io.orientation import itk_to_ras_affine

from Testing.builders.hostile_fixtures import head, tiny_bundle

ROTATION, _ = np.linalg.qr(np.array([[0.9, -0.3, 0.1], [0.3, 0.95, 0.0], [-0.1, 0.05, 0.99]]))
BASE = np.eye(4)
BASE[:3, :3] = ROTATION @ np.diag([4.0, 4.0, 4.5])
BASE[:3, 3] = [-60.0, -70.0, -55.0]


def _itk_affine(path: Path) -> np.ndarray:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return itk_to_ras_affine(reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection())


def _write(path: Path, form: str, pixdim: str, qfac: float, sform_code: int, qform_code: int) -> Path:
    """One header variant, written as nibabel would, then patched byte by byte as other tools leave them."""
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    image = nib.Nifti1Image(data, None)
    moved = BASE.copy()
    moved[:3, 3] += [5.0, 0.0, 0.0]
    sheared = BASE.copy()  # axis j tilted towards axis i, its length kept (pixdim still matches)
    tilted = BASE[:3, 1] + 0.5 * np.linalg.norm(BASE[:3, 1]) * BASE[:3, 0] / np.linalg.norm(BASE[:3, 0])
    sheared[:3, 1] = tilted / np.linalg.norm(tilted) * np.linalg.norm(BASE[:3, 1])
    qform, sform = {"qform only": (BASE, None), "sform only": (None, BASE), "both equal": (BASE, BASE),
                    "both differ": (moved, BASE), "sform sheared": (BASE, sheared)}[form]
    image.set_qform(qform, qform_code if qform is not None else 0)
    image.set_sform(sform, sform_code if sform is not None else 0)
    image.header.set_zooms((4.0, 4.0, 4.5))
    nib.save(image, path)
    raw = bytearray(path.read_bytes())
    first = struct.unpack_from("<f", raw, 80)[0]
    patch = {"negative": -first, "zero": 0.0, "other than the sform's": 2.0 * first}.get(pixdim)
    if patch is not None:
        struct.pack_into("<f", raw, 80, patch)
    struct.pack_into("<f", raw, 76, qfac)  # qfac: 1, -1 or 0 (which readers treat as 1)
    path.write_bytes(bytes(raw))
    return path


VARIANTS = [v for v in itertools.product(
    ["qform only", "sform only", "both equal", "both differ", "sform sheared"],
    ["positive", "negative", "zero", "other than the sform's"], [1.0, -1.0, 0.0], [1, 2, 4], [1, 2])
    if not (v[0] == "qform only" and v[3] != 1) and not (v[0] == "sform only" and v[4] != 1)]


def test_every_accepted_header_lies_where_simpleitk_puts_it(tmp_path):
    accepted, refused = [], []
    for index, variant in enumerate(VARIANTS):
        path = _write(tmp_path / f"h{index}.nii", *variant)
        try:
            ours = load_image(path).affine
        except FCDInputError as error:
            message = str(error)
            assert message.startswith(str(path)) and "\n" not in message
            refused.append((variant, message))
            continue
        np.testing.assert_allclose(ours, _itk_affine(path), atol=1e-3, err_msg=str(variant))
        accepted.append(variant)
    assert len(accepted) >= 40 and len(refused) >= 100, (len(accepted), len(refused))
    reasons = {variant[:2]: message for variant, message in refused if variant[2:] == (1.0, 1, 1)}
    # the cases, each with what to fix
    assert "negative voxel size" in reasons[("qform only", "negative")] and "mirrors" in reasons[("qform only", "negative")]
    assert "pixdim[1] is 0" in reasons[("qform only", "zero")]
    assert "fslorient" in reasons[("sform only", "other than the sform's")]
    assert "shears" in reasons[("sform sheared", "positive")]
    assert any("qform and the sform differ" in m for v, m in refused if v[0] == "both differ" and v[3] != 1)
    # and what both read the same way is accepted (a qfac of -1, sform_code 1 beside another qform)
    assert ("qform only", "positive", -1.0, 1, 1) in accepted and ("both differ", "positive", 1.0, 1, 2) in accepted


def test_the_heatmap_lands_on_simpleitks_scan_grid_or_the_scan_is_refused(tmp_path, capsys):
    bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")
    scan = head((30, 34, 30), seed=1)
    good = tmp_path / "oblique.nii.gz"
    image = nib.Nifti1Image(scan, BASE)
    image.set_qform(BASE, 1)
    image.set_sform(BASE, 1)
    nib.save(image, good)
    assert main(["detect", "--model", str(bundle), "--image", str(good), "--device", "cpu",
                 "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    heat = sitk.ReadImage(str(tmp_path / "out" / "heatmap.nii.gz"))
    source = sitk.ReadImage(str(good))
    assert heat.GetSize() == source.GetSize()
    np.testing.assert_allclose(heat.GetOrigin(), source.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(heat.GetSpacing(), source.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(heat.GetDirection(), source.GetDirection(), atol=1e-5)
    # the file: qform only, pixdim[1] negative (nibabel: abs; ITK: mirrored)
    mirrored = _write(tmp_path / "mirrored.nii", "qform only", "negative", 1.0, 1, 1)
    out = tmp_path / "out-mirrored"
    assert main(["detect", "--model", str(bundle), "--image", str(mirrored), "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {mirrored}: pixdim[1] is") and "mirrors" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("what", ["voxel size", "translation"])
def test_enormous_geometry_is_refused_before_any_grid_is_built(tmp_path, capsys, what):
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    if what == "voxel size":
        affine[0, 0] = 1e17
    else:
        affine[:3, 3] = 1e17
    path = tmp_path / "huge.nii.gz"
    nib.save(nib.Nifti1Image(head((30, 34, 30), seed=1), affine), path)
    with pytest.raises(FCDInputError, match="the header's" if what == "voxel size" else "translation is broken"):
        load_image(path)
    bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")
    assert main(["detect", "--model", str(bundle), "--image", str(path), "--device", "cpu",
                 "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
