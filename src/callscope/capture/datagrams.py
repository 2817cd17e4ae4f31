"""The columnar table of UDP datagrams the reader produces.

One row per UDP datagram, one numpy array per field: no Python object per
packet. Payload bytes live in one shared ``uint8`` buffer; row ``i``'s payload
is ``data[payload_start[i] : payload_start[i] + payload_caplen[i]]``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

#: IPv4 addresses are stored IPv4-mapped (``::ffff:a.b.c.d``, RFC 4291 §2.5.5.2)
#: so that one 16-byte column holds both families.
V4_MAPPED_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


@dataclass(frozen=True)
class Datagrams:
    """UDP datagrams of (part of) a capture, as parallel numpy arrays.

    Attributes
    ----------
    frame : int64
        1-based frame number in the capture (Wireshark's ``frame.number``).
    time_ns : int64
        Capture timestamp, nanoseconds since the Unix epoch (full precision of
        the file up to 1 ns).
    ip_version : uint8
        4 or 6.
    src, dst : uint8, shape (n, 16)
        Addresses; IPv4 stored IPv4-mapped (``::ffff:a.b.c.d``).
    sport, dport : uint16
        UDP ports.
    udp_payload_len : int32
        Payload length according to the UDP header (bytes on the wire).
    payload_caplen : int32
        Payload bytes actually present in the capture (< ``udp_payload_len``
        when snaplen cut the packet).
    frame_caplen, frame_len : int32
        Captured and original length of the whole frame.
    payload_start : int64
        Offset of the payload in ``data``.
    data : uint8
        The buffer holding payload bytes.
    ttl : uint8
        IPv4 time to live or IPv6 hop limit (RFC 791 §3.1, RFC 8200 §3); 0
        where unknown (reassembled fragments, the tshark decoder). A host's
        own packets carry its initial value, everyone else's arrive lower.
    """

    frame: np.ndarray
    time_ns: np.ndarray
    ip_version: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    udp_payload_len: np.ndarray
    payload_caplen: np.ndarray
    frame_caplen: np.ndarray
    frame_len: np.ndarray
    payload_start: np.ndarray
    data: np.ndarray = field(repr=False)
    ttl: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8), repr=False)

    def __post_init__(self) -> None:
        if self.ttl.shape[0] != self.frame.shape[0]:  # not given: unknown
            object.__setattr__(self, "ttl", np.zeros(self.frame.shape[0], np.uint8))

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @classmethod
    def empty(cls) -> Datagrams:
        z = np.zeros(0, dtype=np.int64)
        return cls(
            frame=z,
            time_ns=z.copy(),
            ip_version=np.zeros(0, np.uint8),
            src=np.zeros((0, 16), np.uint8),
            dst=np.zeros((0, 16), np.uint8),
            sport=np.zeros(0, np.uint16),
            dport=np.zeros(0, np.uint16),
            udp_payload_len=np.zeros(0, np.int32),
            payload_caplen=np.zeros(0, np.int32),
            frame_caplen=np.zeros(0, np.int32),
            frame_len=np.zeros(0, np.int32),
            payload_start=z.copy(),
            data=np.zeros(0, np.uint8),
        )

    def payload(self, i: int) -> bytes:
        """The captured payload bytes of row ``i`` (for signalling, not the hot path)."""
        s = int(self.payload_start[i])
        return self.data[s : s + int(self.payload_caplen[i])].tobytes()

    def payload_prefix(self, width: int) -> np.ndarray:
        """The first ``width`` payload bytes of every row, shape (n, width), zero-padded.

        Vectorised gather: the way later stages read protocol headers.
        """
        n = len(self)
        if n == 0 or self.data.size == 0:
            return np.zeros((n, width), np.uint8)
        words = -(-width // 8)
        start = np.asarray(self.payload_start, np.int64)
        caplen = np.asarray(self.payload_caplen, np.int64)
        # Whole little-endian 64-bit words read at any byte offset (an
        # unaligned strided view: one gather per word instead of per byte).
        # Rows whose words would run past the buffer's end take the byte path.
        last = self.data.size - 8
        inside = start + 8 * words - 1 <= last
        out = np.zeros((n, words), "<u8")
        if last >= 0:
            at = np.ndarray((last + 1,), dtype="<u8", buffer=self.data, strides=(1,))
            every = bool(inside.all())  # the usual case: no masked writes
            rows = start if every else start[inside]
            for w in range(words):
                if every:
                    out[:, w] = at[rows + 8 * w]
                else:
                    out[inside, w] = at[rows + 8 * w]
            # zero the bytes past each short payload's end: keep the low `kept` bytes
            short = np.flatnonzero(caplen < 8 * words)
            if short.size:
                kept = np.clip(caplen[short, None] - 8 * np.arange(words)[None, :], 0, 8).astype(np.uint64)
                out[short] &= np.where(
                    kept >= 8, ~np.uint64(0), (np.uint64(1) << (np.uint64(8) * kept)) - np.uint64(1)
                )
        result = np.ascontiguousarray(out.view(np.uint8).reshape(n, 8 * words)[:, :width])
        edge = np.flatnonzero(~inside)
        if edge.size:
            k = np.arange(width)[None, :]
            valid = k < caplen[edge, None]
            idx = np.minimum(np.where(valid, start[edge, None] + k, 0), self.data.size - 1)
            result[edge] = np.where(valid, self.data[idx], 0)
        return result

    def take(self, index: np.ndarray) -> Datagrams:
        """Rows selected by a boolean mask or integer index (payload buffer shared)."""
        return Datagrams(
            frame=self.frame[index],
            time_ns=self.time_ns[index],
            ip_version=self.ip_version[index],
            src=self.src[index],
            dst=self.dst[index],
            sport=self.sport[index],
            dport=self.dport[index],
            udp_payload_len=self.udp_payload_len[index],
            payload_caplen=self.payload_caplen[index],
            frame_caplen=self.frame_caplen[index],
            frame_len=self.frame_len[index],
            payload_start=self.payload_start[index],
            data=self.data,
            ttl=self.ttl[index],
        )

    def compact(self) -> Datagrams:
        """The same rows with a payload buffer holding only their payload bytes.

        Chunks straight from the reader share the whole chunk buffer (no copy
        on the hot path); compacting drops the bytes of other protocols and
        headers before tables are kept or joined.
        """
        n = len(self)
        total = int(self.payload_caplen.sum()) if n else 0
        if self.data.size == total and (n == 0 or self.payload_start[0] == 0):
            return self
        order = np.argsort(self.payload_start, kind="stable")
        s = self.payload_start[order].astype(np.int64)
        length = self.payload_caplen[order].astype(np.int64)
        new_sorted = np.zeros(n, np.int64)
        if n > 1:
            np.cumsum(length[:-1], out=new_sorted[1:])
        if n and bool(np.all(s[1:] >= s[:-1] + length[:-1])):
            # Disjoint payloads: +1 at each start and -1 at each end (each index
            # unique within one assignment) integrate to a 0/1 mask.
            edges = np.zeros(self.data.size + 1, np.int8)
            edges[s] += 1
            edges[s + length] -= 1
            data = self.data[np.cumsum(edges[:-1], dtype=np.int8).view(bool)]
        else:
            data = self.data[np.repeat(s - new_sorted, length) + np.arange(total)] if total else self.data[:0]
        new_start = np.empty(n, np.int64)
        new_start[order] = new_sorted
        return Datagrams(
            frame=self.frame, time_ns=self.time_ns, ip_version=self.ip_version, src=self.src,
            dst=self.dst, sport=self.sport, dport=self.dport, udp_payload_len=self.udp_payload_len,
            payload_caplen=self.payload_caplen, frame_caplen=self.frame_caplen,
            frame_len=self.frame_len, payload_start=new_start, data=np.ascontiguousarray(data),
            ttl=self.ttl,
        )

    @staticmethod
    def concat(parts: list[Datagrams]) -> Datagrams:
        """Join chunks into one table (payloads compacted, offsets rebased)."""
        parts = [p.compact() for p in parts if len(p)]
        if not parts:
            return Datagrams.empty()
        if len(parts) == 1:
            return parts[0]
        bases = np.cumsum([0] + [p.data.size for p in parts[:-1]])
        return Datagrams(
            frame=np.concatenate([p.frame for p in parts]),
            time_ns=np.concatenate([p.time_ns for p in parts]),
            ip_version=np.concatenate([p.ip_version for p in parts]),
            src=np.concatenate([p.src for p in parts]),
            dst=np.concatenate([p.dst for p in parts]),
            sport=np.concatenate([p.sport for p in parts]),
            dport=np.concatenate([p.dport for p in parts]),
            udp_payload_len=np.concatenate([p.udp_payload_len for p in parts]),
            payload_caplen=np.concatenate([p.payload_caplen for p in parts]),
            frame_caplen=np.concatenate([p.frame_caplen for p in parts]),
            frame_len=np.concatenate([p.frame_len for p in parts]),
            payload_start=np.concatenate(
                [p.payload_start + b for p, b in zip(parts, bases, strict=True)]
            ),
            data=np.concatenate([p.data for p in parts]),
            ttl=np.concatenate([p.ttl for p in parts]),
        )


def address_to_str(addr16: np.ndarray) -> str:
    """Text form of one 16-byte address row (IPv4-mapped shown as dotted quad)."""
    b = bytes(np.asarray(addr16, dtype=np.uint8))
    if b[:12] == bytes(V4_MAPPED_PREFIX):
        return str(ipaddress.IPv4Address(b[12:]))
    return str(ipaddress.IPv6Address(b))


def str_to_address(text: str) -> np.ndarray:
    """16-byte row for an address given as text (inverse of :func:`address_to_str`)."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return np.concatenate([V4_MAPPED_PREFIX, np.frombuffer(ip.packed, np.uint8)])
    return np.frombuffer(ip.packed, np.uint8).copy()
