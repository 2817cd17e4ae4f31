"""The parameters one simulated call shares, drawn once before anything is sent.

Media, RTCP and signalling all need the same endpoints, ports, RTP
identifiers, codec and path; :func:`draw_call_plan` draws them from the
call's setup generator (in a fixed order, so a seed always gives the same
call) into a :class:`CallPlan` that the other parts of the simulator read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.capture.writer import ipv4_to_int
from callscope.synth import wire
from callscope.synth.codecs import DEFAULT_PTIME_MS, OPAQUE_OVERHEAD_BYTES, Codec
from callscope.synth.scenarios import A_TO_B, B_TO_A, CallContext

#: Capture start, Unix time in ns (2023-11-14 22:13:20 UTC); packets are relative to it.
EPOCH_NS = 1_700_000_000 * 1_000_000_000
ADDRESS_A = "10.0.0.1"
ADDRESS_B = "10.0.0.2"
RTP_PORT_RANGE = (16384, 32767)  # the range most softphones pick RTP ports from


@dataclass(frozen=True)
class Network:
    """The path under the scenario, per direction (A->B, B->A): true values."""

    base_delay_s: tuple[float, float]  # propagation + fixed processing
    queue_noise_s: tuple[float, float]  # mean of the exponential random queueing delay
    clock_jitter_s: tuple[float, float]  # sender's send-time error, standard deviation
    hiccups_per_s: tuple[float, float]  # sender scheduling stalls (5-40 ms each)
    background_loss: float  # independent loss on both paths, under the scenario


@dataclass(frozen=True)
class MediaFlow:
    """One direction's media: who sends to whom on which ports, its RTP identifiers and codec."""

    direction: int
    src: int
    dst: int
    sport: int
    dport: int
    ssrc: int
    seq0: int
    ts0: int
    codec: Codec
    opaque: bool

    @property
    def header(self) -> int:
        """Bytes in front of each codec frame: the RTP header, or the messenger's own."""
        return header_bytes(self.opaque)


def header_bytes(opaque: bool) -> int:
    """Bytes in front of each codec frame: RFC 3550 §5.1 fixed header, or an opaque one."""
    return OPAQUE_OVERHEAD_BYTES if opaque else wire.RTP_HEADER_LEN


@dataclass(frozen=True, eq=False)
class CallPlan:
    """What every part of one call shares.

    Per-direction arrays (index :data:`A_TO_B`, :data:`B_TO_A`) hold the path
    and sender of that direction; ``answer_s`` is when B sends its 200 OK
    (NaN for opaque calls, which have no SIP).
    """

    codec: Codec
    opaque: bool
    duration: float
    ptime_ms: int
    mean_bytes_20ms: float
    base_delay: np.ndarray
    queue_noise: np.ndarray
    clock_jitter: np.ndarray
    hiccups: np.ndarray
    background_loss: float
    flows: tuple[MediaFlow, MediaFlow]
    media_starts: tuple[float, float]
    answer_s: float

    @property
    def ips(self) -> tuple[int, int]:
        return self.flows[A_TO_B].src, self.flows[B_TO_A].src

    @property
    def ports(self) -> tuple[int, int]:
        return self.flows[A_TO_B].sport, self.flows[B_TO_A].sport

    @property
    def header(self) -> int:
        return header_bytes(self.opaque)

    @property
    def network(self) -> Network:
        return Network(
            base_delay_s=tuple(self.base_delay.tolist()), queue_noise_s=tuple(self.queue_noise.tolist()),
            clock_jitter_s=tuple(self.clock_jitter.tolist()), hiccups_per_s=tuple(self.hiccups.tolist()),
            background_loss=self.background_loss,
        )

    def context(self) -> CallContext:
        """What the scenario is told about the call when it draws its parameters."""
        return CallContext(
            duration=self.duration, media_start=min(self.media_starts), packet_rate=1000.0 / self.ptime_ms,
            mean_size=self.mean_bytes_20ms * self.ptime_ms / DEFAULT_PTIME_MS + self.header,
            codec=self.codec, opaque=self.opaque,
        )


def mean_frame_bytes(rng: np.random.Generator, codec: Codec) -> float:
    """Mean payload per 20 ms: drawn for a variable-rate codec, the codec's rate otherwise."""
    return float(rng.uniform(*codec.vbr_mean_bytes)) if codec.variable_rate else codec.bytes_per_ms * 20


def draw_call_plan(
    rng: np.random.Generator, codec: Codec, duration: float, opaque: bool, ptime_ms: int, background_loss: float
) -> CallPlan:
    """Ports, path, senders' clocks, RTP identifiers and start times of a call between A and B."""
    ips = (ipv4_to_int(ADDRESS_A), ipv4_to_int(ADDRESS_B))
    ports = tuple(int(p) for p in 2 * rng.integers(RTP_PORT_RANGE[0] // 2, RTP_PORT_RANGE[1] // 2, 2))
    base_delay = rng.uniform(0.010, 0.060, 2)
    queue_noise = rng.uniform(0.1e-3, 1.0e-3, 2)
    clock_jitter = rng.uniform(0.1e-3, 0.5e-3, 2)
    hiccups = rng.uniform(0.02, 0.2, 2)
    mean20 = mean_frame_bytes(rng, codec)
    ssrc = rng.integers(0, 1 << 32, 2, dtype=np.uint64).tolist()
    seq0 = rng.integers(0, 1 << 16, 2).tolist()
    ts0 = rng.integers(0, 1 << 32, 2, dtype=np.uint64).tolist()
    if opaque:
        answer = float("nan")
        starts = (0.05, 0.05 + base_delay[0] + float(rng.uniform(0.0, 0.05)))
    else:
        # B answers after ringing; A starts sending once the 200 OK reaches it.
        answer = base_delay[0] + float(rng.uniform(0.05, 0.2))
        starts = (answer + base_delay[1] + 0.01, answer + 0.01)
    flow_a, flow_b = (
        MediaFlow(
            direction=d, src=ips[d], dst=ips[1 - d], sport=ports[d], dport=ports[1 - d],
            ssrc=ssrc[d], seq0=seq0[d], ts0=ts0[d], codec=codec, opaque=opaque,
        )
        for d in (A_TO_B, B_TO_A)
    )
    flows = (flow_a, flow_b)
    return CallPlan(
        codec=codec, opaque=opaque, duration=duration, ptime_ms=ptime_ms, mean_bytes_20ms=mean20,
        base_delay=base_delay, queue_noise=queue_noise, clock_jitter=clock_jitter, hiccups=hiccups,
        background_loss=background_loss, flows=flows, media_starts=starts, answer_s=answer,
    )
