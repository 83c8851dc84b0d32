"""Errors raised for bad user input.

Every problem a user can cause (a missing file, a 4D image, an empty ROI...) raises
:class:`FCDInputError` with a one-line message that names the file or object and the
problem. The CLI prints it as ``error: <message>`` and exits with code 2; the Slicer
modules show it in the panel. :func:`os_error_line` makes the same kind of line from an
``OSError`` (a full disk, a name too long, a link loop).

Example:
    >>> from FCDDetectLib.errors import FCDInputError
    >>> try:
    ...     raise FCDInputError("scan.nii.gz: image is 2D, expected a 3D volume")
    ... except FCDInputError as error:
    ...     print(f"error: {error}")
    error: scan.nii.gz: image is 2D, expected a 3D volume
"""

from __future__ import annotations

import errno


class FCDInputError(ValueError):
    """Bad user input; the message is one line naming the file or object and the problem."""


def os_error_line(error: OSError) -> str:
    """One line for an OSError: the file(s), what the system said and what to do about a full disk.

    Example:
        >>> import errno
        >>> os_error_line(OSError(errno.ENOSPC, "No space left on device", "out/heatmap.nii.gz"))
        'out/heatmap.nii.gz: No space left on device (ENOSPC); free space there and run the command again'
    """
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    where = " -> ".join(name if len(name) <= 200 else name[:200] + "..." for name in names)
    code = errno.errorcode.get(error.errno or 0)
    reason = (error.strerror or str(error) or type(error).__name__).splitlines()[0]
    line = f"{where + ': ' if where else ''}{reason}{f' ({code})' if code else ''}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        line += "; free space there and run the command again"
    return line
