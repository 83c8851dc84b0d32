"""Training works on inputs with and without skull (issue 11: many pipelines hand over brain-extracted scans).

The same tiny cohort is written twice: brain-extracted (exactly 0 outside the brain, as a
skull-stripping tool leaves it) and with a skull (a bright scalp shell around a dark bone gap,
the bone as dark as air). A lesion-supervised `fcd train` must run on each, cache finite inputs,
and evaluate its fold with lesion-level figures.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from FCDDetectLib.cli import main
from FCDDetectLib.grid.head_mask import head_mask
from FCDDetectLib.networks.bundle_metadata import read_bundle_metadata

from Testing.builders.train_fixtures import train_args, write_cohort


def _restyle(cohort, kind: str) -> None:
    """Rewrite every FLAIR of ``cohort`` as brain-extracted or with a skull around the brain."""
    for path in cohort.glob("sub-*/anat/*_FLAIR.nii.gz"):
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float32)
        brain = data > 50.0  # write_cohort's heads are ~100 inside, ~2 outside
        if kind == "stripped":
            data = np.where(brain, data, np.float32(0.0))
        else:
            from scipy import ndimage

            bone = ndimage.binary_dilation(brain, iterations=1) & ~brain
            scalp = ndimage.binary_dilation(brain, iterations=2) & ~brain & ~bone
            data = np.where(bone, np.float32(2.0), data)
            data = np.where(scalp, np.float32(150.0), data)
        nib.save(nib.Nifti1Image(data.astype(np.float32), image.affine), path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stripped", "skull"])
def test_lesion_training_on_inputs_with_and_without_skull(tmp_path, capsys, kind):
    cohort = write_cohort(tmp_path / "cohort", n_fcd=4, n_hc=4, seed=5)
    _restyle(cohort, kind)
    flair = next(cohort.glob("sub-00001/anat/*_FLAIR.nii.gz"))
    found = head_mask(np.asarray(nib.load(flair).dataobj, dtype=np.float32))
    brain = np.asarray(nib.load(flair).dataobj) > 50.0
    assert found[brain].all()  # the head found contains the whole brain on both kinds
    out = tmp_path / "run"
    code = main(train_args(cohort, out, "--supervision", "lesion", "--widen-factor", "0.25", "--decoder-width", "8",
                           epochs=1))
    assert code == 0, capsys.readouterr().err
    for fold in (0, 1):
        metrics = json.loads((out / f"fold-{fold}" / "metrics.json").read_text(encoding="utf-8"))
        assert set(metrics["lesion_level"]) == {"heatmap", "lesion_map"}
        assert metrics["lesion_level"]["heatmap"]["n_controls"] >= 1
        # trained without flips: its lesion map is one pass, and its bundle stays format 2
        meta = read_bundle_metadata(out / f"fold-{fold}" / "model.fcdbundle")
        assert meta.lesion_mirror_axes is None and meta.format_version == 2
    arrays = [np.load(p) for p in (out / "cache").rglob("*.npy") if not p.name.endswith(".roi.npy")]
    assert arrays and all(np.isfinite(a).all() for a in arrays)
