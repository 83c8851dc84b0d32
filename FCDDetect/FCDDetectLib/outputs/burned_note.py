"""Burn a notice ("RESEARCH USE - NOT FOR DIAGNOSIS") into an image so that all of it shows, whatever the matrix.

The note goes in the top-left corner, white on a black box. Its layout is chosen to fit the
image, never cut:

1. the font size is ``columns // 32`` (at least :data:`MIN_FONT_PX`), the text wrapped at
   spaces onto as many lines as the width needs;
2. when a word does not fit at that size, or the lines are taller than the image, smaller
   sizes are tried down to :data:`MIN_FONT_PX`;
3. when even that does not fit (a matrix of a few dozen pixels), the text is drawn at
   :data:`MIN_FONT_PX`, wrapped to the block shape that can be scaled least, and that
   picture is scaled down to fit the image (smaller than legible, but whole: a cut
   "RESEARCH USE - N" would say something else).

Pillow draws the text (its bundled scalable font), as it does for the PNG overlays.

Example:
    >>> import numpy as np
    >>> layout = fit_note("RESEARCH USE - NOT FOR DIAGNOSIS", columns=69, rows=64)
    >>> layout.lines, layout.scale
    (['RESEARCH USE -', 'NOT FOR', 'DIAGNOSIS'], 1.0)
    >>> burn_note(np.zeros((64, 69, 3), np.uint8), "RESEARCH USE - NOT FOR DIAGNOSIS").shape
    (64, 69, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_FONT_PX = 8
"""Smallest font size drawn as is (pixels); a note that does not fit at this size is scaled down."""

MARGIN_PX = 2
"""Gap between the note's box and the image's top and left edges."""

_PAD_PX = 1  # black border around the text inside its box


@dataclass(frozen=True)
class NoteLayout:
    """How a note is drawn: its lines, font size, block size before scaling, and the scale (1.0: none)."""

    lines: list[str]
    font_px: int
    width: int
    height: int
    scale: float


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _measure(lines: list[str], size: int) -> tuple[int, int]:
    """(width, height) of the box of ``lines`` at font ``size`` (one line height per line, a border around)."""
    font = _font(size)
    width = max(int(np.ceil(font.getlength(line))) for line in lines)
    ascent, descent = font.getmetrics()
    return width + 2 * _PAD_PX, len(lines) * (ascent + descent) + 2 * _PAD_PX


def _wrap(words: list[str], size: int, width: int) -> list[str] | None:
    """Greedy wrap of ``words`` at font ``size`` into lines at most ``width`` wide; None when a word is wider."""
    font = _font(size)
    lines: list[str] = []
    for word in words:
        if font.getlength(word) + 2 * _PAD_PX > width:
            return None
        if lines and font.getlength(f"{lines[-1]} {word}") + 2 * _PAD_PX <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def fit_note(text: str, columns: int, rows: int) -> NoteLayout:
    """The layout of ``text`` inside a ``rows`` x ``columns`` image (see the module docstring)."""
    words = text.split()
    room_w, room_h = max(columns - 2 * MARGIN_PX, 1), max(rows - 2 * MARGIN_PX, 1)
    for size in range(max(MIN_FONT_PX, columns // 32), MIN_FONT_PX - 1, -1):
        lines = _wrap(words, size, room_w)
        if lines is not None:
            width, height = _measure(lines, size)
            if height <= room_h:
                return NoteLayout(lines, size, width, height, 1.0)
    best = None
    widest_word = max(_measure([word], MIN_FONT_PX)[0] for word in words)
    for wrap_width in range(widest_word, _measure([" ".join(words)], MIN_FONT_PX)[0] + 1):
        lines = _wrap(words, MIN_FONT_PX, wrap_width)
        width, height = _measure(lines, MIN_FONT_PX)
        scale = min(room_w / width, room_h / height, 1.0)
        if best is None or scale > best.scale:
            best = NoteLayout(lines, MIN_FONT_PX, width, height, scale)
    return best


def burn_note(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` ((rows, columns, 3) uint8) with ``text`` burned into its top-left corner, whole (a new array)."""
    from PIL import Image, ImageDraw

    rows, columns = rgb.shape[:2]
    layout = fit_note(text, columns, rows)
    block = Image.new("RGB", (layout.width, layout.height), (0, 0, 0))
    draw = ImageDraw.Draw(block)
    font = _font(layout.font_px)
    step = (layout.height - 2 * _PAD_PX) // len(layout.lines)
    for index, line in enumerate(layout.lines):
        draw.text((_PAD_PX, _PAD_PX + index * step), line, fill=(255, 255, 255), font=font)
    if layout.scale < 1.0:
        size = (max(1, int(layout.width * layout.scale)), max(1, int(layout.height * layout.scale)))
        block = block.resize(size, Image.Resampling.LANCZOS)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    picture.paste(block, (MARGIN_PX, MARGIN_PX))
    return np.asarray(picture)
