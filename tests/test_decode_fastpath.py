"""The Ethernet/IPv4/UDP fast path of the decoder gives exactly the general decoder's rows.

:func:`callscope.capture.decode.decode_frames` reads plain Ethernet / IPv4
(IHL 5, not a fragment) / UDP frames from one 42-byte record each and sends
every other frame to the general decoder
(:func:`callscope.capture.decode.decode_general`). Every column of the result,
the counts of other frames and the SIP-over-TCP segments must be the same as
the general decoder's, on real captures and on crafted odd frames.
"""

from __future__ import annotations

import dataclasses
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

import callscope.capture.reader as reader_module
from callscope.capture import CaptureReader, Datagrams, read_capture
from callscope.capture import decode as dec
from conftest import FIXTURES, SHARED_CAPTURES

ETHERNET = 1
ETH = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def capture_files() -> list[Path]:
    shared = sorted(SHARED_CAPTURES.glob("*.pcap*")) if SHARED_CAPTURES.is_dir() else []
    return [p for p in shared + sorted(FIXTURES.glob("*.pcap*")) if p.suffix in (".pcap", ".pcapng")]


def assert_same_table(a: Datagrams, b: Datagrams) -> None:
    for f in dataclasses.fields(Datagrams):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype, f.name
        assert x.shape == y.shape, f.name
        assert np.array_equal(x, y), f.name


def assert_same_decoded(a: dec.Decoded, b: dec.Decoded) -> None:
    assert_same_table(a.datagrams, b.datagrams)
    assert a.counts == b.counts
    assert a.tcp_sip == b.tcp_sip
    assert a.fragments == b.fragments


def read_both(path: Path, chunk_bytes: int, monkeypatch):
    """The capture read with the fast path and with the general decoder only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = read_capture(path, chunk_bytes)
        with monkeypatch.context() as m:
            m.setattr(reader_module, "decode_frames", dec.decode_general)
            general = read_capture(path, chunk_bytes)
    return fast, general


@pytest.mark.parametrize("chunk_bytes", [1 << 16, 8 << 20])
@pytest.mark.parametrize("path", capture_files(), ids=lambda p: p.name)
def test_captures_read_the_same_with_and_without_the_fast_path(path, chunk_bytes, monkeypatch):
    fast, general = read_both(path, chunk_bytes, monkeypatch)
    assert_same_table(fast.datagrams, general.datagrams)
    assert dataclasses.asdict(fast.info) == dataclasses.asdict(general.info)
    assert fast.tcp_signalling == general.tcp_signalling


# -- crafted frames -------------------------------------------------------------


def udp_frame(payload: bytes = b"\x80" * 20, **ip) -> bytes:
    return bytes(Ether(**ETH) / IP(src="10.1.2.3", dst="192.0.2.9", **ip) / UDP(sport=4000, dport=5004)
                 / Raw(payload))


def patched(frame: bytes, offset: int, value: int) -> bytes:
    """``frame`` with the 16-bit big-endian field at ``offset`` set to ``value``."""
    return frame[:offset] + struct.pack(">H", value) + frame[offset + 2:]


IP_TOTAL_LEN = 14 + 2  # RFC 791 §3.1, after the 14-byte Ethernet header
IP_FLAGS = 14 + 6
UDP_LEN = 34 + 4  # RFC 768


def decode_both(frames: list[bytes], caplens=None, origlens=None, linktypes=None, tail: bytes = b""):
    """Fast-path and general decoding of ``frames`` laid end to end in one buffer."""
    buf = np.frombuffer(b"".join(frames) + tail, np.uint8)
    n = len(frames)
    start = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    args = (
        buf, start,
        np.array(caplens if caplens is not None else [len(f) for f in frames], np.int64),
        np.array(origlens if origlens is not None else [len(f) for f in frames], np.int64),
        np.array(linktypes if linktypes is not None else [ETHERNET] * n, np.int64),
        np.arange(1, n + 1, dtype=np.int64),
        1_700_000_000_000_000_000 + 20_000_000 * np.arange(n, dtype=np.int64),
    )
    fast, general = dec.decode_frames(*args), dec.decode_general(*args)
    assert_same_decoded(fast, general)
    plain = dec._plain_udp_headers(buf, start, args[2], args[4])[0]
    return fast, plain.tolist()


def test_plain_frame_reads_every_field_from_its_record():
    d, plain = decode_both([udp_frame(bytes(range(20)))])
    t = d.datagrams
    assert plain == [0]
    assert t.frame.tolist() == [1]
    assert t.ip_version.tolist() == [4]
    assert t.src[0].tolist() == [0] * 10 + [255, 255, 10, 1, 2, 3]
    assert t.dst[0].tolist() == [0] * 10 + [255, 255, 192, 0, 2, 9]
    assert (t.sport.tolist(), t.dport.tolist()) == ([4000], [5004])
    assert (t.udp_payload_len.tolist(), t.payload_caplen.tolist()) == ([20], [20])
    assert (t.frame_caplen.tolist(), t.frame_len.tolist(), t.payload_start.tolist()) == ([62], [62], [42])
    assert t.payload(0) == bytes(range(20))


def test_ip_total_length_zero_runs_to_the_end_of_the_frame_on_the_wire():
    # segmentation offload: the frame on the wire is 62 + 38 bytes, 62 captured
    frame = patched(udp_frame(), IP_TOTAL_LEN, 0)
    d, plain = decode_both([frame], caplens=[62], origlens=[100])
    assert plain == [0]
    assert d.datagrams.udp_payload_len.tolist() == [20]  # UDP length 28 fits the 86-byte IP packet
    frame = patched(frame, UDP_LEN, 0)
    d, _ = decode_both([frame], caplens=[62], origlens=[100])
    assert d.datagrams.udp_payload_len.tolist() == [100 - 14 - 20 - 8]
    assert d.datagrams.payload_caplen.tolist() == [20]


@pytest.mark.parametrize(("udp_len", "expected"), [(0, 20), (7, 20), (8, 0), (9, 1), (28, 20), (29, 20), (900, 20)])
def test_impossible_udp_length_gives_way_to_the_ip_length(udp_len, expected):
    d, plain = decode_both([patched(udp_frame(), UDP_LEN, udp_len)])
    assert plain == [0]
    assert d.datagrams.udp_payload_len.tolist() == [expected]
    assert d.datagrams.payload_caplen.tolist() == [expected]


@pytest.mark.parametrize(("total_len", "expected"), [(1, 0), (20, 0), (27, 0), (36, 8), (48, 20), (1500, 20)])
def test_ip_total_length_bounds_the_udp_payload(total_len, expected):
    d, plain = decode_both([patched(udp_frame(), IP_TOTAL_LEN, total_len)])
    assert plain == [0]
    assert d.datagrams.udp_payload_len.tolist() == [expected]


def test_snaplen_cut_frames_keep_their_length_on_the_wire():
    frame = udp_frame(b"\x80" * 160)
    d, plain = decode_both([frame[:42], frame[:50], frame[:41]], caplens=[42, 50, 41], origlens=[202] * 3)
    assert plain == [0, 1]  # the third lacks part of its UDP header: the general decoder's case
    assert d.datagrams.frame.tolist() == [1, 2]
    assert d.datagrams.udp_payload_len.tolist() == [160, 160]
    assert d.datagrams.payload_caplen.tolist() == [0, 8]
    assert d.counts["truncated-header"] == 1


def test_ethernet_padding_is_not_payload():
    frame = udp_frame(b"\x01\x02\x03")
    padded = frame + b"\0" * (60 - len(frame))
    d, plain = decode_both([padded, udp_frame()])
    assert plain == [0, 1]
    assert d.datagrams.udp_payload_len.tolist() == [3, 20]
    assert d.datagrams.payload_caplen.tolist() == [3, 20]
    assert d.datagrams.frame_caplen.tolist() == [60, 62]


def test_frame_ending_at_the_end_of_the_buffer_is_read_whole():
    d, plain = decode_both([udp_frame(), udp_frame(b"")])
    assert plain == [0, 1]
    assert d.datagrams.payload_start.tolist() == [42, 62 + 42]
    assert d.datagrams.payload_caplen.tolist() == [20, 0]


def test_flags_other_than_fragmenting_stay_on_the_fast_path():
    df = patched(udp_frame(), IP_FLAGS, 0x4000)
    evil = patched(udp_frame(), IP_FLAGS, 0x8000)
    more = patched(udp_frame(), IP_FLAGS, 0x2000)
    offset = patched(udp_frame(), IP_FLAGS, 0x0001)
    d, plain = decode_both([df, evil, more, offset])
    assert plain == [0, 1]
    assert d.datagrams.frame.tolist() == [1, 2]
    assert d.counts["ipv4-fragment"] == 2
    assert len(d.fragments) == 2


def test_other_frames_go_to_the_general_decoder_and_rows_stay_in_frame_order():
    v6 = bytes(Ether(**ETH) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / Raw(b"x" * 9))
    options = bytes(Ether(**ETH) / IP(options=[IPOption_NOP()] * 4) / UDP(sport=3, dport=4) / Raw(b"y" * 5))
    vlan = bytes(Ether(**ETH) / Dot1Q(vlan=7) / IP() / UDP(sport=5, dport=6) / Raw(b"z" * 7))
    sip = bytes(Ether(**ETH) / IP() / TCP(sport=5060, dport=5060) / Raw(b"INVITE sip:a@b SIP/2.0\r\n\r\n"))
    not_v4 = udp_frame()[:14] + b"\x65" + udp_frame()[15:]  # EtherType IPv4, version nibble 6
    frames = [udp_frame(), v6, udp_frame(), options, vlan, sip, udp_frame(), not_v4, udp_frame()]
    linktypes = [ETHERNET] * len(frames)
    frames.append(udp_frame()[14:])  # the same IP packet on a raw-IP link (101)
    linktypes.append(101)
    d, plain = decode_both(frames, linktypes=linktypes)
    assert plain == [0, 2, 6, 8]
    assert d.datagrams.frame.tolist() == [1, 2, 3, 4, 5, 7, 9, 10]
    assert d.datagrams.ip_version.tolist() == [4, 6, 4, 4, 4, 4, 4, 4]
    assert d.datagrams.sport.tolist() == [4000, 1, 4000, 3, 5, 4000, 4000, 4000]
    assert d.counts["non-ip"] == 1
    assert d.counts["tcp"] == 1
    assert len(d.tcp_sip) == 1


def test_tiny_buffers_and_short_frames_use_the_general_decoder():
    frame = udp_frame()
    for cut in (0, 13, 14, 33, 34, 41):
        d, plain = decode_both([frame[:cut]])
        assert plain == []
        assert len(d.datagrams) == 0


# -- the reader's buffers -----------------------------------------------------------


def test_chunks_keep_their_payloads_while_later_chunks_are_read(tmp_path):
    frames = [udp_frame(bytes([k & 0xFF]) * (100 + k % 50)) for k in range(3000)]
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, ETHERNET)
    records = [struct.pack("<IIII", 1_700_000_000 + k, k, len(f), len(f)) + f for k, f in enumerate(frames)]
    path = tmp_path / "many.pcap"
    path.write_bytes(header + b"".join(records))
    chunks = list(CaptureReader(path, chunk_bytes=1 << 16))
    assert len(chunks) > 4
    # one buffer per chunk, none reused
    assert not any(np.shares_memory(a.data, b.data) for a, b in zip(chunks, chunks[1:], strict=False))
    table = Datagrams.concat(chunks)
    assert len(table) == 3000
    assert [table.payload(k) for k in (0, 1234, 2999)] == [frames[k][42:] for k in (0, 1234, 2999)]
    assert table.udp_payload_len.tolist() == [100 + k % 50 for k in range(3000)]
