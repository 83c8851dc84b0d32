"""The anatomy every synthetic subject starts from: nilearn's MNI152 2009 template.

nilearn ships the ICBM152 2009 T1, grey- and white-matter maps inside its package
(``nilearn/datasets/data``); ``load_mni152_*_template`` read those files and never
download. CSF is the rest of the (soft) brain mask. Outside the brain we add a simple head
(a CSF rim, skull, scalp) from the distance to the brain so that images look like head
scans, not skull-stripped brains. Everything is cached per resolution.

Example:
    >>> t = load_template(2)  # doctest: +SKIP
    >>> t.gm.shape, t.affine[0, 0]  # doctest: +SKIP
    ((99, 117, 95), 2.0)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Template:
    """Tissue fractions on the template grid (float32, (I, J, K)) and its affine (RAS mm)."""

    resolution: int
    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    skull: np.ndarray
    scalp: np.ndarray
    boundary_vox: np.ndarray
    """(N, 3) voxel indices on the cortical grey/white boundary of the cerebrum: lesion sites."""
    ventricle_vox: np.ndarray
    """(M, 3) voxel indices of deep CSF (lateral ventricles): where a transmantle sign points."""
    head_box_mm: tuple[np.ndarray, np.ndarray]
    """(lower, upper) corners of the head's bounding box, world mm."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.gm.shape

    def world(self, vox: np.ndarray) -> np.ndarray:
        """World (mm) coordinates of (N, 3) voxel indices."""
        return vox @ self.affine[:3, :3].T + self.affine[:3, 3]


def _smooth(mask: np.ndarray, sigma_vox: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(mask.astype(np.float32), sigma_vox)


_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@functools.lru_cache(maxsize=3)
def read_1mm(kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The 1 mm map nilearn ships (max-normalised, read-only), or None if nilearn keeps it elsewhere."""
    import importlib.util

    import nibabel as nib

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the synthetic cohort needs nilearn (pip install nilearn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / _FILES[kind]
    if not path.is_file():  # pragma: no cover - other nilearn layouts
        return None
    image = nib.load(str(path))
    data = np.asarray(image.get_fdata(), np.float32)
    data /= max(float(data.max()), 1e-6)
    data.setflags(write=False)
    return data, np.asarray(image.affine, np.float64)


def _read_nilearn_map(kind: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the MNI152 2009 maps shipped in nilearn's package data, at ``resolution`` mm (1, 2, 4).

    Reads the file nilearn ships directly (importing ``nilearn.datasets`` costs ~4 s and its
    2 mm loaders resample with a cubic spline for ~1 s per map); coarser grids are a Gaussian
    anti-aliasing filter then every n-th voxel, which lands on nilearn's own 2 mm grid.
    Falls back to nilearn's loaders if the file is not where nilearn 0.10-0.14 keep it.
    """
    from scipy import ndimage

    raw = read_1mm(kind)
    if raw is None:  # pragma: no cover - other nilearn layouts
        from nilearn import datasets

        loader = {"t1": datasets.load_mni152_template, "gm": datasets.load_mni152_gm_template,
                  "wm": datasets.load_mni152_wm_template}[kind]
        image = loader(resolution=1)
        data = np.asarray(image.get_fdata(), np.float32)
        raw = (data / max(float(data.max()), 1e-6), np.asarray(image.affine, np.float64))
    data, affine = raw
    if resolution == 1:
        return data, affine
    step = int(resolution)
    data = ndimage.gaussian_filter(data, 0.42 * step)[::step, ::step, ::step]
    affine = affine @ np.diag([step, step, step, 1.0])
    return np.ascontiguousarray(data), affine


@functools.lru_cache(maxsize=2)
def load_template(resolution: int = 2) -> Template:
    """MNI152 2009 tissue maps at ``resolution`` mm (1, 2 or 4), with a synthetic head around the brain."""
    from scipy import ndimage

    t1_data, affine = _read_nilearn_map("t1", resolution)
    gm, _ = _read_nilearn_map("gm", resolution)
    wm, _ = _read_nilearn_map("wm", resolution)
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(t1_data > 0.05, iterations=2))
    brain_soft = np.clip(_smooth(brain, 0.6 / resolution), 0, 1)
    total = gm + wm
    scale = np.where(total > 1, 1 / np.maximum(total, 1e-6), 1).astype(np.float32)
    gm, wm = gm * scale, wm * scale
    csf = np.clip(brain_soft - gm - wm, 0, 1)

    # Head: distance (mm) outside the brain -> 1.5 mm CSF rim, 6 mm skull, 5 mm scalp.
    outside_mm = ndimage.distance_transform_edt(~brain) * resolution
    rim = (outside_mm > 0) & (outside_mm <= 1.5)
    csf = np.where(rim, 1.0, csf).astype(np.float32)
    skull = np.clip(_smooth((outside_mm > 1.5) & (outside_mm <= 7.5), 0.5), 0, 1)
    scalp = np.clip(_smooth((outside_mm > 7.5) & (outside_mm <= 12.5), 0.5), 0, 1)
    skull = (skull * (1 - csf)).astype(np.float32)
    scalp = (scalp * (1 - csf - skull)).clip(0, 1).astype(np.float32)

    vox = np.indices(gm.shape).reshape(3, -1).T
    world = vox @ affine[:3, :3].T + affine[:3, 3]
    x, y, z = world.T
    cerebrum = (z > -30) & ~((z < -10) & (y < -45)) & (np.abs(x) > 4)
    boundary = (gm.ravel() > 0.35) & (wm.ravel() > 0.35) & cerebrum
    deep_mm = ndimage.distance_transform_edt(brain) * resolution
    ventricle = (csf.ravel() > 0.7) & (deep_mm.ravel() > 15) & (np.abs(z) < 40) & (np.abs(x) < 35)
    head = (gm + wm + csf + skull + scalp) > 0.5
    head_world = world[head.ravel()]
    return Template(
        resolution=resolution,
        affine=affine,
        gm=gm,
        wm=wm,
        csf=csf,
        skull=skull,
        scalp=scalp,
        boundary_vox=vox[boundary],
        ventricle_vox=vox[ventricle],
        head_box_mm=(head_world.min(axis=0), head_world.max(axis=0)),
    )
