"""A byte count as a short text for messages (progress lines, disk-space refusals)."""

from __future__ import annotations


def human_size(size: int | None) -> str:
    """A byte count in binary units, one decimal (``None`` reads ``unknown size``).

    Example:
        >>> human_size(123456789)
        '117.7 MB'
        >>> human_size(512)
        '512 B'
    """
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
