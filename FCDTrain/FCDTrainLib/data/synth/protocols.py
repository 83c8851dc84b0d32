"""Acquisition protocols of the synthetic cohort, named after ds004199's acq labels.

``new`` is the Bonn 3T TrioTim protocol every ds004199 control has (0.8 mm MPRAGE
``iso08`` + 1 mm 3D FLAIR ``T2sel``); the older Trio protocols have a 1 mm sagittal MPRAGE
(``sag111``) with a 3D FLAIR (``tse3dvfl``) or a 2D FLAIR with 4 mm slices (``tra4mm``,
``cor4mm``). Each protocol stores its images in its own orientation with a small random
tilt, so readers must use the affines. Voxel sizes shrink with ``--size``: ``full`` is the
real protocol, ``small`` about 3 mm, ``tiny`` about 6 mm (unit tests).

Example:
    >>> PROTOCOLS["old-2d-tra"].flair.acq, PROTOCOLS["old-2d-tra"].flair.zooms["full"]
    ('tra4mm', (0.7, 0.7, 4.0))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from FCDDetectLib.choices import SYNTH_SIZES

from FCDTrainLib.data.synth.deform import rotation_matrix

SIZES = SYNTH_SIZES  # declared once, with the other choice lists
TEMPLATE_RESOLUTION = {"tiny": 4, "small": 2, "full": 1}

_AXES = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}


@dataclass(frozen=True)
class Sequence:
    """One acquisition: BIDS acq label, suffix, voxel sizes per size, storage orientation, sidecar facts."""

    acq: str
    suffix: str  # "T1w" or "FLAIR"
    zooms: dict[str, tuple[float, float, float]]
    orientation: str  # direction of increasing voxel index per axis, e.g. "LAS"
    mr_type: str  # "3D" or "2D"
    protocol_name: str
    model: str

    def sidecar(self, size: str) -> dict:
        """A BIDS JSON sidecar with the fields the audit reads."""
        return {
            "Modality": "MR",
            "MagneticFieldStrength": 3,
            "Manufacturer": "Siemens",
            "ManufacturersModelName": self.model,
            "MRAcquisitionType": self.mr_type,
            "SliceThickness": max(self.zooms[size]),
            "ProtocolName": self.protocol_name,
            "SeriesDescription": self.protocol_name,
            "ConversionSoftware": "FCDTrainLib.data.synth (synthetic image)",
        }


@dataclass(frozen=True)
class Protocol:
    name: str
    era: str  # "new" or "old"
    t1: Sequence
    flair: Sequence


def _iso(full: float, small: float = 3.0, tiny: float = 6.0) -> dict[str, tuple[float, float, float]]:
    return {"full": (full,) * 3, "small": (small,) * 3, "tiny": (tiny,) * 3}


_THICK = {"full": (0.7, 0.7, 4.0), "small": (2.2, 2.2, 4.0), "tiny": (4.5, 4.5, 8.5)}
_ISO08 = Sequence("iso08", "T1w", _iso(0.8, 2.8), "LAS", "3D", "t1_mpr_32ch_iso_0.8", "TrioTim")
_T2SEL = Sequence("T2sel", "FLAIR", _iso(1.0), "RAS", "3D", "flair_32ch_iso_1.0_T2sel", "TrioTim")
_SAG111 = Sequence("sag111", "T1w", _iso(1.0), "ASR", "3D", "t1_mpr_ns_sag_1x1x1", "Trio")
_TSE3D = Sequence("tse3dvfl", "FLAIR", _iso(1.0), "RAS", "3D", "flair_tse3dvfl_opt_fov_big", "Trio")
_TRA4 = Sequence("tra4mm", "FLAIR", _THICK, "LAS", "2D", "flair_tra_4mm 0.7x0.7", "Trio")
_COR4 = Sequence("cor4mm", "FLAIR", _THICK, "LSA", "2D", "flair_cor_4mm_0.7x0.7", "Trio")

PROTOCOLS = {
    "new": Protocol("new", "new", _ISO08, _T2SEL),
    "old-3d": Protocol("old-3d", "old", _SAG111, _TSE3D),
    "old-2d-tra": Protocol("old-2d-tra", "old", _SAG111, _TRA4),
    "old-2d-cor": Protocol("old-2d-cor", "old", _SAG111, _COR4),
}
OLD_CYCLE = ("old-3d", "old-2d-tra", "old-3d", "old-2d-cor")
"""Older protocols handed out in turn: half 3D FLAIR, half 2D FLAIR."""


def make_grid(
    sequence: Sequence,
    size: str,
    box_mm: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    tilt_deg: float = 3.0,
    margin_mm: float = 8.0,
    margins: np.ndarray | None = None,
) -> tuple[tuple[int, int, int], np.ndarray]:
    """``(shape, affine)`` of a scan of ``sequence`` covering ``box_mm`` (world), randomly tilted.

    ``margins`` (2, 3): the field of view's margin (mm) before and after the box along each
    voxel axis, instead of ``margin_mm`` on every side (an off-centre head; negative: cut).
    """
    zooms = np.asarray(sequence.zooms[size], float)
    directions = np.array([_AXES[c] for c in sequence.orientation], float).T
    directions = rotation_matrix(np.deg2rad(rng.uniform(-tilt_deg, tilt_deg, 3))) @ directions
    lower, upper = (np.asarray(v, float) for v in box_mm)
    corners = np.array([[x, y, z] for x in (lower[0], upper[0]) for y in (lower[1], upper[1]) for z in (lower[2], upper[2])])
    projected = corners @ directions  # (8, 3) coordinate along each voxel axis
    before, after = (margin_mm, margin_mm) if margins is None else (np.asarray(margins[0]), np.asarray(margins[1]))
    start = projected.min(axis=0) - before
    extent = projected.max(axis=0) + after - start
    shape = tuple(int(np.ceil(e / z)) + 1 for e, z in zip(extent, zooms, strict=True))
    affine = np.eye(4)
    affine[:3, :3] = directions @ np.diag(zooms)
    affine[:3, 3] = directions @ start
    return shape, affine


def thick_flair(acq: str, plane: str, in_plane: dict[str, float], slice_mm: float) -> Sequence:
    """A 2D FLAIR with ``slice_mm`` slices in ``plane`` (``tra``, ``cor`` or ``sag``); ``in_plane`` voxel per size.

    Example:
        >>> thick_flair("sag5mm", "sag", {"small": 2.2}, 5.0).zooms["small"], thick_flair("x", "sag", {}, 5.0).orientation
        ((2.2, 2.2, 5.0), 'ASR')
    """
    orientation = {"tra": "LAS", "cor": "LSA", "sag": "ASR"}[plane]
    zooms = {size: (edge, edge, max(slice_mm, edge)) for size, edge in in_plane.items()}
    return Sequence(acq, "FLAIR", zooms, orientation, "2D", f"flair_{plane}_{slice_mm:g}mm (synthetic)", "Trio")


def supersampling(sequence: Sequence, size: str) -> tuple[int, int, int]:
    """Points averaged per voxel axis: voxel edge / template resolution (1 to 4; 1 below 1.8)."""
    resolution = TEMPLATE_RESOLUTION[size]
    return tuple(int(np.clip(round(z / resolution), 1, 4)) if z >= 1.8 * resolution else 1 for z in sequence.zooms[size])
