"""The exception family every stage raises for bad input.

The CLI turns each of these into one line on stderr and exit code 2.
"""

from __future__ import annotations


class CallscopeError(Exception):
    """Base of every error callscope raises on purpose."""


class CaptureError(CallscopeError):
    """A capture file could not be read (or only partly)."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None):
        self.path = path
        self.offset = offset
        where = ""
        if path is not None:
            where = f"{path}: "
        if offset is not None:
            where += f"at byte {offset}: "
        super().__init__(where + message)
        self.detail = message


class NotACaptureError(CaptureError):
    """The file does not start with a pcap or pcapng magic number."""


class EmptyCaptureError(CaptureError):
    """The file is empty."""


class UnreadableCaptureError(CaptureError):
    """The file cannot be opened (missing, a directory, no permission)."""


class UnsupportedLinkTypeError(CaptureError):
    """An interface uses a link type the built-in reader does not decode."""


class CorruptCaptureError(CaptureError):
    """A record header is impossible (absurd length, bad block structure)."""


class TruncatedCaptureWarning(UserWarning):
    """The capture ends in the middle of a record; everything before the cut is kept."""
