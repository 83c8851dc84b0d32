"""Write a synthetic cohort in the ds004199 BIDS layout.

Example:
    >>> summary = synth_cohort("cohort", n_subjects=8, seed=1)  # doctest: +SKIP
    >>> summary.patients, summary.controls  # doctest: +SKIP
    (4, 4)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.atomic_files import write_json_atomic, write_text_atomic
from FCDDetectLib.io.image_io import Image, save_image

from FCDTrainLib.data.seeds import check_seed
from FCDTrainLib.data.synth.protocols import OLD_CYCLE, PROTOCOLS, SIZES
from FCDTrainLib.data.synth.subject import SynthSubject, make_subject
from FCDTrainLib.data.synth.variants import SynthVariant

MIN_SUBJECTS = 2
TEST_FRACTION = 28 / 85
"""Share of patients marked ``split=test``, as in ds004199."""

_COLUMNS = ("participant_id", "group", "sex", "age_scan", "hemisphere", "lobe", "split", "protocol",
            "lesion_volume_cm3", "transmantle")


@dataclass
class CohortSummary:
    """What :func:`synth_cohort` wrote: counts, options, timings, one record per subject."""

    out: str
    patients: int
    controls: int
    size: str
    seed: int
    subtlety: float
    protocol_mix: float
    confound: bool
    seconds: float
    seconds_per_subject: float
    overlays: list[str] = field(default_factory=list)
    subjects: list[dict] = field(default_factory=list)
    variant: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_options(n_subjects: int, fcd_fraction: float, size: str, subtlety: float, protocol_mix: float) -> int:
    if size not in SIZES:
        raise FCDInputError(f"synth: unknown --size {size!r}; choose one of {', '.join(SIZES)}")
    if not 0 < fcd_fraction < 1:
        raise FCDInputError(f"synth: --fcd-fraction {fcd_fraction} must be between 0 and 1 (exclusive)")
    if not 0 <= subtlety <= 1:
        raise FCDInputError(f"synth: --subtlety {subtlety} must be between 0 and 1")
    if not 0 <= protocol_mix <= 1:
        raise FCDInputError(f"synth: --protocol-mix {protocol_mix} must be between 0 and 1")
    n_fcd = int(round(n_subjects * fcd_fraction))
    if n_subjects < MIN_SUBJECTS or n_fcd < 1 or n_subjects - n_fcd < 1:
        raise FCDInputError(
            f"synth: --subjects {n_subjects} with --fcd-fraction {fcd_fraction:g} gives {max(n_fcd, 0)} patients and "
            f"{max(n_subjects - n_fcd, 0)} controls; a cohort needs at least one of each (minimum --subjects {MIN_SUBJECTS})"
        )
    return n_fcd


def _assign_protocols(rng: np.random.Generator, labels: np.ndarray, mix: float, confound: bool) -> list[str]:
    """``new`` for most; a ``mix`` share of each class (only patients with ``confound``) on older protocols."""
    protocols = ["new"] * len(labels)
    cycle = 0
    for label in (1, 0):
        members = np.flatnonzero(labels == label)
        if confound and label == 0:
            continue
        n_old = int(round(mix * len(members)))
        for index in sorted(rng.choice(members, size=n_old, replace=False)):
            protocols[index] = OLD_CYCLE[cycle % len(OLD_CYCLE)]
            cycle += 1
    return protocols


def _roi_on(grid: Image, roi: Image) -> np.ndarray:
    """Nearest-neighbour resampling of ``roi`` onto ``grid`` through the affines (for the T1 overlay)."""
    from scipy import ndimage

    mapping = np.linalg.inv(roi.affine) @ grid.affine
    return ndimage.affine_transform(roi.array.astype(np.float32), mapping, output_shape=grid.array.shape, order=0) > 0.5


def _write_subject(root: Path, subject_id: str, protocol_name: str, size: str, data: SynthSubject,
                   session: int | None = None) -> None:
    from FCDTrainLib.data.synth.scan_files import write_brain_masks

    protocol = PROTOCOLS.get(protocol_name)
    sequences = data.sequences or {"t1": protocol.t1, "flair": protocol.flair}
    folder, prefix = (subject_id, subject_id) if session is None else (f"{subject_id}/ses-{session}",
                                                                        f"{subject_id}_ses-{session}")
    anat = root / folder / "anat"
    for key, image in (("t1", data.t1), ("flair", data.flair)):
        stem = f"{prefix}_acq-{sequences[key].acq}_{sequences[key].suffix}"
        save_image(anat / f"{stem}.nii.gz", image.array, image.affine, dtype=data.dtypes[key])
        write_json_atomic(anat / f"{stem}.json", sequences[key].sidecar(size))
    if data.roi is not None:
        save_image(anat / f"{prefix}_acq-{sequences['flair'].acq}_FLAIR_roi.nii.gz", data.roi.array, data.roi.affine,
                   dtype=np.uint8)
    write_brain_masks(root, folder, prefix, sequences, data.brain_masks)


def _tsv(rows: list[dict]) -> str:
    lines = ["\t".join(_COLUMNS)]
    lines += ["\t".join(str(row.get(c, "n/a")) for c in _COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def _ordinary_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries: give the finished cohort the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def _prepare_out(out: Path) -> None:
    if os.path.lexists(out) and not out.exists():
        raise FCDInputError(f"{out}: a link that leads nowhere (a loop or a missing target); choose a new --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FCDInputError(f"{out}: already exists and is not an empty folder; choose a new --out")


def synth_cohort(
    out: str | os.PathLike,
    n_subjects: int,
    fcd_fraction: float = 0.5,
    seed: int = 0,
    size: str = "small",
    subtlety: float = 0.3,
    protocol_mix: float | None = None,
    confound: bool = False,
    overlays: int = 3,
    progress: Callable[[int, int], None] | None = None,
    variant: SynthVariant | None = None,
) -> CohortSummary:
    """Generate ``n_subjects`` subjects (patients carry one FCD-II lesion) into ``out`` (ds004199 layout).

    ``protocol_mix``: share of each class scanned with an older protocol (default 0.25, or 0.5
    with ``confound``); ``confound=True`` keeps every control on the new protocol, like ds004199.
    The cohort is built in a temporary folder beside ``out`` and renamed when complete. The same
    arguments give the same files. ``progress(done, total)`` is called after each subject.
    ``variant`` (:class:`~FCDTrainLib.data.synth.variants.SynthVariant`): randomised scans,
    a benchmark family's changes, rescans; checked, with the disk space the cohort needs
    (:func:`~FCDTrainLib.data.synth.scan_files.check_disk_space`), before anything is written.

    Example:
        >>> synth_cohort("demo-cohort", 12, seed=3, size="small", subtlety=0.2)  # doctest: +SKIP
    """
    started = time.perf_counter()
    from FCDTrainLib.data.synth.scan_files import check_disk_space

    check_seed(seed)
    n_fcd = _check_options(n_subjects, fcd_fraction, size, subtlety, 0.0 if protocol_mix is None else protocol_mix)
    variant = variant or SynthVariant()
    variant.check()
    mix = (0.5 if confound else 0.25) if protocol_mix is None else float(protocol_mix)
    target = Path(out)
    _prepare_out(target)
    check_disk_space(target, n_subjects, size, variant)
    rng = np.random.default_rng([seed, 0])
    labels = np.array([1] * n_fcd + [0] * (n_subjects - n_fcd))
    rng.shuffle(labels)
    protocols = _assign_protocols(rng, labels, mix, confound)
    patients = np.flatnonzero(labels == 1)
    test = set(rng.choice(patients, size=int(round(TEST_FRACTION * len(patients))), replace=False).tolist())
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    rows: list[dict] = []
    shown: list[str] = []
    try:
        for index in range(n_subjects):
            subject_id = f"sub-{index + 1:05d}"
            subject_rng = np.random.default_rng([seed, index + 1])
            patient = bool(labels[index])
            if variant.is_standard:
                sessions = [make_subject(subject_rng, PROTOCOLS[protocols[index]], size, patient, subtlety)]
            else:
                sessions = variant.sessions(subject_rng, protocols[index], size, patient, subtlety, seed, index)
            for number, data in enumerate(sessions, start=1):
                _write_subject(work, subject_id, protocols[index], size, data, number if variant.session_layout else None)
            data = sessions[0]
            info = data.info
            rows.append({
                "participant_id": subject_id,
                "group": "fcd" if patient else "hc",
                "sex": "MF"[int(subject_rng.integers(2))],
                "age_scan": int(subject_rng.integers(3, 11)),
                "hemisphere": info.get("hemisphere", "n/a"),
                "lobe": info.get("lobe", "n/a"),
                "split": "test" if index in test else "train",
                "protocol": data.info["protocol"],
                "lesion_volume_cm3": info.get("roi_volume_cm3", "n/a"),
                "transmantle": int(info["transmantle"]) if patient else "n/a",
                "lesion": info if len(sessions) == 1 else {**info, "sessions": [d.info for d in sessions]},
            })
            if len(shown) < overlays and (patient or len(shown) == overlays - 1):
                shown.append(_overlay(work, subject_id, data))
            if progress:
                progress(index + 1, n_subjects)
        _write_metadata(work, rows, seed, size, subtlety, mix, confound)
        _ordinary_permissions(work)
        try:
            if target.exists():
                target.rmdir()  # the empty folder checked at the start
            os.replace(work, target)
        except OSError as error:  # another process filled the folder while this one wrote
            raise FCDInputError(f"{target}: was filled by another process while this cohort was being written "
                                f"({error.strerror}); nothing of this run was kept, choose a new --out") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    return CohortSummary(
        out=str(target), patients=n_fcd, controls=n_subjects - n_fcd, size=size, seed=seed, subtlety=subtlety,
        protocol_mix=mix, confound=confound, seconds=round(seconds, 2),
        seconds_per_subject=round(seconds / n_subjects, 3),
        overlays=[str(target / p) for p in shown],
        subjects=[{k: v for k, v in row.items() if k != "lesion"} for row in rows],
        variant={k: v for k, v in variant.to_dict().items() if v not in (None, False)},
    )


def _overlay(root: Path, subject_id: str, data: SynthSubject) -> str:
    from FCDDetectLib.outputs.overlay import render_rows

    roi_flair = data.roi.array if data.roi is not None else None
    roi_t1 = _roi_on(data.t1, data.roi) if data.roi is not None else None
    label = "patient" if data.roi is not None else "control"
    title = f"{subject_id} ({label}, protocol {data.info['protocol']})"
    if data.roi is not None:
        title += f", lesion {data.info['roi_volume_cm3']} cm3, {data.info['lobe']} {data.info['hemisphere']}"
        title += ", transmantle" if data.info["transmantle"] else ""
    relative = f"overlays/{subject_id}.png"
    render_rows([(data.t1, None, roi_t1, None, "T1w"), (data.flair, None, roi_flair, None, "FLAIR")],
                root / relative, title=title)
    return relative


PARTICIPANT_COLUMNS: dict[str, dict] = {
    "participant_id": {"Description": "subject label, as in the sub-<label> folder names"},
    "group": {"Description": "the group a synthetic subject belongs to",
              "Levels": {"fcd": "synthetic FCD type II patient", "hc": "synthetic healthy control"}},
    "sex": {"Description": "sex of the participant (random, meaningless here)", "Levels": {"M": "male", "F": "female"}},
    "age_scan": {"Description": "category code of the age at the time of MRI, as in ds004199 (random, meaningless here)"},
    "hemisphere": {"Description": "hemisphere affected by the synthetic FCD (n/a for controls)",
                   "Levels": {"L": "left", "R": "right"}},
    "lobe": {"Description": "lobe affected by the synthetic FCD (n/a for controls)",
             "Levels": {"FL": "frontal lobe", "TL": "temporal lobe", "PL": "parietal lobe", "OL": "occipital lobe"}},
    "split": {"Description": "test marks about a third of the patients, as in ds004199",
              "Levels": {"train": "training set", "test": "test set"}},
    "protocol": {"Description": "synthetic acquisition protocol",
                 "Levels": {name: f"the {name} protocol (FCDTrainLib.data.synth.protocols)" for name in PROTOCOLS}},
    "lesion_volume_cm3": {"Description": "ROI volume on the FLAIR grid (n/a for controls)", "Units": "cm^3"},
    "transmantle": {"Description": "whether the lesion has a transmantle sign (n/a for controls)",
                    "Levels": {"1": "transmantle sign", "0": "no transmantle sign"}},
}
"""participants.json: every participants.tsv column described (the BIDS validator asks for each custom one)."""

BIDSIGNORE = ("*_roi.nii.gz", "overlays/", "synth_lesions.json")
"""Not BIDS files: the lesion ROIs (listed as ds004199's own .bidsignore does), the PNG overlays, the lesion records."""

README = """Synthetic FCD-II cohort in the layout of OpenNeuro ds004199 (FLAIR and T1w anatomy of
focal cortical dysplasia type II patients and healthy controls, with lesion ROIs).

Not real patients: every image is generated by `fcd synth` (FCDTrainLib.data.synth) from the
MNI152 2009 template shipped with nilearn, with one planted lesion per patient (blurred
grey/white boundary, cortical thickening, FLAIR hyperintensity, optional transmantle sign).
Use it to test pipelines and to train models for tests; its figures say nothing about patients.

- participants.tsv: one row per subject; participants.json describes every column.
- sub-<label>/anat/: T1w and FLAIR (NIfTI) with JSON sidecars; patients also have
  sub-<label>_acq-<acq>_FLAIR_roi.nii.gz, the lesion ROI on the FLAIR grid (listed in .bidsignore,
  as in ds004199).
- synth_lesions.json: the generator's record of each lesion; overlays/: PNG previews.
"""


def _write_metadata(root: Path, rows: list[dict], seed: int, size: str, subtlety: float, mix: float, confound: bool) -> None:
    write_text_atomic(root / "participants.tsv", _tsv(rows))
    write_json_atomic(root / "participants.json", {column: PARTICIPANT_COLUMNS[column] for column in _COLUMNS})
    write_json_atomic(root / "dataset_description.json", {
        "Name": "Synthetic FCD-II cohort (FCDTrainLib.data.synth)",
        "BIDSVersion": "1.6.0",
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [{"Name": "FCDTrainLib.data.synth", "Description": (
            f"seed={seed} size={size} subtlety={subtlety} protocol_mix={mix} confound={confound}; "
            "anatomy from the MNI152 2009 template shipped with nilearn")}],
    })
    write_json_atomic(root / "synth_lesions.json", {row["participant_id"]: row["lesion"] for row in rows})
    write_text_atomic(root / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    write_text_atomic(root / "README", README + "\n" + json.dumps({"seed": seed, "size": size}) + "\n")
