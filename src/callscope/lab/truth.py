"""Ground truth from the two endpoint captures of a lab run.

The caller's capture holds every packet the caller sent, as it left (before
the router); the callee's capture holds what of it survived the router, and
the other way round. A packet is followed by a hash of its UDP payload (RTP
header with sequence number and timestamp, or random bytes for opaque
media) and its occurrence number among equal payloads (a STUN request
retransmitted with the same transaction ID), so per flow the exact dropped
packets, their times and every survivor's one-way delay follow. Both
captures are stamped by the same kernel clock: the delays need no clock
fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.capture.datagrams import Datagrams, address_to_str, str_to_address
from callscope.capture.flows import flow_keys, group_rows
from callscope.twopoint import payload_hashes

STUN_MAGIC = 0x2112A442  # RFC 5389 §6
SIP_PORTS = frozenset({5060, 5062})


@dataclass(frozen=True)
class FlowTruth:
    """One flow of one direction, followed from its sender's capture to its receiver's."""

    direction: str
    kind: str
    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int | None
    sent_time_ns: np.ndarray
    payload_len: np.ndarray
    delivered: np.ndarray  # bool per sent packet
    delay_ns: np.ndarray  # per delivered packet
    seq: np.ndarray | None  # RTP sequence numbers, per sent packet
    #: (src, src_port, dst, dst_port) of the flow as the receiver saw it (differs via a relay).
    received_as: tuple[tuple[str, int, str, int], ...] = ()

    @property
    def sent(self) -> int:
        return int(self.delivered.size)

    @property
    def dropped(self) -> int:
        return int(self.delivered.size - np.count_nonzero(self.delivered))

    def dropped_ranges(self) -> list[list[float]]:
        """Runs of consecutive drops: [first index, last index, t_first_s, t_last_s] (s from the flow's start)."""
        idx = np.flatnonzero(~self.delivered)
        if idx.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [idx.size - 1]])
        t = (self.sent_time_ns - self.sent_time_ns[0]) / 1e9
        return [[int(idx[a]), int(idx[b]), round(float(t[idx[a]]), 6), round(float(t[idx[b]]), 6)]
                for a, b in zip(starts, ends, strict=True)]

    def to_json(self) -> dict:
        d = self.delay_ns / 1e6
        doc: dict = {
            "direction": self.direction, "kind": self.kind, "src": self.src, "src_port": self.src_port,
            "dst": self.dst, "dst_port": self.dst_port, "sent": self.sent,
            "delivered": self.sent - self.dropped, "dropped": self.dropped,
            "payload_bytes_sent": int(self.payload_len.sum()),
            "first_sent_s": float(self.sent_time_ns[0] / 1e9) if self.sent else None,
            "dropped_index": np.flatnonzero(~self.delivered).tolist(),
            "dropped_ranges": self.dropped_ranges(),
            "received_as": [list(r) for r in self.received_as],
        }
        if self.ssrc is not None:
            doc["ssrc"] = self.ssrc
        if self.seq is not None:
            doc["dropped_seq"] = self.seq[~self.delivered].tolist()
        if self.kind in ("rtp", "opaque"):
            # every survivor's one-way delay, in order (both captures share one kernel clock)
            doc["delay_us"] = np.round(self.delay_ns / 1e3).astype(np.int64).tolist()
        if d.size:
            doc["delay_ms"] = {"min": round(float(d.min()), 4), "median": round(float(np.median(d)), 4),
                               "p95": round(float(np.percentile(d, 95)), 4), "max": round(float(d.max()), 4)}
        return doc


def occurrence_keys(hashes: np.ndarray) -> np.ndarray:
    """One 64-bit key per row for "the k-th packet (in order) with this payload hash"."""
    order = np.argsort(hashes, kind="stable")
    sorted_h = hashes[order]
    start = np.concatenate([[True], sorted_h[1:] != sorted_h[:-1]]) if hashes.size else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(start, np.arange(hashes.size), 0))
    occ = np.empty(hashes.size, np.int64)
    occ[order] = np.arange(hashes.size) - group_start
    with np.errstate(over="ignore"):
        return hashes.astype(np.uint64) + occ.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def is_stun(d: Datagrams) -> np.ndarray:
    """Rows that are STUN messages (RFC 5389 §6: first two bits 0, magic cookie at bytes 4-7)."""
    head = d.payload_prefix(8)
    magic = (head[:, 4].astype(np.uint32) << 24) | (head[:, 5].astype(np.uint32) << 16) | (
        head[:, 6].astype(np.uint32) << 8) | head[:, 7]
    return (magic == STUN_MAGIC) & (head[:, 0] < 2) & (d.udp_payload_len >= 20)


def _kind(d: Datagrams, rows: np.ndarray) -> str:
    head = d.payload_prefix(12)[rows]
    sport, dport = int(d.sport[rows[0]]), int(d.dport[rows[0]])
    if sport in SIP_PORTS and dport in SIP_PORTS:
        return "sip"
    magic = (head[:, 4].astype(np.uint32) << 24) | (head[:, 5].astype(np.uint32) << 16) | (
        head[:, 6].astype(np.uint32) << 8) | head[:, 7]
    if np.all(magic == STUN_MAGIC) and np.all(head[:, 0] < 2):
        return "stun"
    if np.all(head[:, 0] >> 6 == 2):
        return "rtcp" if np.all((head[:, 1] >= 200) & (head[:, 1] <= 204)) else "rtp"
    return "opaque"


def follow(sent_side: Datagrams, recv_side: Datagrams, sender: str, receiver: str, direction: str) -> list[FlowTruth]:
    """Every flow ``sender`` sent in ``sent_side``, followed into ``recv_side``.

    Parameters
    ----------
    sent_side, recv_side : Datagrams
        The sender's and the receiver's captures.
    sender, receiver : str
        The two endpoints' addresses: rows of ``sent_side`` from ``sender``
        are what was sent; rows of ``recv_side`` not from ``receiver`` are
        what arrived (from the peer or a relay).
    direction : str
        Name of the direction (``"a->b"``) recorded in the result.
    """
    tx_rows = np.flatnonzero(np.all(sent_side.src == str_to_address(sender), axis=1))
    rx_rows = np.flatnonzero(~np.all(recv_side.src == str_to_address(receiver), axis=1))
    tx = sent_side.take(tx_rows)
    rx = recv_side.take(rx_rows)
    tx_keys = occurrence_keys(payload_hashes(tx))
    rx_keys = occurrence_keys(payload_hashes(rx))
    rx_sorted = np.argsort(rx_keys)
    match = np.full(len(tx), -1, np.int64)
    if rx_keys.size:
        pos = np.minimum(np.searchsorted(rx_keys[rx_sorted], tx_keys), rx_keys.size - 1)
        hit = rx_keys[rx_sorted][pos] == tx_keys
        match[hit] = rx_sorted[pos[hit]]
    # STUN shares the media's 5-tuple in ICE (RFC 7983 demultiplexing): a flow of its own here.
    fk = flow_keys(tx)
    keys, flow = group_rows(np.concatenate([fk, is_stun(tx)[:, None].astype(np.uint8)], axis=1))
    keys = keys[:, :-1]
    rx_flow_keys, rx_flow = group_rows(flow_keys(rx))
    out = []
    for i in range(keys.shape[0]):
        rows = np.flatnonzero(flow == i)
        m = match[rows]
        delivered = m >= 0
        kind = _kind(tx, rows)
        head = tx.payload_prefix(12)[rows]
        ssrc = seq = None
        if kind == "rtp":
            ssrc = int.from_bytes(bytes(head[0, 8:12]), "big")
            seq = (head[:, 2].astype(np.int64) << 8) | head[:, 3]
        elif kind == "rtcp":
            ssrc = int.from_bytes(bytes(head[0, 4:8]), "big")
        seen = sorted({tuple(rx_flow_keys[j]) for j in np.unique(rx_flow[m[delivered]])})
        received_as = tuple(_endpoints(np.asarray(k, np.uint8)) for k in seen)
        out.append(FlowTruth(
            direction=direction, kind=kind,
            src=address_to_str(tx.src[rows[0]]), src_port=int(tx.sport[rows[0]]),
            dst=address_to_str(tx.dst[rows[0]]), dst_port=int(tx.dport[rows[0]]),
            ssrc=ssrc, sent_time_ns=tx.time_ns[rows].astype(np.int64),
            payload_len=tx.udp_payload_len[rows].astype(np.int64), delivered=delivered,
            delay_ns=(rx.time_ns[m[delivered]] - tx.time_ns[rows][delivered]).astype(np.int64),
            seq=seq, received_as=received_as,
        ))
    return out


def unmatched_received(sent_side: Datagrams, recv_side: Datagrams, sender: str, receiver: str) -> int:
    """Packets that arrived at ``receiver`` but are not in the sender's capture (should be none)."""
    tx = sent_side.take(np.flatnonzero(np.all(sent_side.src == str_to_address(sender), axis=1)))
    rx = recv_side.take(np.flatnonzero(~np.all(recv_side.src == str_to_address(receiver), axis=1)))
    tx_keys = occurrence_keys(payload_hashes(tx))
    return int(np.count_nonzero(~np.isin(occurrence_keys(payload_hashes(rx)), tx_keys)))


def _endpoints(key: np.ndarray) -> tuple[str, int, str, int]:
    return (address_to_str(key[0:16]), int(key[32]) << 8 | int(key[33]),
            address_to_str(key[16:32]), int(key[34]) << 8 | int(key[35]))
