"""Reassembly of fragmented UDP datagrams (IPv4: RFC 791 §3.2; IPv6: RFC 8200 §4.5).

Fragments are rare in voice traffic (SIP INVITEs with large SDP are the usual
case), so this runs in Python over the few fragment frames the vectorised
decoder sets aside. A reassembled datagram takes the frame number and time of
the fragment that completed it, as Wireshark shows it.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from callscope.capture.datagrams import V4_MAPPED_PREFIX, Datagrams

MAX_PENDING = 4096  # incomplete datagrams kept at once; the oldest are dropped beyond this
MAX_DATAGRAM = 65535 + 40
#: Fragment bytes held for incomplete datagrams at once (the oldest datagrams
#: are dropped beyond this): overlapping or never-completed fragments cannot
#: make memory grow with the capture.
MAX_PENDING_BYTES = 64 << 20


@dataclass
class _Pending:
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    src: bytes = b""
    dst: bytes = b""
    version: int = 4
    held: int = 0  # bytes in ``pieces``
    tried: int = 0  # pieces at the last attempt that found a hole


class Reassembler:
    """Collects fragments across chunks and emits complete UDP datagrams.

    Linear in the fragments fed: incomplete datagrams are kept in insertion
    order (the oldest evicted in O(1)), a datagram is put together only once
    its pieces hold as many bytes as its length, and a fragment that would
    reach past the largest datagram is dropped.
    """

    def __init__(self) -> None:
        self._pending: OrderedDict[tuple, _Pending] = OrderedDict()
        self._held = 0
        self.reassembled = 0

    def _drop(self, key: tuple) -> None:
        self._held -= self._pending.pop(key).held

    def add(self, fragments: list[tuple]) -> Datagrams:
        """Feed ``(frame, time_ns, raw_ip_packet)`` fragments; return completed datagrams."""
        rows = []
        for frame, time_ns, raw in fragments:
            parsed = _parse(raw)
            if parsed is None:
                continue
            key, version, src, dst, offset, more, data = parsed
            if offset + len(data) > MAX_DATAGRAM:
                continue
            p = self._pending.get(key)
            if p is None:
                while self._pending and (len(self._pending) >= MAX_PENDING
                                         or self._held + len(data) > MAX_PENDING_BYTES):
                    self._drop(next(iter(self._pending)))
                p = self._pending[key] = _Pending(src=src, dst=dst, version=version)
            old = p.pieces.get(offset)
            p.held += len(data) - (len(old) if old is not None else 0)
            self._held += len(data) - (len(old) if old is not None else 0)
            p.pieces[offset] = data
            if not more:
                p.total = offset + len(data)
            if p.total is None or p.held < p.total:
                continue  # cannot be complete yet: not enough bytes
            if p.tried and more and len(p.pieces) < 2 * p.tried:
                # Overlapping pieces left a hole last time: try again only once
                # their number has doubled, so a datagram costs O(k log k), not O(k^2).
                continue
            whole = _assemble(p)
            p.tried = len(p.pieces)
            if whole is not None:
                self._drop(key)
                rows.append((frame, time_ns, version, src, dst, whole))
        self.reassembled += len(rows)
        return _to_datagrams(rows)


def _parse(raw: bytes):
    if len(raw) < 20:
        return None
    version = raw[0] >> 4
    if version == 4:
        ihl = (raw[0] & 0x0F) * 4
        total, ident, ff = struct.unpack_from("!HHH", raw, 2)
        payload = raw[ihl:max(min(total, len(raw)), ihl)]
        src, dst = raw[12:16], raw[16:20]
        key = (4, src, dst, ident, raw[9])
        return key, 4, src, dst, (ff & 0x1FFF) * 8, bool(ff & 0x2000), payload
    if version == 6 and len(raw) >= 48:
        nh, pos = raw[6], 40
        plen = struct.unpack_from("!H", raw, 4)[0]
        end = min(40 + plen, len(raw))
        while nh in (0, 43, 60) and pos + 8 <= end:
            nh, pos = raw[pos], pos + (raw[pos + 1] + 1) * 8
        if nh != 44 or pos + 8 > end:
            return None
        om, ident = struct.unpack_from("!HI", raw, pos + 2)
        src, dst = raw[8:24], raw[24:40]
        return (6, src, dst, ident), 6, src, dst, (om >> 3) * 8, bool(om & 1), raw[pos + 8:end]
    return None


def _assemble(p: _Pending) -> bytes | None:
    if p.total is None or p.total > MAX_DATAGRAM:
        return None
    out = bytearray()
    for offset in sorted(p.pieces):
        if offset > len(out):
            return None
        out[offset:offset + len(p.pieces[offset])] = p.pieces[offset]
    return bytes(out[:p.total]) if len(out) >= p.total else None


def _to_datagrams(rows: list[tuple]) -> Datagrams:
    rows = [r for r in rows if len(r[5]) >= 8]
    if not rows:
        return Datagrams.empty()
    n = len(rows)
    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    for i, (_, _, version, s, d, _) in enumerate(rows):
        for arr, a in ((src, s), (dst, d)):
            if version == 4:
                arr[i, :12] = V4_MAPPED_PREFIX
                arr[i, 12:] = np.frombuffer(a, np.uint8)
            else:
                arr[i] = np.frombuffer(a, np.uint8)
    udp = [r[5] for r in rows]
    sport = np.array([struct.unpack_from("!H", u, 0)[0] for u in udp], np.uint16)
    dport = np.array([struct.unpack_from("!H", u, 2)[0] for u in udp], np.uint16)
    payloads = [u[8:] for u in udp]
    lens = np.array([len(p) for p in payloads], np.int32)
    starts = np.zeros(n, np.int64)
    starts[1:] = np.cumsum(lens[:-1])
    return Datagrams(
        frame=np.array([r[0] for r in rows], np.int64),
        time_ns=np.array([r[1] for r in rows], np.int64),
        ip_version=np.array([r[2] for r in rows], np.uint8),
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        udp_payload_len=lens,
        payload_caplen=lens.copy(),
        frame_caplen=lens + 8,
        frame_len=lens + 8,
        payload_start=starts,
        data=np.frombuffer(b"".join(payloads), np.uint8).copy(),
    )
