"""capture: bytes on disk -> columnar tables of UDP datagrams."""

from callscope.capture.datagrams import Datagrams, address_to_str, str_to_address
from callscope.capture.reader import (
    Capture,
    CaptureInfo,
    CaptureReader,
    iter_datagrams,
    read_capture,
    read_datagrams,
)

#: the decoders that can build a capture's datagram table
DECODERS = ("builtin", "wireshark")


def open_capture(path, decoder: str = "builtin") -> Capture:
    """Read a whole capture with the built-in reader or through Wireshark's dissectors.

    Parameters
    ----------
    path : path-like
        The capture file.
    decoder : {"builtin", "wireshark"}
        ``"wireshark"`` (:func:`callscope.capture.tshark_decoder.read_capture_wireshark`)
        reads every format, link type and tunnel Wireshark dissects, at tshark's speed.

    Returns
    -------
    Capture
    """
    if decoder == "wireshark":
        from callscope.capture.tshark_decoder import read_capture_wireshark

        return read_capture_wireshark(path)
    if decoder != "builtin":
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    return read_capture(path)


__all__ = [
    "DECODERS",
    "Capture",
    "CaptureInfo",
    "CaptureReader",
    "Datagrams",
    "address_to_str",
    "iter_datagrams",
    "open_capture",
    "read_capture",
    "read_datagrams",
    "str_to_address",
]
