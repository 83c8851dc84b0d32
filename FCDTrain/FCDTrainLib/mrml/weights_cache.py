"""A cache folder for MedicalNet weight files: list, delete, and (only on request) download.

The FCDTrain panel lets the user point to local files, or download the chosen file into
this cache after confirming (the size is asked from the server first and shown). The
official file names come from :data:`FCDDetectLib.medicalnet.MEDICALNET_FILES`; the files
are fetched from the MedicalNet Hugging Face repositories (``MEDICALNET_HF_REPOS``).

Listing and deleting are plain file operations (tested). :func:`remote_size` and
:func:`download` reach the network: the Qt module calls them only after the user
confirmed; tests never do.

Example:
    >>> from FCDTrainLib.mrml.weights_cache import cached_files, default_cache_dir
    >>> [f.name for f in cached_files(default_cache_dir())]  # doctest: +SKIP
    ['resnet_18_23dataset.pth']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from FCDDetectLib.errors import FCDInputError

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


def human_size(size: int | None) -> str:
    """``123456789`` -> ``'117.7 MB'``."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def default_cache_dir() -> Path:
    """``$FCD_WEIGHTS_CACHE`` or ``~/.cache/fcd-detect/medicalnet``."""
    env = os.environ.get("FCD_WEIGHTS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fcd-detect" / "medicalnet"


def official_files() -> dict[str, tuple[str, int]]:
    """Official file name -> (family, depth), from FCDDetectLib.medicalnet."""
    from FCDDetectLib.medicalnet import MEDICALNET_FILES

    return {name: (family, depth) for family, files in MEDICALNET_FILES.items() for depth, name in files.items()}


def file_name(family: str, depth: int) -> str:
    """Official name of the weights file of ``family`` and ``depth``."""
    from FCDDetectLib.medicalnet import MEDICALNET_FILES

    try:
        return MEDICALNET_FILES[family][int(depth)]
    except (KeyError, ValueError) as error:
        raise FCDInputError(f"no MedicalNet file for family {family!r} and depth {depth}") from error


def download_url(family: str, depth: int) -> str:
    from FCDDetectLib.medicalnet import MEDICALNET_HF_REPOS

    return HF_URL.format(repo=MEDICALNET_HF_REPOS[int(depth)], name=file_name(family, depth))


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
    path = Path(cache_dir) / file_name(family, depth)
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
    (the partial file is removed). Only called after the user confirmed.
    """
    import urllib.request

    from FCDDetectLib.image_io import write_atomic

    def fetch(tmp: str) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            total_text = response.headers.get("Content-Length")
            total = int(total_text) if total_text and total_text.isdigit() else None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress is not None and progress(done, total) is False:
                    raise InterruptedError("download cancelled")
            if total is not None and done != total:
                raise OSError(f"{url}: received {done} of {total} bytes")

    return write_atomic(Path(cache_dir) / name, fetch)
