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


def group_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique key rows and, for every row of ``keys``, the index of its group."""
    if keys.shape[0] == 0:
        return keys, np.zeros(0, np.int64)
    view = keys.view(np.dtype((np.void, keys.shape[1]))).ravel()
    uniq, inverse = np.unique(view, return_inverse=True)
    return uniq.view(np.uint8).reshape(-1, keys.shape[1]), inverse.ravel()


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
