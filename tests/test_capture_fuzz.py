"""Hostile input: damaged captures raise only CaptureError subclasses, never hang.

Two sources of damage: seeded mutation of well-formed captures (truncation at
every kind of offset, bit flips, absurd and zero length fields, garbage after
a valid header, gzip around them) and hypothesis-generated records.
"""

from __future__ import annotations

import gzip
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscope.capture import read_capture
from callscope.capture.datagrams import Datagrams
from callscope.errors import CaptureError
from conftest import SHARED_CAPTURES

SLOWEST_READ_S = 2.0  # a read of a few kB taking longer than this counts as a hang


def eth_udp(v6: bool, payload: bytes, sport: int = 5004) -> bytes:
    udp = struct.pack("!HHHH", sport, 5006, 8 + len(payload), 0) + payload
    if v6:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, bytes(15) + b"\1", bytes(15) + b"\2")
        return bytes(12) + b"\x86\xdd" + ip + udp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, b"\n\0\0\1", b"\n\0\0\2")
    return bytes(12) + b"\x08\x00" + ip + udp


def v4_fragment(offset8: int, more: bool, data: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), 77, (more << 13) | offset8, 64, 17, 0,
                     b"\n\0\0\1", b"\n\0\0\2")
    return bytes(12) + b"\x08\x00" + ip + data


def seed_frames() -> list[bytes]:
    frames = [eth_udp(k % 3 == 0, bytes(range(k % 200))) for k in range(40)]
    udp = struct.pack("!HHHH", 5060, 5060, 8 + 64, 0) + bytes(64)
    frames += [v4_fragment(0, True, udp[:40]), v4_fragment(5, False, udp[40:])]
    return frames


def seed_pcap(endian: str = "<") -> bytes:
    out = [struct.pack(endian + "IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    for k, f in enumerate(seed_frames()):
        out.append(struct.pack(endian + "IIII", 1_700_000_000, k * 1000, len(f), len(f)) + f)
    return b"".join(out)


def _block(endian: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(endian + "II", btype, len(body) + 12) + body + struct.pack(endian + "I", len(body) + 12)


def seed_pcapng(endian: str = "<") -> bytes:
    tsresol = struct.pack(endian + "HH", 9, 1) + b"\x89\0\0\0" + struct.pack(endian + "HH", 0, 0)
    out = [_block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(endian, 1, struct.pack(endian + "HHI", 1, 0, 0)),
           _block(endian, 1, struct.pack(endian + "HHI", 113, 0, 0) + tsresol)]
    for k, f in enumerate(seed_frames()):
        if k % 5 == 4:
            out.append(_block(endian, 3, struct.pack(endian + "I", len(f)) + f))
        elif k % 5 == 3:
            out.append(_block(endian, 2, struct.pack(endian + "HHIIII", 0, 0, 0, k, len(f), len(f)) + f))
        else:
            out.append(_block(endian, 6, struct.pack(endian + "IIIII", 0, 0, k, len(f), len(f)) + f))
    return b"".join(out)


def seeds() -> dict[str, bytes]:
    out = {"pcap-le": seed_pcap("<"), "pcap-be": seed_pcap(">"),
           "pcapng-le": seed_pcapng("<"), "pcapng-be": seed_pcapng(">")}
    for name in ("rtpproxy__DLT_NULL.a.pcap", "nDPI__stun_signal.pcapng", "asterisk__opus-2013785496.pcap"):
        p = SHARED_CAPTURES / name
        if p.exists():
            out[name] = p.read_bytes()[:20_000]
    return out


def read_safely(path: Path) -> Datagrams | None:
    """Read ``path``; only CaptureError may escape, and the read must be quick."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cap = read_capture(path)
    except CaptureError:
        cap = None
    assert time.perf_counter() - t0 < SLOWEST_READ_S, f"{path.name} took too long"
    if cap is None:
        return None
    d = cap.datagrams
    # whatever was read is self-consistent
    assert len(d) == cap.info.udp_datagrams <= cap.info.packets
    assert np.all((d.frame >= 1) & (d.frame <= cap.info.packets))
    assert np.all((d.payload_caplen >= 0) & (d.payload_caplen <= d.udp_payload_len))
    assert np.all(d.payload_start + d.payload_caplen <= d.data.size)
    return d


def record_offsets(data: bytes) -> list[int]:
    """Start of every record (pcap) or block (pcapng) of a well-formed seed."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        offs, off = [], 0
        while off + 8 <= len(data):
            offs.append(off)
            off += struct.unpack_from(endian + "I", data, off + 4)[0]
        return offs
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offs, off = [], 24
    while off + 16 <= len(data):
        offs.append(off)
        off += 16 + struct.unpack_from(endian + "I", data, off + 8)[0]
    return offs


def mutations(data: bytes, rng: np.random.Generator):
    """(name, damaged bytes) for one seed."""
    offs = [o for o in record_offsets(data) if o < len(data)]
    big = data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") or data[8:12] == b"\x1a\x2b\x3c\x4d"
    endian = ">" if big else "<"
    pcapng = data[:4] == b"\x0a\x0d\x0d\x0a"
    # truncation: inside the file header, at and around every record boundary, inside records
    cuts = set(range(0, 40)) | {o + d for o in offs for d in (-1, 0, 1, 4, 8, 12, 15, 17)}
    cuts |= {int(c) for c in rng.integers(0, len(data), 60)}
    for c in sorted(x for x in cuts if 0 <= x < len(data)):
        yield f"cut@{c}", data[:c]
    # bit flips, single and in bursts
    for k in range(150):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), 1 if k % 3 else 8):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"flip{k}", bytes(b)
    # absurd, zero and off-by-one length fields in record headers: the block or
    # record length, and the captured and original lengths inside it
    for length_at in ((4, 20, 24) if pcapng else (8, 12)):
        for value in (0, 1, 3, 7, 8, 11, 12, 13, 15, 16, 0xFFFF, 262145, 0x7FFFFFFF, 0xFFFFFFFF):
            for o in rng.choice(offs[1:], size=min(3, len(offs) - 1), replace=False):
                b = bytearray(data)
                struct.pack_into(endian + "I", b, int(o) + length_at, value)
                yield f"len{value}@{o}+{length_at}", bytes(b)
    # garbage after a valid header, then after the first few records
    for k, keep in enumerate([24, 28] + offs[:6]):
        yield f"garbage{k}", data[:keep] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    # the same, compressed, with the compressed stream cut or damaged
    packed = gzip.compress(data)
    for c in (2, 5, 10, 18, len(packed) // 3, len(packed) - 9, len(packed) - 1):
        yield f"gzcut@{c}", packed[:c]
    for k in range(10):
        b = bytearray(packed)
        b[int(rng.integers(10, len(b)))] ^= 0xFF
        yield f"gzflip{k}", bytes(b)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", list(seeds()))
def test_mutated_captures_raise_only_capture_errors(tmp_path, seed):
    data = seeds()[seed]
    assert read_safely(_write(tmp_path / "seed", data)) is not None
    rng = np.random.default_rng(sum(seed.encode()))
    n = 0
    for name, damaged in mutations(data, rng):
        read_safely(_write(tmp_path / name, damaged))
        n += 1
    assert n > 300


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


LINKTYPES = (0, 1, 12, 14, 101, 108, 113, 228, 229, 276)


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(linktype=st.sampled_from(LINKTYPES), frames=st.lists(st.binary(max_size=200), max_size=20),
       tail=st.binary(max_size=64), nano=st.booleans(), endian=st.sampled_from("<>"))
def test_arbitrary_pcap_records_raise_only_capture_errors(tmp_path, linktype, frames, tail, nano, endian):
    out = [struct.pack(endian + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for k, f in enumerate(frames):
        out.append(struct.pack(endian + "IIII", k, k, len(f), len(f)) + f)
    d = read_safely(_write(tmp_path / "h.pcap", b"".join(out) + tail))
    if not tail and d is not None:
        assert d.frame.size <= len(frames)


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 0x0A0D0D0A, 0xBAD]), st.binary(max_size=96)),
                       max_size=12),
       endian=st.sampled_from("<>"))
def test_arbitrary_pcapng_blocks_raise_only_capture_errors(tmp_path, blocks, endian):
    head = _block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    body = b"".join(_block(endian, t, b) for t, b in blocks)
    read_safely(_write(tmp_path / "h.pcapng", head + body))


def test_extreme_pcapng_resolutions_offsets_and_timestamps_raise_only_capture_errors(tmp_path):
    e = "<"
    frame = eth_udp(False, b"x" * 10)
    read, representable = 0, 0
    for resol in list(range(0, 0x80, 7)) + list(range(0x80, 0x100, 7)) + [0x13, 0x14, 0xBF, 0xC0]:
        for raw in (0, 1 << 40, (1 << 64) - 1):
            for offset in (None, 1 << 40, -(1 << 63)):
                opts = struct.pack(e + "HH", 9, 1) + bytes([resol, 0, 0, 0])
                if offset is not None:
                    opts += struct.pack(e + "HHq", 14, 8, offset)
                data = (_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
                        + _block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + opts + struct.pack(e + "HH", 0, 0))
                        + _block(e, 6, struct.pack(e + "IIIII", 0, raw >> 32, raw & 0xFFFFFFFF, len(frame),
                                                   len(frame)) + frame))
                d = read_safely(_write(tmp_path / "t.pcapng", data))
                read += d is not None
                exponent, base = resol & 0x7F, 2 if resol & 0x80 else 10
                seconds = raw // base**exponent + (offset or 0)
                representable += exponent <= (63 if base == 2 else 19) and abs(seconds) < 9_223_372_035
    assert read == representable > 30
