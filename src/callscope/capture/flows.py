"""UDP flows (5-tuples) of a capture, aggregated chunk by chunk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.capture.datagrams import Datagrams, address_to_str

KEY_WIDTH = 36  # src(16) + dst(16) + sport(2) + dport(2)


def flow_keys(d: Datagrams) -> np.ndarray:
    """One 36-byte row per datagram identifying its directed 5-tuple (UDP implied)."""
    ports = np.stack([d.sport >> 8, d.sport & 0xFF, d.dport >> 8, d.dport & 0xFF], axis=1).astype(np.uint8)
    return np.ascontiguousarray(np.concatenate([d.src, d.dst, ports], axis=1))


def void_rows(keys: np.ndarray) -> np.ndarray:
    """Each key row as one opaque byte record (sortable and comparable as a whole)."""
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.shape[1]))).ravel()


#: Odd 64-bit multipliers for hashing key rows of up to 40 bytes (golden-ratio constants).
_KEY_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x94D049BB133111EB],
    dtype=np.uint64,
)


def _hash_keys(keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each key row (zero-padded to whole 64-bit words, multiplied and summed)."""
    n, width = keys.shape
    words = -(-width // 8)
    padded = np.zeros((n, 8 * words), np.uint8)
    padded[:, :width] = keys
    return (padded.view(np.uint64) * _KEY_MULT[None, :words]).sum(axis=1, dtype=np.uint64)


def group_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of ``keys`` in first-seen order and each row's index (int32) into them.

    Rows are grouped by a 64-bit hash (an integer sort, twice as fast as
    sorting byte records), and every row is then compared with its group's
    first one: on a hash collision the byte records are sorted after all.
    """
    if keys.shape[0] == 0:
        return keys, np.zeros(0, np.int32)
    _, first, inverse = np.unique(_hash_keys(keys), return_index=True, return_inverse=True)
    if not np.array_equal(keys[first[inverse.ravel()]], keys):
        _, first, inverse = np.unique(void_rows(keys), return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return keys[first[order]], rank[inverse.ravel()].astype(np.int32)


@dataclass(frozen=True)
class FlowTable:
    """Per-flow totals: one row per directed UDP 5-tuple."""

    keys: np.ndarray  # (n, 36) uint8
    packets: np.ndarray
    bytes: np.ndarray  # UDP payload bytes
    first_ns: np.ndarray
    last_ns: np.ndarray

    def __len__(self) -> int:
        return int(self.packets.size)

    @classmethod
    def of(cls, d: Datagrams) -> FlowTable:
        uniq, inv = group_rows(flow_keys(d))
        n = uniq.shape[0]
        first = np.full(n, np.iinfo(np.int64).max)
        last = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(first, inv, d.time_ns)
        np.maximum.at(last, inv, d.time_ns)
        return cls(
            keys=uniq,
            packets=np.bincount(inv, minlength=n).astype(np.int64),
            bytes=np.bincount(inv, weights=d.udp_payload_len, minlength=n).astype(np.int64),
            first_ns=first,
            last_ns=last,
        )

    @staticmethod
    def merge(tables: list[FlowTable]) -> FlowTable:
        tables = [t for t in tables if len(t)]
        if not tables:
            z = np.zeros(0, np.int64)
            return FlowTable(np.zeros((0, KEY_WIDTH), np.uint8), z, z, z, z)
        keys = np.concatenate([t.keys for t in tables])
        uniq, inv = group_rows(keys)
        n = uniq.shape[0]
        first = np.full(n, np.iinfo(np.int64).max)
        last = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(first, inv, np.concatenate([t.first_ns for t in tables]))
        np.maximum.at(last, inv, np.concatenate([t.last_ns for t in tables]))
        return FlowTable(
            keys=uniq,
            packets=np.bincount(inv, weights=np.concatenate([t.packets for t in tables]), minlength=n).astype(np.int64),
            bytes=np.bincount(inv, weights=np.concatenate([t.bytes for t in tables]), minlength=n).astype(np.int64),
            first_ns=first,
            last_ns=last,
        )

    def endpoints(self, i: int) -> tuple[str, int, str, int]:
        k = self.keys[i]
        return (
            address_to_str(k[:16]),
            int(k[32]) << 8 | int(k[33]),
            address_to_str(k[16:32]),
            int(k[34]) << 8 | int(k[35]),
        )
