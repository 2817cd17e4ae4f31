"""Datagrams of a simulated call before they become a capture.

Each part of the simulator (media, RTCP, signalling) builds its datagrams as
a :class:`Part`: rows of one kind of datagram with their send and arrival
times, sizes and payload bytes. :func:`assemble` merges the parts into the
per-packet columns of :class:`callscope.synth.call.SimulatedCall`, sorted by
send time, and decides from ``vantage`` when each packet was captured.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from callscope.synth.scenarios import A_TO_B, B_TO_A


class Kind(IntEnum):
    """What a simulated datagram carries."""

    RTP = 0
    RTCP = 1
    SIP = 2
    STUN = 3
    OPAQUE = 4
    KEEPALIVE = 5


@dataclass(frozen=True)
class StreamInfo:
    """Ground truth about one flow of the call (one direction of media, or its RTCP)."""

    index: int
    kind: str  # "rtp", "rtcp", "opaque", "stun"
    direction: str  # "a->b" or "b->a"
    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int | None
    payload_type: int | None
    clock_rate: int | None
    impaired: bool
    sent: int
    delivered: int


@dataclass
class Part:
    """Rows of one kind of datagram, assembled before they are merged and sorted."""

    kind: int
    stream: int
    direction: int
    send_time: np.ndarray
    arrival_time: np.ndarray
    size: np.ndarray
    drop: np.ndarray
    src: int
    dst: int
    sport: int
    dport: int
    data: np.ndarray
    seq: np.ndarray | None = None
    rtp_ts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.send_time.shape[0])


def random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random bytes: what an encrypted or unsimulated payload looks like."""
    return np.frombuffer(rng.bytes(int(n)), np.uint8).copy()


def _capture_time(send: np.ndarray, arrival: np.ndarray, direction: np.ndarray, vantage: str) -> np.ndarray:
    if vantage == "receivers":
        return arrival.copy()
    own = A_TO_B if vantage == "a" else B_TO_A
    return np.where(direction == own, send, arrival)


def _ip_ids(rng: np.random.Generator, src: np.ndarray) -> np.ndarray:
    """RFC 791 §3.1 Identification: a per-host counter, in send order, from a random start."""
    hosts, inverse = np.unique(src, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[order], np.arange(hosts.size))
    rank = np.empty(src.size, np.int64)
    rank[order] = np.arange(src.size) - first[inverse[order]]
    offset = rng.integers(0, 1 << 16, hosts.size)
    return ((offset[inverse] + rank) & 0xFFFF).astype(np.uint16)


def assemble(parts: list[Part], rng: np.random.Generator, vantage: str) -> dict[str, Any]:
    """Merge the parts into per-packet columns sorted by send time."""
    parts = [p for p in parts if len(p)]
    cols: dict[str, np.ndarray] = {}
    n_each = [len(p) for p in parts]
    cols["kind"] = np.repeat(np.array([p.kind for p in parts], np.uint8), n_each)
    cols["stream"] = np.repeat(np.array([p.stream for p in parts], np.int16), n_each)
    cols["direction"] = np.repeat(np.array([p.direction for p in parts], np.int8), n_each)
    for name in ("src", "dst"):
        cols[name] = np.repeat(np.array([getattr(p, name) for p in parts], np.uint32), n_each)
    for name in ("sport", "dport"):
        cols[name] = np.repeat(np.array([getattr(p, name) for p in parts], np.uint16), n_each)
    cols["send_time"] = np.concatenate([p.send_time for p in parts]).astype(np.float64)
    cols["arrival_time"] = np.concatenate([p.arrival_time for p in parts]).astype(np.float64)
    cols["size"] = np.concatenate([p.size for p in parts]).astype(np.int32)
    cols["drop"] = np.concatenate([p.drop for p in parts]).astype(np.uint8)
    none = [np.full(len(p), -1, np.int64) for p in parts]
    cols["seq"] = np.concatenate([none[i] if p.seq is None else p.seq for i, p in enumerate(parts)])
    cols["rtp_ts"] = np.concatenate([none[i] if p.rtp_ts is None else p.rtp_ts for i, p in enumerate(parts)])
    data = np.concatenate([p.data for p in parts])
    start = np.cumsum(cols["size"].astype(np.int64)) - cols["size"]
    order = np.argsort(cols["send_time"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cols["payload_start"] = start[order]
    cols["data"] = data
    cols["ip_id"] = _ip_ids(rng, cols["src"])
    cols["capture_time"] = _capture_time(cols["send_time"], cols["arrival_time"], cols["direction"], vantage)
    return cols
