"""Bad input: each kind raises its own CaptureError subclass, and ``callscope info``
turns it into exactly one line on stderr and exit code 2 (never a traceback)."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callscope.capture import read_capture
from callscope.errors import (
    CaptureError,
    CorruptCaptureError,
    EmptyCaptureError,
    NotACaptureError,
    UnreadableCaptureError,
    UnsupportedLinkTypeError,
)

UDP_FRAME = bytes.fromhex(
    "020000000002" "020000000001" "0800"  # Ethernet
    "45000024000100004011f7b50a0000010a000002"  # IPv4, 36 bytes, UDP
    "13881389001000000102030405060708"  # UDP 5000 -> 5001, 8 payload bytes
)


def pcap(frames: list[bytes], linktype: int = 1) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for k, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + k, 0, len(f), len(f)) + f)
    return b"".join(out)


def pcapng_block(btype: int, body: bytes, length: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n if length is None else length) + body + struct.pack("<I", n)


PCAPNG_HEAD = (pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
               + pcapng_block(1, struct.pack("<HHI", 1, 0, 0)))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def case_text(tmp_path):
    return write(tmp_path, "notes.pcap", b"hello, this is a text file\nnot a capture\n"), NotACaptureError, "text"


def case_random(tmp_path):
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return write(tmp_path, "noise.pcap", data), NotACaptureError, "magic bytes " + data[:4].hex(" ")


def case_directory(tmp_path):
    return tmp_path, UnreadableCaptureError, "is a directory"


def case_missing(tmp_path):
    return tmp_path / "absent.pcap", UnreadableCaptureError, "no such file"


def case_empty(tmp_path):
    return write(tmp_path, "empty.pcap", b""), EmptyCaptureError, "empty file"


def case_wifi_pcap(tmp_path):
    return write(tmp_path, "wifi.pcap", pcap([bytes(40)] * 3, 105)), UnsupportedLinkTypeError, "IEEE 802.11 (105)"


def case_wifi_pcapng(tmp_path):
    head = PCAPNG_HEAD.replace(struct.pack("<HHI", 1, 0, 0), struct.pack("<HHI", 105, 0, 0))
    epb = pcapng_block(6, struct.pack("<IIIII", 0, 0, 0, 40, 40) + bytes(40))
    return write(tmp_path, "wifi.pcapng", head + epb * 2), UnsupportedLinkTypeError, "IEEE 802.11 (105)"


def case_record_length(tmp_path):
    # two good records, then a header claiming 2 GB: offset of that header is named
    bad = struct.pack("<IIII", 1_700_000_009, 0, 0x7FFFFFFF, 0x7FFFFFFF) + UDP_FRAME
    offset = 24 + 2 * (16 + len(UDP_FRAME))
    return (write(tmp_path, "huge.pcap", pcap([UDP_FRAME] * 2) + bad), CorruptCaptureError,
            f"at byte {offset}: impossible record length 2147483647")


def case_block_length(tmp_path):
    offset = len(PCAPNG_HEAD)
    bad = pcapng_block(6, struct.pack("<IIIII", 0, 0, 0, 8, 8) + bytes(8), length=13)
    return (write(tmp_path, "bad.pcapng", PCAPNG_HEAD + bad), CorruptCaptureError,
            f"at byte {offset}: impossible pcapng block length 13")


def case_short_block_length(tmp_path):
    offset = len(PCAPNG_HEAD)
    bad = pcapng_block(6, struct.pack("<IIIII", 0, 0, 0, 8, 8) + bytes(8), length=8)
    return (write(tmp_path, "short.pcapng", PCAPNG_HEAD + bad), CorruptCaptureError,
            f"at byte {offset}: impossible pcapng block length 8")


def case_bad_byte_order_magic(tmp_path):
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x12345678, 1, 0, -1))
    return write(tmp_path, "bom.pcapng", shb), CorruptCaptureError, "byte-order magic"


def case_cut_file_header(tmp_path):
    return (write(tmp_path, "head.pcap", pcap([])[:13]), CorruptCaptureError,
            "file ends inside the pcap file header (13 of 24 bytes)")


def case_corrupt_gzip(tmp_path):
    data = gzip.compress(pcap([UDP_FRAME] * 50))
    broken = data[:10] + bytes(b ^ 0x5A for b in data[10:])
    return write(tmp_path, "broken.pcap.gz", broken), CorruptCaptureError, "cannot decompress"


CASES = [case_text, case_random, case_directory, case_missing, case_empty, case_wifi_pcap, case_wifi_pcapng,
         case_record_length, case_block_length, case_short_block_length, case_bad_byte_order_magic,
         case_cut_file_header, case_corrupt_gzip]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_raises_its_error_class_and_cli_exits_2_with_one_line(tmp_path, case):
    path, error, text = case(tmp_path)
    with pytest.raises(error) as caught:
        read_capture(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert text in message
    assert "\n" not in message

    run = subprocess.run([sys.executable, "-m", "callscope", "info", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [f"callscope: error: {message}"]


def test_unsupported_link_type_names_supported_ones_and_the_wireshark_decoder(tmp_path):
    path, _, _ = case_wifi_pcap(tmp_path)
    with pytest.raises(UnsupportedLinkTypeError) as caught:
        read_capture(path)
    message = str(caught.value)
    for supported in ("Ethernet (1)", "Linux cooked (SLL) (113)", "Linux cooked v2 (SLL2) (276)",
                      "Raw IP (12/14/101)", "NULL (BSD loopback) (0)", "Raw IPv4 (228)", "Raw IPv6 (229)"):
        assert supported in message
    assert "--decoder wireshark" in message


def test_record_length_error_carries_the_offset(tmp_path):
    path, _, _ = case_record_length(tmp_path)
    with pytest.raises(CorruptCaptureError) as caught:
        read_capture(path)
    assert caught.value.offset == 24 + 2 * (16 + len(UDP_FRAME))
    assert caught.value.path == str(path)


def test_every_error_class_is_a_capture_error():
    for error in (CorruptCaptureError, EmptyCaptureError, NotACaptureError, UnreadableCaptureError,
                  UnsupportedLinkTypeError):
        assert issubclass(error, CaptureError)
