"""What real DICOM clients accept: the reference validator and a real PACS on a detection's DICOM outputs.

The input is what a new user would make: an MR series written with SimpleITK's documented
series-writing recipe (:mod:`Testing.builders.sitk_dicom_series`), 69 columns wide (the
burned-in note must wrap), itself checked clean by the validator first. ``fcd detect
--dicom-out`` then writes the SEG, the Parametric Map and the overlay series, and:

- ``dciodvfy`` (Debian ``dicom3tools``, the reference DICOM validator) reports no error on any
  input or output file, and no warning beyond the two known ones (the overlay's plane
  attributes make Secondary Capture a "standard extended SOP class"; highdicom's Parametric
  Map Image Type value 4 ``QUANTITY`` is not in dicom3tools' list of defined terms);
- a real **Orthanc** (Debian ``orthanc``), started on 127.0.0.1 with its own configuration in a
  temporary folder (HTTP and DICOM ports chosen free at test time), receives the input and
  every output through dcmtk's ``storescu -R`` (Debian ``dcmtk``: proposes exactly the SOP
  classes of the files, Parametric Map and Segmentation included) and, read back through its
  REST API, holds every instance in the input's patient and study, one series each. It is
  stopped by its pid in the fixture's teardown.

Each test is skipped, saying which program is missing, where the tool is not installed.
CI installs them all (``.ci/run``: ``apt-get install dicom3tools dcmtk orthanc``), so there they run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest
from FCDDetectLib.cli import main

from Testing.builders.cohort_fixtures import tiny_cohort_bundle
from Testing.builders.geometry_fixtures import centred_affine, head_phantom
from Testing.builders.sitk_dicom_series import write_sitk_series

SHAPE = (69, 60, 10)  # columns, rows, slices: 69 columns, the width that cut the note before
ORTHANC = "/usr/sbin/Orthanc"
KNOWN_WARNINGS = (
    "Attribute is not present in standard DICOM IOD",  # Secondary Capture with plane attributes
    "Dicom dataset contains attributes not present in standard DICOM IOD",  # the same, summarised
    "Unrecognized defined term <QUANTITY> for value 4",  # highdicom's Parametric Map Image / Frame Type
)


def _needs(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed here (CI installs it: .ci/run)")


@pytest.fixture(scope="module")
def detection(tmp_path_factory):
    """(input folder, --dicom-out folder) of one `fcd detect --dicom-out` on a SimpleITK-written series."""
    folder = tmp_path_factory.mktemp("clients")
    affine = centred_affine((1.2, 1.2, 4.0), SHAPE, angles_deg=(0.0, 8.0, 0.0), lps=True)
    scan = np.round(head_phantom(affine, SHAPE, radii_mm=(36.0, 30.0, 16.0))).astype(np.int16)
    write_sitk_series(folder / "input", scan, affine)
    bundle = tiny_cohort_bundle(folder)
    code = main(["detect", "--model", str(bundle), "--image", str(folder / "input"), "--out", str(folder / "out"),
                 "--dicom-out", str(folder / "pacs"), "--cluster-threshold", "0.3", "--min-cluster-mm3", "1"])
    assert code == 0
    assert (folder / "pacs" / "clusters-seg.dcm").is_file()  # the test needs a SEG to send
    return folder / "input", folder / "pacs"


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) dciodvfy reports on one file (it writes them to stderr)."""
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


def test_dciodvfy_finds_no_error_in_the_input_or_any_output(detection):
    _needs("dciodvfy")
    source, pacs = detection
    inputs, outputs = sorted(source.glob("*.dcm")), sorted(pacs.rglob("*.dcm"))
    assert len(inputs) == SHAPE[2] and len(outputs) == SHAPE[2] + 2  # overlay slices, map, SEG
    for path in inputs:  # the input first: a clean series, so any error below is the outputs'
        # (GDCM adds Rescale Slope/Intercept/Type to the recipe's MR files: a standard-extended warning only)
        assert _dciodvfy(path)[0] == []
    for path in outputs:
        errors, warnings = _dciodvfy(path)
        assert errors == [], f"{path.name}: {errors}"
        unknown = [w for w in warnings if "needed to build DICOMDIR" not in w and not any(k in w for k in KNOWN_WARNINGS)]
        assert unknown == [], f"{path.name}: {unknown}"
    seg_errors, seg_warnings = _dciodvfy(pacs / "clusters-seg.dcm")
    assert seg_errors == [] and seg_warnings == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rest(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def orthanc(tmp_path):
    """A real Orthanc on 127.0.0.1 with its own configuration and storage in ``tmp_path``: (http port, dicom port)."""
    if not os.access(ORTHANC, os.X_OK):
        pytest.skip(f"{ORTHANC} is not installed here (Debian orthanc; CI installs it: .ci/run)")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "fcd-test", "StorageDirectory": str(tmp_path / "db"), "IndexDirectory": str(tmp_path / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [], "SaveJobs": False,
        # stores only from this test's client on this machine
        "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True,
        "DicomModalities": {"fcd": ["FCDTEST", "127.0.0.1", 104]},
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "w", encoding="utf-8")  # noqa: SIM115 - closed in the teardown
    process = subprocess.Popen([ORTHANC, str(tmp_path / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                               cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _rest(http_port, "/system")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text(encoding='utf-8')[-2000:]}")
                time.sleep(0.2)
        yield http_port, dicom_port
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_orthanc_stores_every_instance_in_the_inputs_patient_and_study(detection, orthanc):
    _needs("storescu")
    http_port, dicom_port = orthanc
    source, pacs = detection
    files = [*sorted(source.glob("*.dcm")), *sorted(pacs.rglob("*.dcm"))]
    # -R: propose only (but every one of) the SOP classes and transfer syntaxes the files need
    sent = subprocess.run(["storescu", "-aet", "FCDTEST", "-aec", "ORTHANC", "-R", "+sd", "+r",
                           "127.0.0.1", str(dicom_port), str(source), str(pacs)],
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    statistics = _rest(http_port, "/statistics")
    assert (statistics["CountPatients"], statistics["CountStudies"]) == (1, 1)
    assert statistics["CountInstances"] == len(files)
    study = _rest(http_port, "/studies?expand")[0]
    assert study["MainDicomTags"]["StudyInstanceUID"] == first.StudyInstanceUID
    assert study["PatientMainDicomTags"]["PatientID"] == first.PatientID
    series = _rest(http_port, "/series?expand")
    by_uid = {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in series}
    uids = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in files}
    expected: dict[str, set] = {}
    for ds in uids.values():
        expected.setdefault(ds.SeriesInstanceUID, set()).add(ds.SOPClassUID)
    assert set(by_uid) == set(expected) and len(by_uid) == 4  # input, overlay, map, SEG: separate series
    for uid, item in by_uid.items():
        assert item["ParentStudy"] == study["ID"]
        sent_here = [p for p, ds in uids.items() if ds.SeriesInstanceUID == uid]
        assert len(item["Instances"]) == len(sent_here)
        stored = _rest(http_port, f"/instances/{item['Instances'][0]}/tags?simplify")
        assert {stored["SOPClassUID"]} == expected[uid]
    classes = {c for values in expected.values() for c in values}
    assert classes == {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.7",  # MR, Secondary Capture
                       "1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.66.4"}  # Parametric Map, SEG
