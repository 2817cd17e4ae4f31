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

__all__ = [
    "Capture",
    "CaptureInfo",
    "CaptureReader",
    "Datagrams",
    "address_to_str",
    "iter_datagrams",
    "read_capture",
    "read_datagrams",
    "str_to_address",
]
