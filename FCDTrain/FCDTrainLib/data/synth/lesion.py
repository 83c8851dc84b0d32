"""FCD type II lesions written into template-space tissue maps.

A lesion sits on the grey/white boundary of a random cortical site of the cerebrum, with a
random irregular ellipsoidal extent of about 0.5-5 cm3, and shows the MRI signs of FCD-II
(paper section 1; Blumcke/ILAE):

- cortical thickening: grey matter extends 2-3 mm deeper into the white matter;
- blurring of the grey-white junction: tissue maps smoothed inside the lesion;
- subcortical FLAIR hyperintensity (and mild T1 hypointensity) of the white matter under it;
- in about half the lesions a transmantle sign: a FLAIR-bright band in the white matter
  tapering from the lesion toward the nearest lateral ventricle;
- for conspicuous lesions (subtlety below 0.5) a bulky subcortical core: a ball of
  FLAIR-bright (slightly T1-dark) white matter under the lesion, as in many FCD IIb.
  At subtlety 0 it is about twice as bright as cortex, which is what a ResNet trained from
  scratch on a few hundred brains needs to find the lesion at all (README, "The demo").

``subtlety`` (0..1) scales every sign down (amplitude x (1 - 0.75 subtlety)) and shrinks
the lesion, so lesions range from obvious to hard to see. The ROI is the lesion's extent
(the thickened/blurred/hyperintense cortex and the transmantle band).

``signs`` (``fcd synth --randomize``, :func:`FCDTrainLib.data.synth.randomize.random_signs`)
gives each sign its own strength in [0, 1] (:data:`SIGNS`; 0: absent): ``flair`` the
subcortical FLAIR hyperintensity with its T1 hypointensity and core, ``blur`` the blurred
junction, ``thickening`` the thicker cortex, ``transmantle`` the band (drawn only where the
strength is above 0). Without ``signs`` every sign is at full strength and the band is a coin
flip, as before (the same random draws, so the same lesions).

Example:
    >>> lesion = make_lesion(np.random.default_rng(1), load_template(2), subtlety=0.3)  # doctest: +SKIP
    >>> lesion.info["transmantle"] in (True, False)  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from FCDTrainLib.data.synth.deform import rotation_matrix
from FCDTrainLib.data.synth.template import Template


@dataclass
class Lesion:
    """Changes to apply in template space: new GM/WM maps, FLAIR/T1 additions (x WM intensity), soft ROI."""

    gm: np.ndarray
    wm: np.ndarray
    flair_add: np.ndarray
    t1_add: np.ndarray
    roi: np.ndarray
    info: dict


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _lobe(x: float, y: float, z: float) -> str:
    if y < -72:
        return "OL"
    if z < 5 and y > -70 and abs(x) > 30 and y < 20:
        return "TL"
    if y > -15:
        return "FL"
    return "PL"


def core_gain(subtlety: float) -> float:
    """Strength of the subcortical hyperintense core (x WM intensity, before ``amplitude``).

    2.0 at subtlety 0 (the core is about twice as bright as cortex on FLAIR), 0.8 at the
    default 0.3, none from subtlety 0.5 on.
    """
    return 2.0 * float(np.clip(1.0 - 2.0 * float(subtlety), 0.0, 1.0))


def _into_white_matter(template: Template, centre_vox: np.ndarray) -> np.ndarray:
    """Unit vector (world, mm) from the grey/white boundary at ``centre_vox`` into the white matter."""
    from scipy import ndimage

    lo = np.maximum(centre_vox - 6, 0)
    hi = np.minimum(centre_vox + 7, template.shape)
    local = ndimage.gaussian_filter(template.wm[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], 1.5)
    at = tuple(centre_vox - lo)
    gradient = np.array([np.gradient(local, axis=axis)[at] for axis in range(3)])
    direction = np.linalg.solve(template.affine[:3, :3].T, gradient)  # gradients map by the inverse transpose
    norm = float(np.linalg.norm(direction))
    return direction / norm if norm > 1e-9 else np.zeros(3)


SIGNS = ("flair", "blur", "thickening", "transmantle")
"""The FCD-II signs a lesion may show (``signs`` of :func:`make_lesion`)."""


def make_lesion(rng: np.random.Generator, template: Template, subtlety: float = 0.3,
                signs: dict[str, float] | None = None) -> Lesion:
    """A random FCD-II lesion on ``template``; returns modified tissue maps and signal changes.

    ``signs``: strength (0..1) of each of :data:`SIGNS`; None: all at full strength (see the module docstring).
    """
    from scipy import ndimage

    strength = {name: 1.0 for name in SIGNS} if signs is None else {n: float(signs.get(n, 0.0)) for n in SIGNS}

    res = float(template.resolution)
    amplitude = (1.0 - 0.75 * float(subtlety)) * rng.uniform(0.8, 1.0)
    volume_mm3 = float(np.exp(rng.uniform(np.log(500.0), np.log(5000.0)))) * (1.0 - 0.4 * float(subtlety))
    radius = (3.0 * volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
    centre_vox = template.boundary_vox[rng.integers(len(template.boundary_vox))]
    centre = template.world(centre_vox[None].astype(float))[0]
    transmantle = bool(rng.random() < 0.5) and len(template.ventricle_vox) > 0
    if signs is not None:
        transmantle = strength["transmantle"] > 0 and len(template.ventricle_vox) > 0

    ventricles = template.world(template.ventricle_vox.astype(float))
    target = ventricles[np.argmin(((ventricles - centre) ** 2).sum(axis=1))] if transmantle else centre
    points = [centre - radius - 8, centre + radius + 8]
    if transmantle:
        points += [target - 6, target + 6]
    lower_mm, upper_mm = np.min(points, axis=0), np.max(points, axis=0)
    inv = np.linalg.inv(template.affine)
    corners = np.array([lower_mm, upper_mm]) @ inv[:3, :3].T + inv[:3, 3]
    lo = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, template.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))

    gm, wm, csf = template.gm.copy(), template.wm.copy(), template.csf
    g, w, c = gm[box], wm[box], csf[box]
    vox = np.indices(g.shape).reshape(3, -1).T + lo
    world = template.world(vox.astype(float))
    rel = world - centre

    # Irregular ellipsoid: random axes (product 1), random orientation, smooth radial noise.
    axes = rng.uniform(0.75, 1.3, 3)
    axes /= np.prod(axes) ** (1 / 3)
    local = rel @ rotation_matrix(rng.uniform(0, np.pi, 3))
    distance = np.sqrt(((local / (axes * radius)) ** 2).sum(axis=1)).reshape(g.shape)
    wobble = ndimage.gaussian_filter(rng.normal(size=g.shape), 3.0 / res)
    wobble /= max(float(wobble.std()), 1e-6)
    extent = _sigmoid((1.0 - distance * (1 + 0.18 * wobble)) * radius / 0.8).astype(np.float32)
    extent[extent < 0.02] = 0  # no far tails: every change stays inside (the rim of) the ROI

    core_strength = amplitude * core_gain(subtlety) * strength["flair"]
    core = np.zeros_like(extent)
    if core_strength > 0:
        # Subcortical FLAIR hyperintensity as a bulk under the lesion (FCD IIb): a ball of
        # the lesion's radius, centred half a radius deeper into the white matter. The
        # grey/white junction it touches is blurred like the rest of the lesion.
        inward = _into_white_matter(template, centre_vox)
        core_distance = np.linalg.norm(rel - 0.5 * radius * inward, axis=1).reshape(g.shape)
        core = _sigmoid((radius - core_distance) / 1.0).astype(np.float32)
        core[core < 0.02] = 0

    # Cortical thickening: GM pushed ~2-3 mm into the underlying WM.
    thick = np.clip(1.9 * ndimage.gaussian_filter(g, 1.6 / res), 0, 1)
    moved = np.minimum(np.clip(strength["thickening"] * amplitude * extent * (thick - g), 0, None), w)
    g, w = g + moved, w - moved
    extent = np.maximum(extent, core)
    # Blurred grey-white junction.
    weight = 0.85 * strength["blur"] * amplitude * extent
    g = (1 - weight) * g + weight * ndimage.gaussian_filter(g, 2.0 / res)
    w = (1 - weight) * w + weight * ndimage.gaussian_filter(w, 2.0 / res)
    total = g + w + c
    scale = np.where(total > 1, 1 / np.maximum(total, 1e-6), 1)
    g, w = (g * scale).astype(np.float32), (w * scale).astype(np.float32)

    near_cortex = np.clip(ndimage.gaussian_filter(g, 3.0 / res) * 3.0, 0, 1)
    # At full amplitude (subtlety 0) the lesion's white matter is clearly brighter than
    # cortex on FLAIR (WM 0.55 x 1.6-1.9 vs GM 0.78); at the default subtlety 0.3 it is
    # about as bright as cortex to 1.2x; at subtlety 1 darker than cortex.
    flair_add = strength["flair"] * amplitude * rng.uniform(0.6, 0.9) * extent * (w * near_cortex + 0.35 * g)
    t1_add = -strength["flair"] * amplitude * rng.uniform(0.05, 0.10) * extent * w
    roi = extent * np.clip((g + w) / 0.5, 0, 1)
    wm_part = np.clip(w / 0.4, 0, 1)

    if core_strength > 0:
        flair_add = flair_add + core_strength * core * wm_part
        t1_add = t1_add - 0.05 * core_strength * core * wm_part
        roi = np.maximum(roi, np.where(core > 0.25, wm_part, 0))

    if transmantle:
        axis = target - centre
        t = np.clip((rel @ axis) / max(float(axis @ axis), 1e-6), 0, 1)
        gap = np.linalg.norm(rel - t[:, None] * axis, axis=1)
        tube_radius = max(0.45 * radius, 1.5 * res) * (1 - 0.8 * t)
        tube = (_sigmoid((tube_radius - gap) / 0.6) * (1 - 0.5 * t)).reshape(g.shape)
        tube[tube < 0.1] = 0  # the band's thin tail near the ventricle stays inside the ROI
        band = tube * wm_part
        flair_add = flair_add + strength["transmantle"] * amplitude * 0.5 * band
        t1_add = t1_add - strength["transmantle"] * amplitude * 0.05 * band
        roi = np.maximum(roi, np.where(tube > 0, wm_part, 0))

    gm[box], wm[box] = g, w
    full_flair, full_t1, full_roi = (np.zeros(template.shape, np.float32) for _ in range(3))
    full_flair[box], full_t1[box], full_roi[box] = flair_add, t1_add, roi
    info = {
        "centre_mm": [round(float(v), 1) for v in centre],
        "target_volume_cm3": round(volume_mm3 / 1000, 2),
        "transmantle": transmantle,
        "amplitude": round(float(amplitude), 3),
        "hemisphere": "L" if centre[0] < 0 else "R",
        "lobe": _lobe(*centre),
    }
    if signs is not None:
        info["signs"] = {name: round(value, 3) for name, value in strength.items()}
    return Lesion(gm, wm, full_flair, full_t1, full_roi, info)
