"""Both endpoints' RTCP: when reports go out, whether they arrive, and what they say.

Each endpoint sends a compound packet (SR + SDES, RFC 3550 §6.4.1 / §6.5)
at randomised intervals (§6.3.5); its reception report describes what it
received of the peer's RTP up to that moment (fraction and cumulative lost,
extended highest sequence number, interarrival jitter, LSR / DLSR), so the
reports carry the impairment as the receiver saw it. RTCP travels the same
path as the media and shares its fate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from callscope.capture.writer import int_to_ipv4
from callscope.synth import wire
from callscope.synth.media import MediaRun
from callscope.synth.packets import Kind, Part, StreamInfo
from callscope.synth.plan import EPOCH_NS, CallPlan, MediaFlow
from callscope.synth.scenarios import A_TO_B, B_TO_A, DIRECTIONS, DropReason, Outcome
from callscope.synth.sender import MediaSchedule

RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2: recommended minimum interval


@dataclass(frozen=True)
class Receiver:
    """What one endpoint has received of its peer's RTP, in arrival order."""

    arrival: np.ndarray
    ext_seq: np.ndarray
    highest: np.ndarray  # running maximum of ext_seq
    jitter: np.ndarray  # RFC 3550 A.8 estimate after each arrival, timestamp units

    @classmethod
    def of(cls, media: MediaRun, clock: int) -> Receiver:
        """The receiving end of ``media`` (RTP, with a timestamp clock of ``clock`` Hz)."""
        arrival = media.arrival
        assert media.part.seq is not None and media.part.rtp_ts is not None, "RTP media has sequence numbers"
        ok = ~np.isnan(arrival)
        order = np.argsort(arrival[ok], kind="stable")
        arr = arrival[ok][order]
        seq = media.part.seq[ok][order]
        # RFC 3550 §6.4.1 / A.8: D(i-1,i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in
        # timestamp units, J_i = J_{i-1} + (|D| - J_{i-1}) / 16 — a first-order IIR.
        transit = arr * clock - media.part.rtp_ts[ok][order]
        d = np.abs(np.diff(transit))
        jitter = np.concatenate([[0.0], lfilter([1 / 16], [1, -15 / 16], d)]) if arr.size else arr
        highest = np.maximum.accumulate(seq) if seq.size else seq
        return cls(arr, seq, highest, jitter)


@dataclass(frozen=True)
class Reporter:
    """One endpoint as an RTCP sender: its own media, and when its reports left and arrived."""

    flow: MediaFlow
    sched: MediaSchedule
    media_start: float
    times: np.ndarray
    arrival: np.ndarray  # NaN if lost
    drop: np.ndarray

    @property
    def sr_ntp(self) -> np.ndarray:
        """NTP timestamp of each of its SRs (RFC 3550 §6.4.1)."""
        epoch_s = EPOCH_NS / 1e9
        return np.array([wire.ntp_timestamp(epoch_s + x) for x in self.times.tolist()], np.uint64)


def report_times(rng: np.random.Generator, start: float, duration: float) -> np.ndarray:
    """RFC 3550 §6.3.5 / §6.3.6: the interval is randomised over [0.5, 1.5] x the
    deterministic one, and the first report comes after half an interval."""
    gaps = RTCP_INTERVAL_S * rng.uniform(0.5, 1.5, int(duration / (0.5 * RTCP_INTERVAL_S)) + 2)
    gaps[0] *= 0.5
    t = start + np.cumsum(gaps)
    return t[t < duration]


def fate_shared(
    times: np.ndarray, sched: MediaSchedule, outcome: Outcome, rng: np.random.Generator, base: float, noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival and drop reason of RTCP packets sent at ``times``.

    RTCP shares the fate of the RTP packet sent next on the same path: dropped
    if it was (the same blackhole, empty bucket or full queue), otherwise
    delayed as much by the impairing element.
    """
    if len(sched) == 0:
        return np.full(times.size, np.nan), np.full(times.size, DropReason.BLOCKED, np.uint8)
    k = np.minimum(np.searchsorted(sched.time, times), len(sched) - 1)
    held = outcome.depart[k] - sched.time[k]
    arrival = times + held + base + rng.exponential(noise, times.size)
    return arrival, outcome.reason[k].copy()


class _ReceptionReports:
    """RFC 3550 reception reports about one peer, in send order: each interval's
    loss counts from the previous report's (A.3), LSR / DLSR from the peer's last SR heard."""

    def __init__(self, peer: Reporter, received: Receiver) -> None:
        self.peer = peer
        self.received = received
        self.sr_arrival, self.sr_ntp = peer.arrival, peer.sr_ntp
        self.expected_prior = self.received_prior = 0

    def at(self, t: float) -> tuple[wire.ReportBlock, ...]:
        """The report block of a report sent at ``t`` (none before the first RTP packet arrives)."""
        r = self.received
        m = int(np.searchsorted(r.arrival, t, side="right"))
        if not m:
            return ()
        # RFC 3550 A.3: expected from the extended highest and the base sequence numbers.
        highest = int(r.highest[m - 1])
        expected = highest - int(r.ext_seq[0]) + 1
        exp_int = expected - self.expected_prior
        lost_int = exp_int - (m - self.received_prior)
        fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        self.expected_prior, self.received_prior = expected, m
        lsr, dlsr = self._last_sr(t)
        return (
            wire.ReportBlock(
                ssrc=self.peer.flow.ssrc, fraction_lost=min(fraction, 255), cumulative_lost=expected - m,
                highest_seq=highest, jitter=int(r.jitter[m - 1]), lsr=lsr, dlsr=dlsr,
            ),
        )

    def _last_sr(self, t: float) -> tuple[int, int]:
        """LSR and DLSR (RFC 3550 §6.4.1) of the peer's latest SR to have arrived by ``t``."""
        heard = np.flatnonzero(self.sr_arrival <= t)
        if not heard.size:
            return 0, 0
        j = heard[np.argmax(self.sr_arrival[heard])]
        lsr = (int(self.sr_ntp[j]) >> 16) & 0xFFFFFFFF  # RFC 3550 §6.4.1: middle 32 bits
        return lsr, int((t - self.sr_arrival[j]) * 65536)


def rtcp_part(own: Reporter, peer: Reporter, received: Receiver) -> Part:
    """One endpoint's RTCP compound packets (SR + SDES) with its reception report of ``peer``."""
    flow = own.flow
    clock_rate = flow.codec.clock_rate
    cname = f"user@{int_to_ipv4(flow.src)}"
    payload_cum = np.cumsum(own.sched.payload)
    reports = _ReceptionReports(peer, received)
    epoch_s = EPOCH_NS / 1e9
    packets = []
    for t in own.times.tolist():
        count = int(np.searchsorted(own.sched.time, t, side="right"))
        info = wire.SenderInfo(
            ntp=wire.ntp_timestamp(epoch_s + t),
            rtp_ts=flow.ts0 + int(round((t - own.media_start) * clock_rate)),
            packet_count=count,
            octet_count=int(payload_cum[count - 1]) if count else 0,
        )
        packets.append(wire.rtcp_sender_report(flow.ssrc, info, reports.at(t), cname))
    size = np.array([len(p) for p in packets], np.int32)
    data = np.frombuffer(b"".join(packets), np.uint8).copy()
    d = flow.direction
    return Part(
        kind=Kind.RTCP, stream=2 + d, direction=d, send_time=own.times, arrival_time=own.arrival,
        size=size, drop=own.drop, src=flow.src, dst=flow.dst, sport=flow.sport + 1,
        dport=flow.dport + 1, data=data,
    )


def rtcp_parts(
    rng: np.random.Generator, plan: CallPlan, media: list[MediaRun], impaired: tuple[int, ...]
) -> tuple[list[Part], list[StreamInfo]]:
    """Both endpoints' RTCP: times, fate, then contents from what each received."""
    reporters = []
    for d in (A_TO_B, B_TO_A):
        t = report_times(rng, plan.media_starts[d], plan.duration)
        arrival, drop = fate_shared(
            t, media[d].sched, media[d].outcome, rng, plan.base_delay[d], plan.queue_noise[d]
        )
        reporters.append(Reporter(plan.flows[d], media[d].sched, plan.media_starts[d], t, arrival, drop))
    received = [Receiver.of(media[d], plan.codec.clock_rate) for d in (A_TO_B, B_TO_A)]
    parts, streams = [], []
    for d in (A_TO_B, B_TO_A):
        peer = 1 - d
        part = rtcp_part(reporters[d], reporters[peer], received[peer])
        parts.append(part)
        flow = plan.flows[d]
        streams.append(StreamInfo(
            index=2 + d, kind="rtcp", direction=DIRECTIONS[d], src=int_to_ipv4(flow.src),
            src_port=flow.sport + 1, dst=int_to_ipv4(flow.dst), dst_port=flow.dport + 1,
            ssrc=int(flow.ssrc), payload_type=None, clock_rate=None, impaired=d in impaired,
            sent=len(part), delivered=int(np.count_nonzero(~np.isnan(reporters[d].arrival))),
        ))
    return parts, streams
