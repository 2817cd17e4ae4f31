"""One stream as a row of packet *slots*: what was sent, what arrived, when.

Every detector works on the same view: one slot per packet the sender sent
(as far as the capture can tell), a received mask, when each packet arrived
or would have arrived, its size and its relative one-way delay. For RTP the
slots are the extended sequence numbers of the expected range (RFC 3550
§6.4.1, Appendix A.3) and the send clock is the RTP timestamp. Opaque media
has neither, so the slots are inferred from the cadence: a gap of ``k``
packet intervals between two arrivals holds ``k - 1`` lost packets, and the
send clock is the slot index times the packet interval. Loss inferred that way
is less certain, which the detectors reflect in their confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from callscope._numerics.filters import running_median
from callscope._numerics.quantile import median_sorted
from callscope.media.stream import MediaStream
from callscope.metrics.cadence import (
    DEFAULT_PTIME_S,
    cadence_ptime,
    infer_slots,
)
from callscope.metrics.loss_structure import Runs, loss_runs
from callscope.metrics.sequence import (
    SequenceAnalysis,
    analyze_sequence,
    extend_timestamps,
)

#: IPv4 (20) and UDP (8) header bytes; IPv6 has 40 instead of 20.
IPV4_UDP_HEADERS = 28.0
IPV6_UDP_HEADERS = 48.0
#: Arrivals closer than this fraction of the packet interval are bunched.
BUNCHED = 0.25
#: Share of RTP packets sharing their frame's timestamp from which a stream
#: is video: voice has one packet per timestamp (bar the odd retransmission or
#: DTMF end-packet triple, RFC 4733 §2.5.1.4).
VIDEO_SHARED_TIMESTAMPS = 0.2
#: Window of the running median that smooths relative delay before ramps and
#: queue episodes are sought in it (s): ten packets at 20 ms.
DELAY_SMOOTHING_S = 0.2


@dataclass(frozen=True)
class Trace:
    """Slots of one stream (one per packet sent), in send order.

    Attributes
    ----------
    stream_id : str
    opaque : bool
        True when slots and loss were inferred from the cadence (no RTP header).
    ptime : float
        Nominal packet interval, seconds.
    time : float64 (n_slots,)
        Arrival time of each slot's first copy, or for a lost slot when it
        would have arrived (interpolated between received neighbours); seconds
        since the capture's first frame.
    send : float64 (n_slots,)
        Send clock of each slot in seconds (RTP timestamp / clock rate, or the
        slot index times ``ptime`` for opaque media), zero at the first slot.
    received : bool (n_slots,)
    size : float64 (n_slots,)
        UDP payload bytes; a lost slot takes the size of the last received one.
    delay : float64 (n_slots,)
        Relative one-way delay ``time - send``, minimum removed, seconds; NaN
        where lost.
    capture_end : float
        Time of the capture's last frame (seconds since the first).
    header_bytes : float
        IP and UDP header bytes around each payload (28 for IPv4, 48 for
        IPv6): what a policer or shaper counts besides ``size`` (RFC 791,
        RFC 8200, RFC 768).
    lost_sizes_known : bool
        True when ``size`` of lost slots is what was sent (both ends
        captured), not a neighbour's stand-in.
    """

    stream_id: str
    opaque: bool
    ptime: float
    time: np.ndarray
    send: np.ndarray
    received: np.ndarray
    size: np.ndarray
    delay: np.ndarray
    capture_end: float
    header_bytes: float = IPV4_UDP_HEADERS
    lost_sizes_known: bool = False

    @property
    def slots(self) -> int:
        return int(self.received.size)

    # Derived views, computed once on first use and shared by every detector
    # (the arrays above are never modified after construction).

    @cached_property
    def received_count(self) -> int:
        """Slots received."""
        return int(np.count_nonzero(self.received))

    @property
    def lost(self) -> int:
        return self.slots - self.received_count

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.slots if self.slots else 0.0

    @cached_property
    def received_time(self) -> np.ndarray:
        """``time`` of the received slots."""
        return self.time[self.received]

    @cached_property
    def received_send(self) -> np.ndarray:
        """``send`` of the received slots."""
        return self.send[self.received]

    @cached_property
    def received_size(self) -> np.ndarray:
        """``size`` of the received slots."""
        return self.size[self.received]

    @cached_property
    def received_delay(self) -> np.ndarray:
        """``delay`` of the received slots."""
        return self.delay[self.received]

    @cached_property
    def sorted_delay(self) -> np.ndarray:
        """:attr:`received_delay` sorted, for its percentiles (:mod:`callscope._numerics.quantile`)."""
        return np.sort(self.received_delay)

    @cached_property
    def smoothed_delay(self) -> np.ndarray:
        """:attr:`received_delay` through a running median of about :data:`DELAY_SMOOTHING_S`
        (at least 3 samples, an odd number); unsmoothed when shorter than that."""
        d = self.received_delay
        k = max(3, int(round(DELAY_SMOOTHING_S / self.ptime)) | 1)
        return running_median(d, k) if d.size >= k else d

    @cached_property
    def loss_runs(self) -> Runs:
        """Runs of consecutive lost slots (:func:`callscope.metrics.loss_structure.loss_runs`)."""
        return loss_runs(self.received)

    @cached_property
    def frame_first(self) -> np.ndarray:
        """Mask of the received slots that start a frame: whose send clock
        differs from the previous received slot's. All of them for voice; on
        video, the first packet of each picture (RFC 3550 §5.1: the packets of
        one frame share its timestamp)."""
        send = self.received_send
        first = np.ones(send.size, bool)
        first[1:] = send[1:] != send[:-1]
        return first

    @cached_property
    def video(self) -> bool:
        """Several packets per timestamp, sent back to back: video frames
        (:data:`VIDEO_SHARED_TIMESTAMPS` of the slots share their frame's)."""
        n = self.received_count
        return bool(not self.opaque and n > 1 and 1.0 - np.count_nonzero(self.frame_first) / n >= VIDEO_SHARED_TIMESTAMPS)

    @cached_property
    def frame_interval(self) -> float:
        """The nominal spacing of frames: the packet interval for voice, the
        picture interval for video (median step of the send clock between frames)."""
        if not self.video:
            return self.ptime
        steps = np.diff(self.received_send[self.frame_first])
        steps = steps[steps > 0]
        return median_sorted(np.sort(steps)) if steps.size else self.ptime

    @cached_property
    def bunched(self) -> float:
        """Share of frames arriving less than a quarter interval after the previous one.

        Bunching is what delay variation leaves in the arrival times; where it
        is common, gaps in an opaque stream's cadence say little about loss.
        Video is judged by its frames' first packets: a frame's own packets
        arrive back to back by design.
        """
        t = self.received_time[self.frame_first] if self.video else self.received_time
        return float(np.mean(np.diff(t) < BUNCHED * self.frame_interval)) if t.size > 1 else 0.0

    @property
    def start(self) -> float:
        return float(self.time[0]) if self.slots else 0.0

    @cached_property
    def end(self) -> float:
        """Arrival time of the last received packet."""
        return float(self.received_time[-1]) if self.received_count else 0.0


@dataclass(frozen=True)
class TraceSummary:
    """The few numbers of a :class:`Trace` that the call-level detectors use.

    A capture of thousands of streams keeps one of these per stream instead
    of every stream's slot arrays while its calls are judged.

    Attributes
    ----------
    stream_id, opaque, ptime, start, end : as :class:`Trace`
    slots : int
        Packets sent (slots of the trace).
    received_count : int
        Slots received.
    received_bytes : float
        UDP payload bytes received (the received slots' sizes summed).
    header_bytes : float
        As :attr:`Trace.header_bytes`.
    curve_time, curve_bytes : float64 arrays, optional
        Bytes received up to each of at most :data:`CURVE_POINTS` + 1 arrival
        times, first to last: how many bytes had passed by any instant (a
        cut-off's B) without keeping every packet.
    """

    stream_id: str
    opaque: bool
    ptime: float
    start: float
    end: float
    slots: int
    received_count: int
    received_bytes: float
    header_bytes: float = IPV4_UDP_HEADERS
    curve_time: np.ndarray | None = field(default=None, compare=False, repr=False)
    curve_bytes: np.ndarray | None = field(default=None, compare=False, repr=False)

    def bytes_before(self, t: float) -> float:
        """Bytes received before ``t`` (interpolated between the curve's points)."""
        if self.curve_time is None or self.curve_bytes is None or self.curve_time.size == 0:
            span = self.end - self.start
            share = (t - self.start) / span if span > 0 else float(t >= self.end)
            return self.received_bytes * min(1.0, max(0.0, share))
        return float(np.interp(t, self.curve_time, self.curve_bytes, left=0.0))

    @property
    def loss_fraction(self) -> float:
        """As :attr:`Trace.loss_fraction`."""
        return (self.slots - self.received_count) / self.slots if self.slots else 0.0

    @property
    def delivered(self) -> float:
        """Share of the slots received."""
        return self.received_count / self.slots if self.slots else float("nan")


#: Points of a summary's cumulative byte curve.
CURVE_POINTS = 256


def summarise(trace: Trace) -> TraceSummary:
    """The :class:`TraceSummary` of ``trace``."""
    t = trace.received_time
    cum = np.cumsum(trace.received_size)
    at = np.unique(np.linspace(0, t.size - 1, min(t.size, CURVE_POINTS + 1)).astype(np.int64))
    return TraceSummary(
        stream_id=trace.stream_id,
        opaque=trace.opaque,
        ptime=trace.ptime,
        start=trace.start,
        end=trace.end,
        slots=trace.slots,
        received_count=trace.received_count,
        received_bytes=float(cum[-1]) if cum.size else 0.0,
        header_bytes=trace.header_bytes,
        curve_time=t[at],
        curve_bytes=cum[at],
    )


def _fill_lost_sizes(size: np.ndarray, received: np.ndarray) -> np.ndarray:
    """Sizes of lost slots copied from the last received slot before them (the
    first slot's when none is), in place; loss being rare, only the lost slots
    are visited: the slot before each run of them is the last one received."""
    lost = np.flatnonzero(~received)
    if lost.size:
        run_start = np.where(np.diff(lost, prepend=-2) > 1, lost, 0)
        np.maximum.accumulate(run_start, out=run_start)
        size[lost] = size[np.maximum(run_start - 1, 0)]
    return size


def _relative_delay(time: np.ndarray, send: np.ndarray, received: np.ndarray) -> np.ndarray:
    d = np.where(received, time - send, np.nan)
    if received.any():
        d -= np.nanmin(d)
    return d


def rtp_trace(
    stream: MediaStream, capture_end: float, sequence: SequenceAnalysis | None = None
) -> Trace:
    """Slots of an RTP stream from its sequence accounting and timestamps.

    Parameters
    ----------
    stream : MediaStream
        An RTP stream (``packets.seq`` and ``packets.ts`` present).
    capture_end : float
        Time of the capture's last frame, seconds since its first.
    sequence : SequenceAnalysis, optional
        The metrics stage's accounting; computed here when not given.

    References
    ----------
    RFC 3550 §6.4.1 and Appendix A.3 (expected range of extended sequence
    numbers), §5.1 (timestamp: sampling instant in clock units).
    """
    p = stream.packets
    sa = sequence
    if sa is None:
        if p.seq is None:
            raise ValueError(f"stream {stream.id} has no sequence numbers: not an RTP stream")
        sa = analyze_sequence(p.seq, p.time, p.ts)
    first = ~(sa.duplicate | sa.stray)
    slot = sa.ext_seq[first] - sa.base
    n = sa.expected_range
    received = sa.received.copy()

    time = np.empty(n)
    time[slot] = p.time[first]
    time[~received] = sa.lost_time
    size = np.zeros(n)
    size[slot] = p.size[first]
    size = _fill_lost_sizes(size, received)

    clock = _clock_rate(stream, sa, first)
    ts_ext = extend_timestamps(p.ts[first]).astype(np.float64) if p.ts is not None else None
    # Slots are distinct, so any sort gives the same order; a stable one is
    # fastest on numbers that are already nearly in order.
    order = np.argsort(slot, kind="stable")
    if ts_ext is not None and clock > 0 and np.all(np.diff(ts_ext[order]) >= 0):
        send_recv = (ts_ext - ts_ext[np.argmin(slot)]) / clock
        # Interpolated for the lost slots only: at its own sample points
        # np.interp returns the samples themselves.
        send: np.ndarray = np.empty(n)
        send[slot] = send_recv
        lost = np.flatnonzero(~received)
        send[lost] = np.interp(lost, slot[order], send_recv[order])
    else:
        ptime = cadence_ptime(np.diff(p.time[first]))
        send = np.arange(n) * ptime
    ptime = median_sorted(np.sort(np.diff(send))) if n > 1 else DEFAULT_PTIME_S
    if not ptime > 0:
        ptime = cadence_ptime(np.diff(p.time[first]))
    return Trace(
        stream_id=stream.id,
        opaque=False,
        ptime=ptime,
        time=time,
        send=send,
        received=received,
        size=size,
        delay=_relative_delay(time, send, received),
        capture_end=capture_end,
    )


def _clock_rate(stream: MediaStream, sa: SequenceAnalysis, first: np.ndarray) -> float:
    """The stream's RTP clock rate, or one inferred from timestamp vs arrival."""
    if stream.clock_rate:
        return float(stream.clock_rate)
    p = stream.packets
    if p.ts is None or np.count_nonzero(first) < 3:
        return 0.0
    ts = extend_timestamps(p.ts[first]).astype(np.float64)
    t = p.time[first]
    span = t[-1] - t[0]
    return float((ts[-1] - ts[0]) / span) if span > 0 else 0.0


def opaque_trace(stream: MediaStream, capture_end: float) -> Trace:
    """Slots of an opaque stream inferred from its cadence (:func:`callscope.metrics.cadence.infer_slots`).

    The send clock is the slot index times the interval, so the relative
    delay still shows a queue building up.
    """
    p = stream.packets
    order = np.argsort(p.time, kind="stable")
    cs = infer_slots(p.time[order], p.size[order])
    t = p.time[order][cs.lead:]
    sz = p.size[order][cs.lead:].astype(np.float64)
    if t.size < 2:
        return Trace(stream.id, True, DEFAULT_PTIME_S, t, t - t[:1], np.ones(t.size, bool),
                     sz, np.zeros(t.size), capture_end)
    slot = cs.slot
    n = cs.n_slots
    received = np.zeros(n, bool)
    received[slot] = True
    time = np.interp(np.arange(n), slot, t)
    send = np.interp(np.arange(n), slot, cs.send)
    size = np.zeros(n)
    size[slot] = sz
    size = _fill_lost_sizes(size, received)
    return Trace(
        stream_id=stream.id,
        opaque=True,
        ptime=cs.ptime,
        time=time,
        send=send,
        received=received,
        size=size,
        delay=_relative_delay(time, send, received),
        capture_end=capture_end,
    )


def build_trace(
    stream: MediaStream, capture_end: float, sequence: SequenceAnalysis | None = None
) -> Trace:
    """The slot view of any stream: RTP by sequence number, opaque by cadence."""
    if stream.kind == "rtp" and stream.packets.seq is not None:
        trace = rtp_trace(stream, capture_end, sequence)
    else:
        trace = opaque_trace(stream, capture_end)
    if ":" in stream.src:
        trace = replace(trace, header_bytes=IPV6_UDP_HEADERS)
    return trace
