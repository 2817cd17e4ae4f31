"""What is in a capture (``callscope info``), computed in one bounded-memory pass."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from callscope.capture.flows import FlowTable
from callscope.capture.reader import CaptureInfo, CaptureReader


@dataclass(frozen=True)
class Flow:
    src: str
    src_port: int
    dst: str
    dst_port: int
    packets: int
    bytes: int
    first_time_ns: int
    last_time_ns: int

    @property
    def duration_s(self) -> float:
        return (self.last_time_ns - self.first_time_ns) / 1e9

    @property
    def packets_per_s(self) -> float:
        d = self.duration_s
        return (self.packets - 1) / d if d > 0 else 0.0

    @property
    def mean_size(self) -> float:
        return self.bytes / self.packets if self.packets else 0.0


@dataclass(frozen=True)
class CaptureSummary:
    info: CaptureInfo
    flows: tuple[Flow, ...]  # busiest first
    flow_count: int


def summarize(path: str | os.PathLike, top: int = 10, decoder: str = "builtin") -> CaptureSummary:
    """Read a capture once and summarise it: format, link types, counts, busiest UDP flows.

    ``decoder="wireshark"`` reads it through Wireshark's dissectors
    (:mod:`callscope.capture.tshark_decoder`) instead of the built-in reader.
    """
    if decoder == "wireshark":
        from callscope.capture.tshark_decoder import read_capture_wireshark

        capture = read_capture_wireshark(path)
        info, flows = capture.info, FlowTable.of(capture.datagrams)
    else:
        reader = CaptureReader(path)
        flows = FlowTable.merge([FlowTable.of(chunk) for chunk in reader])
        info = reader.info
    order = np.lexsort((-flows.bytes, -flows.packets))[: max(top, 0)]
    out = []
    for i in order:
        src, sport, dst, dport = flows.endpoints(int(i))
        out.append(Flow(src, sport, dst, dport, int(flows.packets[i]), int(flows.bytes[i]),
                        int(flows.first_ns[i]), int(flows.last_ns[i])))
    return CaptureSummary(info=info, flows=tuple(out), flow_count=len(flows))
