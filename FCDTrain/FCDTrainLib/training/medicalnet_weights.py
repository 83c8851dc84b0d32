"""MedicalNet weight files: the families, their official names, a cache folder (list,
delete) and (only on request) download.

The FCDTrain panel lets the user point to local files, or download the chosen file into
this cache after confirming (the size is asked from the server first and shown). The
official file names are :data:`MEDICALNET_FILES`; the files are fetched from the
MedicalNet Hugging Face repositories (:data:`MEDICALNET_HF_REPOS`). Loading a file into a
network is the engine's :func:`FCDDetectLib.networks.medicalnet.load_medicalnet_weights`.

Listing and deleting are plain file operations (tested). :func:`remote_size` and
:func:`download` reach the network: the Qt module calls them only after the user
confirmed; tests never do.

Example:
    >>> from FCDTrainLib.training.medicalnet_weights import cached_files, default_cache_dir
    >>> [f.name for f in cached_files(default_cache_dir())]  # doctest: +SKIP
    ['resnet_18_23dataset.pth']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from FCDDetectLib.choices import DEPTHS, PRETRAINED_STRATEGIES
from FCDDetectLib.errors import FCDInputError
from FCDDetectLib.io.byte_sizes import human_size

WEIGHT_FAMILIES = tuple(s for s in PRETRAINED_STRATEGIES if s != "none")
"""Pretrained strategies that need a MedicalNet file: ``("medicalnet8", "medicalnet23")``."""
FAMILY_DESCRIPTIONS = {
    "medicalnet8": "MedicalNet, pre-trained on 8 segmentation datasets (3DSeg-8; the paper's 1 task)",
    "medicalnet23": "MedicalNet, pre-trained on 23 datasets",
}
# Official file names of the MedicalNet release (Tencent/MedicalNet "pretrain" folder and the
# Hugging Face repositories MEDICALNET_HF_REPOS), per family and depth.
MEDICALNET_FILES = {
    "medicalnet8": {18: "resnet_18.pth", 34: "resnet_34.pth", 50: "resnet_50.pth"},
    "medicalnet23": {18: "resnet_18_23dataset.pth", 34: "resnet_34_23dataset.pth", 50: "resnet_50_23dataset.pth"},
}
MEDICALNET_HF_REPOS = {depth: f"TencentMedicalNet/MedicalNet-Resnet{depth}" for depth in DEPTHS}


class DownloadCancelled(InterruptedError):
    """The user cancelled a download (not a failure: nothing is written, the cache is unchanged)."""


HF_URL = "https://huggingface.co/{repo}/resolve/main/{name}"
_CHUNK = 1 << 20


@dataclass
class CachedFile:
    """One weights file of the cache: name, path, size in bytes, family and depth if known."""

    name: str
    path: Path
    size: int
    family: str | None = None
    depth: int | None = None

    @property
    def size_text(self) -> str:
        return human_size(self.size)


def default_cache_dir() -> Path:
    """``$FCD_WEIGHTS_CACHE`` or ``~/.cache/fcd-detect/medicalnet``."""
    env = os.environ.get("FCD_WEIGHTS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fcd-detect" / "medicalnet"


def official_files() -> dict[str, tuple[str, int]]:
    """Official file name -> (family, depth)."""
    return {name: (family, depth) for family, files in MEDICALNET_FILES.items() for depth, name in files.items()}


def medicalnet_file_name(family: str, depth: int) -> str:
    """Official name of the weights file of ``family`` and ``depth`` (FCDInputError if none).

    Example:
        >>> medicalnet_file_name("medicalnet23", 50)
        'resnet_50_23dataset.pth'
    """
    if family not in MEDICALNET_FILES:
        raise FCDInputError(f"unknown weight family {family!r}; choose one of {WEIGHT_FAMILIES}")
    try:
        return MEDICALNET_FILES[family][int(depth)]
    except (KeyError, ValueError) as error:
        raise FCDInputError(f"no {family} weights for ResNet-{depth}; depths: {sorted(MEDICALNET_FILES[family])}") \
            from error


def download_url(family: str, depth: int) -> str:
    """Where the official file of ``family`` and ``depth`` is downloaded from."""
    return HF_URL.format(repo=MEDICALNET_HF_REPOS[int(depth)], name=medicalnet_file_name(family, depth))


def cached_files(cache_dir: str | Path) -> list[CachedFile]:
    """The ``*.pth`` files of the cache folder, sorted by name (none if it does not exist)."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        return []
    known = official_files()
    out = []
    for path in sorted(folder.glob("*.pth")):
        family, depth = known.get(path.name, (None, None))
        out.append(CachedFile(path.name, path, path.stat().st_size, family, depth))
    return out


def find_cached(cache_dir: str | Path, family: str, depth: int) -> Path | None:
    """Path of the cached official file for ``family``/``depth``, or None."""
    path = Path(cache_dir) / medicalnet_file_name(family, depth)
    return path if path.is_file() else None


def delete_cached(cache_dir: str | Path, name: str) -> None:
    """Delete one cached file by name; refuses names outside the cache folder."""
    folder = Path(cache_dir).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix != ".pth":
        raise FCDInputError(f"{name}: not a weights file of the cache {folder}")
    if not path.is_file():
        raise FCDInputError(f"{name}: not in the cache {folder}")
    path.unlink()


def remote_size(url: str, timeout: float = 30.0) -> int | None:
    """Size in bytes announced by the server (HEAD request); None when it does not say."""
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https URL built here)
        length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(url: str, cache_dir: str | Path, name: str,
             progress: Callable[[int, int | None], bool | None] | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``cache_dir/name`` atomically (temporary file, then rename).

    ``progress(done_bytes, total_bytes)`` is called per chunk; returning False cancels
    (the partial file is removed) and raises :class:`DownloadCancelled`. Only called
    after the user confirmed.
    """
    import urllib.request

    from FCDDetectLib.io.atomic_files import write_atomic

    def fetch(tmp: str) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            total_text = response.headers.get("Content-Length")
            total = int(total_text) if total_text and total_text.isdigit() else None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress is not None and progress(done, total) is False:
                    raise DownloadCancelled(f"download of {name} cancelled")
            if total is not None and done != total:
                raise OSError(f"{url}: received {done} of {total} bytes")

    return write_atomic(Path(cache_dir) / name, fetch)
