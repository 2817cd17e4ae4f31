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

from dataclasses import dataclass

import numpy as np

from callscope.media.stream import MediaStream
from callscope.metrics.sequence import (
    SequenceAnalysis,
    analyse_sequence,
    extend_timestamps,
)

#: Shortest credible voice packet interval; smaller inter-arrival gaps are
#: back-to-back bunching, not cadence (RFC 3551 §4.5: frame sizes >= 2.5 ms;
#: voice applications send 10-120 ms packets).
MIN_PTIME_S = 0.005
#: Default packet interval when none can be measured (RFC 3551 §4.5: 20 ms).
DEFAULT_PTIME_S = 0.020


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

    @property
    def slots(self) -> int:
        return int(self.received.size)

    @property
    def lost(self) -> int:
        return int(self.slots - np.count_nonzero(self.received))

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.slots if self.slots else 0.0

    @property
    def bunched(self) -> float:
        """Share of arrivals less than a quarter packet interval after the previous one.

        Bunching is what delay variation leaves in the arrival times; where it
        is common, gaps in an opaque stream's cadence say little about loss.
        """
        t = self.time[self.received]
        return float(np.mean(np.diff(t) < 0.25 * self.ptime)) if t.size > 1 else 0.0

    @property
    def start(self) -> float:
        return float(self.time[0]) if self.slots else 0.0

    @property
    def end(self) -> float:
        """Arrival time of the last received packet."""
        return float(self.time[self.received][-1]) if self.received.any() else 0.0


def _fill_lost_sizes(size: np.ndarray, received: np.ndarray) -> np.ndarray:
    """Sizes of lost slots copied from the last received slot before them."""
    idx = np.where(received, np.arange(received.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return size[idx]


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
    sa = sequence if sequence is not None else analyse_sequence(p.seq, p.time, p.ts)
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
    send = np.empty(n)
    if ts_ext is not None and clock > 0 and np.all(np.diff(ts_ext[np.argsort(slot)]) >= 0):
        send_recv = (ts_ext - ts_ext[np.argmin(slot)]) / clock
        order = np.argsort(slot)
        send = np.interp(np.arange(n), slot[order], send_recv[order])
    else:
        ptime = _cadence_ptime(np.diff(p.time[first]))
        send = np.arange(n) * ptime
    ptime = float(np.median(np.diff(send))) if n > 1 else DEFAULT_PTIME_S
    if not ptime > 0:
        ptime = _cadence_ptime(np.diff(p.time[first]))
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


def _cadence_ptime(delta: np.ndarray) -> float:
    """The packet interval of a cadence from its inter-arrival gaps.

    The median of the gaps near the lower quartile: robust to the long gaps
    loss makes (which would bias a plain median upwards) and to bunching.
    """
    d = delta[delta >= MIN_PTIME_S]
    if d.size == 0:
        return DEFAULT_PTIME_S
    q = np.percentile(d, 25)
    near = d[(d > 0.6 * q) & (d < 1.4 * q)]
    return float(np.median(near)) if near.size else float(q)


#: A gap within this fraction of a packet interval of a whole multiple of it
#: is that many intervals (a lost packet leaves a hole of exactly one interval).
CADENCE_TOLERANCE = 0.15
#: A gap this far off a whole multiple may still be one whose end packet was
#: jittered, if the next gap makes up for it.
JITTER_FRACTION = 0.35
#: Gaps this many intervals long are loss (or an outage) whatever their phase.
LONG_GAP = 5


def _explained(delta: np.ndarray, c: float) -> float:
    """Share of gaps that are a whole multiple (>= 1) of the interval ``c``."""
    x = delta / c
    k = np.rint(x)
    return float(np.mean((k >= 1) & (np.abs(x - k) < CADENCE_TOLERANCE)))


#: Packets must grow at least this much when the interval grows for it to be a
#: re-packetisation (the codec's header overhead is shared by more audio).
MIN_GROWTH = 1.3
#: How many more gaps (share) a finer grid must explain to be the cadence.
SUBDIVIDE_GAIN = 0.08
#: Share of gaps a finer grid must explain in all: a policer's drops leave
#: whole multiples of the sender's interval, while under queueing jitter any
#: finer grid catches more of the scattered gaps without explaining most.
MIN_FINE_EXPLAINED = 0.9
#: Share of the call (from its start) in which a regular window counts as
#: showing the sender's own cadence.
EARLY_WINDOWS = 0.2
#: Shortest run of regular gaps (packets) that shows a sender's cadence.
MIN_CADENCE_RUN = 25


def cadence_interval(time: np.ndarray) -> float:
    """The packet interval of a constant-rate sender (see :func:`_cadence_level`).

    A policer that drops every other packet from the start leaves a steady
    cadence of twice the interval, broken by gaps of three intervals: when
    half or a third of the level found explains clearly more of the gaps as
    whole multiples, and nearly all of them, arrivals are not bunched (where
    jitter would make any finer grid fit) and a few gaps of the finer interval
    itself occur (the bucket's first burst), the finer interval is the sender's.
    """
    c = _cadence_level(time)
    delta = np.diff(time)
    d = delta[delta >= MIN_PTIME_S]
    if d.size < 10 or np.mean(delta < 0.25 * c) > 0.03:
        return c
    base = _explained(d, c)
    for m in (2, 3):
        fine = c / m
        # The sender must have been seen sending at the finer interval at all.
        seen = np.count_nonzero(np.abs(d / fine - 1.0) < CADENCE_TOLERANCE) >= 3
        explained = _explained(d, fine)
        if fine >= 2 * MIN_PTIME_S and seen and explained >= max(base + SUBDIVIDE_GAIN, MIN_FINE_EXPLAINED):
            return fine
    return c


def _cadence_level(time: np.ndarray) -> float:
    """The packet interval of a constant-rate sender seen through loss, queueing and jitter.

    The sender's interval is a spacing the stream keeps up regularly: among
    the windows of :data:`MIN_CADENCE_RUN` gaps in which most gaps agree with
    their median within :data:`CADENCE_TOLERANCE`, the first one's median when
    it comes early in the call (calls start before a throttle or a queue
    does: later, a shaper's output or a queue draining is regular too), else
    the most common median. The caller refines it with
    :func:`_refine_interval`. With no such window (heavy jitter, or a drop
    every few packets) the largest of the candidate
    intervals that explains nearly as many gaps as whole multiples as the best
    one does, provided it explains most of them; otherwise the mean gap.
    """
    delta = np.diff(time)
    n = delta.size
    if n < 3:
        return _cadence_ptime(delta)
    mean_gap = float((time[-1] - time[0]) / n)
    # Windows in which most gaps agree with the window's median: a sustained cadence.
    w = MIN_CADENCE_RUN
    m = n // w
    if m >= 1:
        win = delta[: m * w].reshape(m, w)
        med = np.median(win, axis=1)
        agree = np.mean(np.abs(win / med[:, None] - 1.0) < CADENCE_TOLERANCE, axis=1)
        regular = (agree >= 0.8) & (med >= MIN_PTIME_S)
        if regular.any():
            first = int(np.argmax(regular))
            if first <= EARLY_WINDOWS * m:
                return float(med[first])
            levels = med[regular]
            support = np.sum(np.abs(levels[:, None] / levels[None, :] - 1.0) < CADENCE_TOLERANCE, axis=1)
            return float(levels[int(np.argmax(support))])
    d = delta[delta >= MIN_PTIME_S]
    cands = [q / m for q in np.percentile(d, [5, 10, 25, 50]) for m in (1, 2, 3)] + [mean_gap]
    cands = np.array([c for c in cands if c >= 2 * MIN_PTIME_S])
    if cands.size:
        score = np.array([_explained(d, c) for c in cands])
        if score.max() >= 0.6:
            return float(cands[score >= score.max() - 0.05].max())
    return mean_gap


def _cadence_slots(t: np.ndarray, ptime: float) -> np.ndarray:
    """Slot index of each arrival (sorted times) of one constant-rate segment.

    Greedy: a gap of ``k`` whole intervals holds ``k - 1`` losses (a gap that
    is not near a whole multiple is queueing, not loss, unless it is
    :data:`LONG_GAP` intervals or more). Then the causal bound: no packet
    arrives before it is sent, so the losses counted up to packet ``i`` can be
    at most ``floor((t_i - t_0') / ptime) - i``, where ``t_0'`` is the earliest
    send-clock origin the arrivals allow; as losses only accumulate, the bound
    of every later packet applies too (a reverse running minimum). This undoes
    the phantom losses of a late packet followed by a bunch.
    """
    n = t.size
    if n < 2:
        return np.arange(n)
    delta = np.diff(t)
    x = delta / ptime
    k = np.rint(x)
    whole = np.abs(x - k) < CADENCE_TOLERANCE
    gap_loss = np.where((k >= 2) & (whole | (k >= LONG_GAP)), k - 1, 0).astype(np.int64)
    # One packet late by a fraction of an interval makes two gaps that are not
    # whole but add up to a whole number: the packet between them was jittered.
    frac = np.abs(x - k)
    pair_x = x[:-1] + x[1:]
    pair = (
        ~whole[:-1] & ~whole[1:] & (frac[:-1] < JITTER_FRACTION) & (frac[1:] < JITTER_FRACTION)
        & (np.abs(pair_x - np.rint(pair_x)) < CADENCE_TOLERANCE)
    )
    pair[1:] &= ~pair[:-1]
    first = np.flatnonzero(pair)
    gap_loss[first] = np.maximum(np.rint(pair_x[first]).astype(np.int64) - 2, 0)
    gap_loss[first + 1] = 0
    # A sender that stalled flushes the frames it owes back to back; the gap
    # before the flush is not a whole multiple, but from the packet before the
    # stall to the first one back on the cadence after the flush it is, and
    # every frame of that stretch that did not arrive was lost.
    tiny = (delta < MIN_PTIME_S).astype(np.int8)
    edge = np.diff(np.concatenate([[0], tiny, [0]]))
    for u, v in zip(np.flatnonzero(edge == 1).tolist(), np.flatnonzero(edge == -1).tolist(), strict=True):
        a, b = u - 1, v + 1  # packet before the stall gap, first packet after the flush
        if a < 0 or b >= n:
            continue
        span = (t[b] - t[a]) / ptime
        whole_span = np.rint(span)
        if abs(span - whole_span) < CADENCE_TOLERANCE:
            gap_loss[a:b] = 0
            gap_loss[a] = max(0, int(whole_span) - (b - a))
    greedy = np.concatenate([[0], np.cumsum(gap_loss)])
    idx = np.arange(n)
    origin = float(np.min(t - idx * ptime))
    bound = np.floor((t - origin) / ptime + CADENCE_TOLERANCE).astype(np.int64) - idx
    bound = np.minimum.accumulate(bound[::-1])[::-1]
    lost = np.minimum(greedy, np.maximum(bound, 0))
    lost = np.maximum.accumulate(lost)
    return idx + lost


def _refine_interval(t: np.ndarray, ptime: float) -> float:
    """The interval re-measured over runs of whole-multiple gaps.

    Over a run of consecutive gaps that are all whole multiples of the
    interval, the time spanned divided by the intervals counted has only the
    two end packets' noise in it, not every packet's.
    """
    x = np.diff(t) / ptime
    k = np.rint(x)
    whole = (k >= 1) & (np.abs(x - k) < CADENCE_TOLERANCE)
    edge = np.diff(np.concatenate([[0], whole.astype(np.int8), [0]]))
    a, b = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    keep = (b - a) >= 5
    if not keep.any():
        return ptime
    counted = np.concatenate([[0], np.cumsum(k)])
    intervals = counted[b[keep]] - counted[a[keep]]
    return float(np.sum(t[b[keep]] - t[a[keep]]) / np.sum(intervals))


def _cadence_change(t: np.ndarray, size: np.ndarray, ptime: float) -> int:
    """Index where the sender re-packetised (longer frames, bigger packets), or 0.

    A whole-multiple rise of the typical gap that comes with packets growing
    in proportion is the sender changing its packet interval (a codec
    adaptation), not loss: a lost packet does not make its neighbours bigger.
    """
    n = t.size
    if n < 100:
        return 0
    w = 25
    m = n // w
    gaps = np.diff(t)[: m * w - 1]
    gap_w = np.median(np.concatenate([gaps, gaps[-1:]]).reshape(m, w), axis=1)
    size_w = np.median(size[: m * w].reshape(m, w), axis=1)
    x = np.log(np.maximum(gap_w, MIN_PTIME_S))
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    ks = np.arange(2, m - 1)
    if ks.size == 0:
        return 0
    sse = (c2[ks - 1] - c1[ks - 1] ** 2 / ks) + (c2[-1] - c2[ks - 1] - (c1[-1] - c1[ks - 1]) ** 2 / (m - ks))
    kw = int(ks[np.argmin(sse)])
    ratio = float(np.median(gap_w[kw:]) / np.median(gap_w[:kw]))
    grow = float(np.median(size_w[kw:]) / np.median(size_w[:kw]))
    if ratio < 1.6 or grow < max(MIN_GROWTH, 0.6 * ratio):
        return 0
    # To the packet: the first one, near the window found, from which packets
    # are as big as after the change (the geometric mean of the two levels).
    lo, hi = max(0, (kw - 1) * w), min(n, (kw + 1) * w)
    big = size[lo:hi] >= np.sqrt(np.median(size_w[:kw]) * np.median(size_w[kw:]))
    first = np.flatnonzero(big)
    return lo + int(first[0]) if first.size else kw * w


#: Consecutive on-cadence gaps that mark the start of steady media.
STEADY_GAPS = 5
#: At most this share of a flow's packets is taken for its set-up phase.
MAX_SETUP_SHARE = 0.2


def _leading_setup(t: np.ndarray) -> int:
    """Packets before the first :data:`STEADY_GAPS` consecutive on-cadence gaps.

    An encrypted call's flow often opens with a few sparse packets (key
    exchange, connectivity probes) before the voice cadence starts; their gaps
    are not lost voice packets.
    """
    if t.size < 4 * STEADY_GAPS:
        return 0
    ptime = cadence_interval(t)
    on = (np.abs(np.diff(t) / ptime - 1.0) < CADENCE_TOLERANCE).astype(np.int64)
    c = np.concatenate([[0], np.cumsum(on)])
    steady = np.flatnonzero(c[STEADY_GAPS:] - c[:-STEADY_GAPS] == STEADY_GAPS)
    if steady.size == 0 or steady[0] > MAX_SETUP_SHARE * t.size:
        return 0
    return int(steady[0])


def opaque_trace(stream: MediaStream, capture_end: float) -> Trace:
    """Slots of an opaque stream inferred from its cadence.

    Leading set-up packets before the cadence settles are left out
    (:func:`_leading_setup`). The packet interval comes from :func:`cadence_interval`, the slots from
    :func:`_cadence_slots` (whole-interval gaps are loss, bounded by
    causality), separately before and after a re-packetisation found by
    :func:`_cadence_change`. The send clock is the slot index times the
    interval, so the relative delay still shows a queue building up.
    """
    p = stream.packets
    order = np.argsort(p.time, kind="stable")
    t = p.time[order]
    sz = p.size[order].astype(np.float64)
    lead = _leading_setup(t)
    t, sz = t[lead:], sz[lead:]
    if t.size < 2:
        return Trace(stream.id, True, DEFAULT_PTIME_S, t, t - t[:1], np.ones(t.size, bool),
                     sz, np.zeros(t.size), capture_end)
    cut = _cadence_change(t, sz, cadence_interval(t))
    pieces = [(0, t.size)] if cut == 0 else [(0, cut), (cut, t.size)]
    slot_parts, send_parts = [], []
    base_slot, base_send = 0, 0.0
    ptimes = []
    for a, b in pieces:
        pt = cadence_interval(t[a:b])
        pt = _refine_interval(t[a:b], _refine_interval(t[a:b], pt))
        ptimes.append(pt)
        k = _cadence_slots(t[a:b], pt)
        if a > 0:  # the gap across the change counts in the new interval
            base_slot += max(1, int(np.rint((t[a] - t[a - 1]) / pt)))
            base_send += max(1, int(np.rint((t[a] - t[a - 1]) / pt))) * pt
        slot_parts.append(base_slot + k)
        send_parts.append(base_send + k * pt)
        base_slot += int(k[-1])
        base_send += float(k[-1]) * pt
    slot = np.concatenate(slot_parts)
    n = int(slot[-1]) + 1
    received = np.zeros(n, bool)
    received[slot] = True
    time = np.interp(np.arange(n), slot, t)
    send = np.interp(np.arange(n), slot, np.concatenate(send_parts))
    size = np.zeros(n)
    size[slot] = sz
    size = _fill_lost_sizes(size, received)
    return Trace(
        stream_id=stream.id,
        opaque=True,
        ptime=float(ptimes[0]),
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
        return rtp_trace(stream, capture_end, sequence)
    return opaque_trace(stream, capture_end)
