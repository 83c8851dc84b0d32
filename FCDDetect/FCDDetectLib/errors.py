"""Errors raised for bad user input.

Every problem a user can cause (a missing file, a 4D image, an empty ROI...) raises
:class:`FCDInputError` with a one-line message that names the file or object and the
problem. The CLI prints it as ``error: <message>`` and exits with code 2; the Slicer
modules show it in the panel.

Example:
    >>> from FCDDetectLib.errors import FCDInputError
    >>> try:
    ...     raise FCDInputError("scan.nii.gz: image is 2D, expected a 3D volume")
    ... except FCDInputError as error:
    ...     print(f"error: {error}")
    error: scan.nii.gz: image is 2D, expected a 3D volume
"""

from __future__ import annotations


class FCDInputError(ValueError):
    """Bad user input; the message is one line naming the file or object and the problem."""
