"""Issue 25, item 1: a results folder cannot move, delete or read files outside itself.

The commit journal ``.fcd-commit.json`` and the old ``result.json`` of an output folder are
untrusted (a colleague's results, a shared disk). Each test plants a hostile one, runs the
real writer (``OutputSet``, ``write_detection``, ``fcd detect``) or reader
(``read_output_set``) on the folder, and hashes the whole temporary tree around it before
and after: nothing outside the output folder may change, the writer refuses with one
``FCDInputError`` naming the journal, and nothing inside is moved or deleted either.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.commit_journal import JOURNAL_NAME
from FCDDetectLib.io.output_set import OutputSet, read_output_set
from FCDDetectLib.io.stale_files import remove_stale

from Testing.builders.hostile_fixtures import head, one_error_line, run_fcd, save_nifti, tiny_bundle


def tree(root: Path) -> dict[str, str]:
    """Every file and link under ``root``: relative path -> content SHA-256 (or the link's target)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "dir"
    return found


@pytest.fixture
def victim(tmp_path):
    """A user's folder beside the results folder, and a file of the user inside the results folder."""
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "data.nii.gz").write_bytes(b"the user's scan")
    (outside / "notes.txt").write_text("keep me")
    out = tmp_path / "work" / "results"
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("the user's file in the results folder")
    return out


HOSTILE = {
    "staging ../../victim": {"staging": "../../victim", "files": ["data.nii.gz"], "remove": []},
    "staging absolute": {"staging": "ABSOLUTE", "files": ["data.nii.gz"], "remove": []},
    "files ../": {"staging": ".fcd-staging-1-abcdefgh", "files": ["../../victim/data.nii.gz"], "remove": []},
    "remove ../": {"staging": ".fcd-staging-1-abcdefgh", "files": [], "remove": {"../../victim/notes.txt": "0" * 64}},
    "remove absolute": {"staging": ".fcd-staging-1-abcdefgh", "files": [], "remove": {"ABSOLUTE_NOTES": "0" * 64}},
    "remove without checksum": {"staging": ".fcd-staging-1-abcdefgh", "files": [], "remove": {"mine.txt": "x"}},
    "not an object": ["staging", "files"],
}


def _plant(out: Path, journal) -> None:
    text = json.dumps(journal).replace("ABSOLUTE_NOTES", str(out.parent.parent / "victim" / "notes.txt"))
    text = text.replace("ABSOLUTE", str(out.parent.parent / "victim"))
    (out / JOURNAL_NAME).write_text(text)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_journal_is_refused_and_nothing_changes(victim, tmp_path, case):
    _plant(victim, HOSTILE[case])
    before = tree(tmp_path)
    with pytest.raises(FCDInputError, match=JOURNAL_NAME) as info, OutputSet(victim) as staged:
        staged.manifest = {"probability": 0.5}
    assert "nothing was moved or deleted" in str(info.value) and "\n" not in str(info.value)
    assert tree(tmp_path) == before  # outside and inside --out: not one file moved, deleted or added
    with pytest.raises(FCDInputError, match=JOURNAL_NAME):
        read_output_set(victim)  # merely reading the folder: the same refusal
    assert tree(tmp_path) == before


def test_links_in_a_journal_or_a_set_lead_nowhere(victim, tmp_path):
    outside = tmp_path / "victim"
    # a staging folder that is a link to the user's folder
    (victim / ".fcd-staging-1-abcdefgh").symlink_to(outside, target_is_directory=True)
    _plant(victim, {"staging": ".fcd-staging-1-abcdefgh", "files": ["data.nii.gz"], "remove": {}})
    before = tree(tmp_path)
    with pytest.raises(FCDInputError, match="is a link"):
        read_output_set(victim)
    assert tree(tmp_path) == before
    (victim / ".fcd-staging-1-abcdefgh").unlink()
    # a real staging folder holding a link to the user's file
    staging = victim / ".fcd-staging-1-abcdefgh"
    staging.mkdir()
    (staging / "data.nii.gz").symlink_to(outside / "data.nii.gz")
    before = tree(tmp_path)
    with pytest.raises(FCDInputError, match="is a link or a folder"):
        read_output_set(victim)
    assert tree(tmp_path) == before
    staging.joinpath("data.nii.gz").unlink()
    staging.rmdir()
    (victim / JOURNAL_NAME).unlink()
    # a result.json listing a link to the user's file: never read through
    (victim / "data.nii.gz").symlink_to(outside / "data.nii.gz")
    (victim / "result.json").write_text(json.dumps({"files": {"data.nii.gz": "0" * 64}}))
    with pytest.raises(FCDInputError, match="is a link or a folder"):
        read_output_set(victim)
    # a planted ".old-" link (save_bundle's back-up name) pointing outside: removed as a link only
    (victim / ".model.fcdbundle.99999999.old-abcdefgh").symlink_to(outside, target_is_directory=True)
    before_outside = tree(outside)
    remove_stale(victim)
    assert tree(outside) == before_outside and not (victim / ".model.fcdbundle.99999999.old-abcdefgh").exists()


def test_the_old_sets_listing_never_deletes_a_file_it_did_not_write(victim):
    # result.json of a "previous detection" that lists the user's file: its checksum does not match
    (victim / "result.json").write_text(json.dumps({"files": {"mine.txt": "0" * 64, "../notes.txt": "0" * 64}}))
    with OutputSet(victim) as staged:
        staged.manifest = {"probability": 0.5}
    assert (victim / "mine.txt").read_text(encoding="utf-8") == "the user's file in the results folder"
    # a file our previous set wrote, unchanged since: removed with the old set
    with OutputSet(victim) as staged:
        (staged.folder / "overlay.png").write_bytes(b"png")
        staged.manifest = {"probability": 0.6}
    with OutputSet(victim) as staged:
        staged.manifest = {"probability": 0.7}
    assert not (victim / "overlay.png").exists()
    # ... but not when the user changed it after the detection
    with OutputSet(victim) as staged:
        (staged.folder / "overlay.png").write_bytes(b"png")
        staged.manifest = {"probability": 0.6}
    (victim / "overlay.png").write_bytes(b"annotated by the user")
    with OutputSet(victim) as staged:
        staged.manifest = {"probability": 0.7}
    assert (victim / "overlay.png").read_bytes() == b"annotated by the user"


def test_fcd_detect_into_a_planted_folder_changes_nothing_outside(tmp_path):
    """The issue's case, through the real CLI: it moved victim/data.nii.gz into the folder, exit 0."""
    bundle = tiny_bundle(tmp_path / "tiny.fcdbundle")
    scan = save_nifti(tmp_path / "scan.nii.gz", head((30, 34, 30), seed=1))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.nii.gz").write_bytes(b"the user's scan")
    out = tmp_path / "results"
    out.mkdir()
    (out / JOURNAL_NAME).write_text(json.dumps({"staging": "../victim", "files": ["data.nii.gz"], "remove": []}))
    before = tree(tmp_path)
    done = run_fcd(["detect", "--model", str(bundle), "--image", str(scan), "--device", "cpu", "--out", str(out)])
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert str(out / JOURNAL_NAME) in line and "nothing was moved or deleted" in line
    assert tree(tmp_path) == before
