"""The packet cadence of opaque media: inferring what was sent from what arrived.

Encrypted messenger media has no sequence numbers or timestamps, but a voice
sender emits one packet per frame interval. The interval is recovered from
regular stretches of arrivals; each arrival is then given the *slot* (frame
index) it was sent in: a gap of ``k`` whole intervals holds ``k - 1`` lost
packets, bounded by causality (no packet arrives before it is sent). Both the
metrics (inferred loss) and the diagnosis (loss pattern, relative delay from
the send clock ``slot * interval``) use this one inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Shortest credible voice packet interval; smaller inter-arrival gaps are
#: back-to-back bunching, not cadence (RFC 3551 §4.5: frame sizes >= 2.5 ms;
#: voice applications send 10-120 ms packets).
MIN_PTIME_S = 0.005
#: Default packet interval when none can be measured (RFC 3551 §4.5: 20 ms).
DEFAULT_PTIME_S = 0.020


def cadence_ptime(delta: np.ndarray) -> float:
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
#: A silence longer than this is the sender pausing (hold, a new session on
#: the same socket, or a clock jump in a corrupt capture), not lost packets:
#: no slots are invented for it beyond this span.
MAX_GAP_S = 120.0
#: Slots one stream may have at most, or this many per packet present if more:
#: per-slot arrays grow with the packets in the capture, not with its time span
#: (2^20 slots of 20 ms are 5.8 hours).
MAX_SLOTS = 1 << 20
SLOTS_PER_PACKET = 64


def _explained(delta: np.ndarray, c: float) -> float:
    """Share of gaps that are a whole multiple (>= 1) of the interval ``c``."""
    x = delta / c
    k = np.rint(x)
    return float(np.mean((k >= 1) & (np.abs(x - k) < CADENCE_TOLERANCE)))


#: Packets must grow at least this much when the interval grows for it to be a
#: re-packetisation (the codec's header overhead is shared by more audio).
MIN_GROWTH = 1.3
#: After an exact whole-multiple change of interval (no gap of the old
#: interval left: at most this share of the later gaps), a smaller resizing
#: suffices: packets growing or shrinking by :data:`EXACT_MIN_RESIZE`. A network
#: that drops packets leaves some consecutive survivors one old interval apart
#: unless it drops exactly every k-th packet, and then it resizes nothing.
#: (An adaptive codec may trade 20 ms frames at one bitrate for 40 ms frames
#: at 0.6 of it: packets 1.2 x the size; lab downshift scenarios.)
EXACT_OLD_GAPS = 0.02
EXACT_MIN_RESIZE = 1.1
#: How many more gaps (share) a finer grid must explain to be the cadence.
SUBDIVIDE_GAIN = 0.08
#: Share of gaps a finer grid must explain in all: a policer's drops leave
#: whole multiples of the sender's interval, while under queueing jitter any
#: finer grid catches more of the scattered gaps without explaining most.
MIN_FINE_EXPLAINED = 0.9
#: ... or this share, where the finer interval is never kept up for
#: :data:`FINE_RUN` gaps in a row.
STRICT_FINE_EXPLAINED = 0.95
FINE_RUN = 10
#: Share of gaps of one interval without which an interval explaining fewer
#: than :data:`STRICT_FINE_EXPLAINED` of the gaps is no sender's.
MIN_ONE_GAPS = 0.1
#: Share of the call (from its start) in which a regular window counts as
#: showing the sender's own cadence.
EARLY_WINDOWS = 0.2
#: Shortest run of regular gaps (packets) that shows a sender's cadence.
MIN_CADENCE_RUN = 25


def cadence_interval(time: np.ndarray, size: np.ndarray | None = None) -> float:
    """The packet interval of a constant-rate sender (see :func:`_cadence_level`).

    A policer that drops every other packet from the start leaves a steady
    cadence of twice the interval, broken by gaps of three intervals: when
    half or a third of the level found explains clearly more of the gaps as
    whole multiples, and nearly all of them, arrivals are not bunched (where
    jitter would make any finer grid fit) and a few gaps of the finer interval
    itself occur (the bucket's first burst), the finer interval is the sender's.
    """
    c = _cadence_level(time, size)
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
        # Gaps of one, two and three finer intervals side by side, nearly all
        # exactly on that grid (a policer dropping most beats), or the finer
        # interval kept up for a run (the bucket's first burst): anything less
        # is a coarser sender with jitter (a real Telegram relay leg at 64 ms
        # has three gaps near 21 ms, and 80 % of its gaps on a 21 ms grid).
        shown = explained >= STRICT_FINE_EXPLAINED or _longest_run(np.abs(d / fine - 1.0) < CADENCE_TOLERANCE) >= FINE_RUN
        if fine >= 2 * MIN_PTIME_S and seen and shown and explained >= max(base + SUBDIVIDE_GAIN, MIN_FINE_EXPLAINED):
            return fine
    return c


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in ``mask``."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


#: Correlation between each gap and the size of the packet ending it from
#: which a regular stretch is a queue's output, not the sender's cadence: a
#: link serialising a backlog spaces packets by their size over its rate (lab
#: tbf shaper at 90 % on encrypted media: 0.87-1.00 while its queue was busy;
#: ordinary calls: under 0.25 in every stretch).
SERIALIZED_R = 0.8


def _serialized(win: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Per row, whether the gaps ``win`` grow with the sizes ``nxt`` of the packets ending them."""
    g = win - win.mean(axis=1, keepdims=True)
    z = nxt - nxt.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(g * g, axis=1) * np.sum(z * z, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, np.sum(g * z, axis=1) / den, 0.0)
    return r >= SERIALIZED_R


def serialized_stretches(time: np.ndarray, size: np.ndarray, w: int = MIN_CADENCE_RUN) -> int:
    """Stretches of ``w`` gaps (in arrival order) spaced by the sizes of the packets ending
    them (:data:`SERIALIZED_R`): a rate-limited link emptying a backlog of this stream."""
    t = np.asarray(time, np.float64)
    m = (t.size - 1) // w
    if m < 1:
        return 0
    win = np.diff(t)[: m * w].reshape(m, w)
    return int(np.count_nonzero(_serialized(win, np.asarray(size, np.float64)[1 : m * w + 1].reshape(m, w))))


def _cadence_level(time: np.ndarray, size: np.ndarray | None = None) -> float:
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
        return cadence_ptime(delta)
    mean_gap = float((time[-1] - time[0]) / n)
    # Windows in which most gaps agree with the window's median: a sustained cadence.
    w = MIN_CADENCE_RUN
    m = n // w
    if m >= 1:
        win = delta[: m * w].reshape(m, w)
        med = np.median(win, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a window of simultaneous arrivals: median 0
            agree = np.mean(np.abs(win / med[:, None] - 1.0) < CADENCE_TOLERANCE, axis=1)
        regular = (agree >= 0.8) & (med >= MIN_PTIME_S)
        if size is not None:
            # A queue's output paced by the sizes is regular too, but not the sender.
            regular &= ~_serialized(win, np.asarray(size, np.float64)[1 : m * w + 1].reshape(m, w))
        if regular.any():
            first = int(np.argmax(regular))
            if first <= EARLY_WINDOWS * m:
                return float(med[first])
            levels = med[regular]
            support = np.sum(np.abs(levels[:, None] / levels[None, :] - 1.0) < CADENCE_TOLERANCE, axis=1)
            return float(levels[int(np.argmax(support))])
    d = delta[delta >= MIN_PTIME_S]
    fractions = [q / m for q in np.percentile(d, [5, 10, 25, 50]) for m in (1, 2, 3)] + [mean_gap]
    cands = np.array([c for c in fractions if c >= 2 * MIN_PTIME_S])
    if cands.size:
        score = np.array([_explained(d, c) for c in cands])
        # An interval the sender never kept (few gaps of one interval, many
        # off the grid) is a fraction of its real one: not a candidate.
        one = np.array([np.mean(np.abs(d / c - 1.0) < CADENCE_TOLERANCE) for c in cands])
        score[(one < MIN_ONE_GAPS) & (score < STRICT_FINE_EXPLAINED)] = 0.0
        if score.max() >= 0.6:
            return float(cands[score >= score.max() - 0.05].max())
    return mean_gap


def _cadence_slots(
    t: np.ndarray, ptime: float, quiet: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Slot index of each arrival (sorted times) of one constant-rate segment.

    Greedy: a gap of ``k`` whole intervals holds ``k - 1`` losses (a gap that
    is not near a whole multiple is queueing, not loss, unless it is
    :data:`LONG_GAP` intervals or more). Then the causal bound: no packet
    arrives before it is sent, so the losses counted up to packet ``i`` can be
    at most ``floor((t_i - t_0') / ptime) - i``, where ``t_0'`` is the earliest
    send-clock origin the arrivals allow; as losses only accumulate, the bound
    of every later packet applies too (a reverse running minimum). This undoes
    the phantom losses of a late packet followed by a bunch.

    ``quiet`` marks the packets that are comfort noise (:func:`comfort_noise`):
    a gap that begins or ends at one is a silence the sender kept with
    discontinuous transmission, not loss: its intervals pass on the send
    clock without slots.

    Returns the slot of each arrival and its send clock in intervals (the
    slot plus the silent time before it, in intervals).
    """
    n = t.size
    if n < 2:
        return np.arange(n), np.arange(n)
    delta = np.diff(t)
    x = delta / ptime
    k = np.rint(x)
    whole = np.abs(x - k) < CADENCE_TOLERANCE
    gap_loss = np.where((k >= 2) & (whole | (k >= LONG_GAP)), k - 1, 0)
    silent = np.zeros(n)
    if quiet is not None:
        # The clock runs through a silence exactly as long as it lasted: the
        # delay on its far side is the delay on its near side.
        dtx = quiet[:-1] | quiet[1:]
        silent[1:] = np.cumsum(np.where(dtx, np.maximum(x - 1.0, 0.0), 0.0))
        gap_loss[dtx] = 0
    gap_loss = np.minimum(gap_loss, int(MAX_GAP_S / ptime)).astype(np.int64)
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
            gap_loss[a] = min(max(0, int(whole_span) - (b - a)), int(MAX_GAP_S / ptime))
    greedy = np.concatenate([[0], np.cumsum(gap_loss)])
    idx = np.arange(n)
    origin = float(np.min(t - idx * ptime))
    bound = np.floor((t - origin) / ptime + CADENCE_TOLERANCE).astype(np.int64) - idx
    bound = np.minimum.accumulate(bound[::-1])[::-1]
    lost = np.minimum(greedy, np.maximum(bound - np.floor(silent).astype(np.int64), 0))
    lost = np.maximum.accumulate(lost)
    return idx + lost, idx + lost + silent




def _refine_interval(t: np.ndarray, ptime: float, size: np.ndarray | None = None) -> float:
    """The interval re-measured over runs of whole-multiple gaps.

    Over a run of consecutive gaps that are all whole multiples of the
    interval, the time spanned divided by the intervals counted has only the
    two end packets' noise in it, not every packet's. Runs whose gaps grow
    with the sizes of the packets ending them (:data:`SERIALIZED_R`) are a
    queue's output, within the tolerance of the interval but not on it: left out.
    """
    delta = np.diff(t)
    x = delta / ptime
    k = np.rint(x)
    whole = (k >= 1) & (np.abs(x - k) < CADENCE_TOLERANCE)
    edge = np.diff(np.concatenate([[0], whole.astype(np.int8), [0]]))
    a, b = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    keep = (b - a) >= 5
    if size is not None and keep.any():
        # Per run, the correlation of gap and next size from running sums.
        g, z = delta, np.asarray(size, np.float64)[1:]
        c = [np.concatenate([[0.0], np.cumsum(v)]) for v in (g, z, g * g, z * z, g * z)]
        n = (b - a).astype(np.float64)
        sg, sz, sgg, szz, sgz = (v[b] - v[a] for v in c)
        cov, vg, vz = sgz - sg * sz / n, sgg - sg * sg / n, szz - sz * sz / n
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where((vg > 0) & (vz > 0), cov / np.sqrt(vg * vz), 0.0)
        keep &= r < SERIALIZED_R
    if not keep.any():
        return ptime
    counted = np.concatenate([[0], np.cumsum(k)])
    intervals = counted[b[keep]] - counted[a[keep]]
    return float(np.sum(t[b[keep]] - t[a[keep]]) / np.sum(intervals))


def _cadence_change(t: np.ndarray, size: np.ndarray, ptime: float, quiet: np.ndarray | None = None) -> int:
    """Index where the sender re-packetised (longer frames, packets resized), or 0.

    A whole-multiple rise of the typical gap that comes with packets growing
    in proportion, or shrinking, is the sender changing its packet interval (a
    codec adaptation), not loss: a lost packet does not resize its neighbours.
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
    gap_before, size_before = float(np.median(gap_w[:kw])), float(np.median(size_w[:kw]))
    if gap_before <= 0 or size_before <= 0:
        return 0  # simultaneous or empty packets before: no interval to have changed from
    ratio = float(np.median(gap_w[kw:])) / gap_before
    grow = float(np.median(size_w[kw:])) / size_before
    if quiet is not None and float(np.mean(quiet[kw * w:])) > 0.5:
        return 0  # a silence kept with comfort noise, not longer frames
    # Longer frames in bigger packets (the same codec, more audio a packet),
    # or in smaller ones (a lower bitrate besides): either way the sender
    # changed. A network dropping packets changes neither neighbour's size.
    if ratio < 1.6:
        return 0
    lo, hi = max(0, (kw - 1) * w), min(n, (kw + 1) * w)
    resized = grow >= max(MIN_GROWTH, 0.6 * ratio) or grow <= 1.0 / MIN_GROWTH
    if not resized and (grow >= EXACT_MIN_RESIZE or grow <= 1.0 / EXACT_MIN_RESIZE):
        later = np.diff(t)[(kw + 1) * w:]  # from the window after the change's own
        resized = bool(later.size) and float(
            np.mean(np.abs(later / gap_before - 1.0) < CADENCE_TOLERANCE)) <= EXACT_OLD_GAPS
    if not resized:
        return 0
    # To the packet: the one after the last gap of the old interval near the
    # window found (no gap of the old interval follows a re-packetisation: a
    # loss after it leaves a gap of two new ones) ...
    near = np.diff(t[lo:hi])
    old = np.flatnonzero(np.abs(near / gap_before - 1.0) < CADENCE_TOLERANCE)
    if old.size:
        return lo + int(old[-1]) + 1
    # ... or the first one from which packets are sized as after the change
    # (past the geometric mean of the two levels).
    middle = np.sqrt(np.median(size_w[:kw]) * np.median(size_w[kw:]))
    after = size[lo:hi] >= middle if grow > 1.0 else size[lo:hi] <= middle
    first = np.flatnonzero(after)
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


@dataclass(frozen=True)
class CadenceSlots:
    """Slots inferred for the arrivals of one opaque stream (times sorted).

    Attributes
    ----------
    lead : int
        Leading set-up packets before the cadence settles; not slotted.
    slot : int64 (n - lead,)
        Slot (frame index) of each later packet, strictly increasing from 0.
    send : float64 (n - lead,)
        Send clock of each of those packets, seconds, zero at the first:
        slot times the interval, per constant-interval segment.
    ptime : float
        Packet interval of the first segment, seconds.
    """

    lead: int
    slot: np.ndarray
    send: np.ndarray
    ptime: float

    @property
    def n_slots(self) -> int:
        return int(self.slot[-1]) + 1 if self.slot.size else 0


#: Packets at most this fraction of the stream's median size are comfort noise
#: (silence descriptors of discontinuous transmission: RFC 3389 §3, Opus DTX,
#: a messenger's silence keep-alives), sent every few hundred ms in a silence.
COMFORT_NOISE_FRACTION = 0.5


def _voice_size(sz: np.ndarray) -> float:
    """Typical size of the stream's voice packets.

    The median, unless the sizes fall in two well-separated groups (Otsu's
    split of the log sizes, the one maximising the between-group variance)
    whose smaller group is at most :data:`COMFORT_NOISE_FRACTION` of the
    larger: then the larger group's median. A party that mostly listens
    sends more silence descriptors than voice, and the median is one of them.
    """
    x = np.sort(np.log(np.maximum(sz, 1.0)))
    n = x.size
    c = np.cumsum(x)
    k = np.arange(1, n)
    mean_lo, mean_hi = c[:-1] / k, (c[-1] - c[:-1]) / (n - k)
    between = k * (n - k) * (mean_lo - mean_hi) ** 2
    split = int(k[np.argmax(between)])
    lo, hi = float(np.exp(np.median(x[:split]))), float(np.exp(np.median(x[split:])))
    if lo <= COMFORT_NOISE_FRACTION * hi:
        return hi
    return float(np.median(sz))


def comfort_noise(size: np.ndarray) -> np.ndarray:
    """Which packets are comfort noise: far smaller than the stream's voice packets."""
    sz = np.asarray(size, np.float64)
    if sz.size < 10:
        return np.zeros(sz.size, bool)
    return sz <= COMFORT_NOISE_FRACTION * _voice_size(sz)


#: Fewest voice packets (not comfort noise) to take the interval from them alone.
MIN_VOICE_PACKETS = 50


def infer_slots(time: np.ndarray, size: np.ndarray) -> CadenceSlots:
    """Slots of an opaque stream's arrivals (``time`` sorted, seconds).

    Leading set-up packets before the cadence settles are left out
    (:func:`_leading_setup`). The packet interval comes from
    :func:`cadence_interval`, the slots from :func:`_cadence_slots`
    (whole-interval gaps are loss, bounded by causality), separately before
    and after a re-packetisation found by :func:`_cadence_change`.
    """
    t = np.asarray(time, np.float64)
    sz = np.asarray(size, np.float64)
    lead = _leading_setup(t)
    t, sz = t[lead:], sz[lead:]
    if t.size < 2:
        return CadenceSlots(lead, np.arange(t.size, dtype=np.int64), t - t[:1], DEFAULT_PTIME_S)
    quiet = comfort_noise(sz)
    cut = _cadence_change(t, sz, cadence_interval(t, sz), quiet)
    pieces = [(0, t.size)] if cut == 0 else [(0, cut), (cut, t.size)]
    slot_parts, send_parts = [], []
    base_slot, base_send = 0, 0.0
    ptimes = []
    for a, b in pieces:
        # The interval is the voice's: a silence kept with comfort noise has
        # its own, longer beat (the first regular stretch of a party that
        # starts by listening is one).
        voice = ~quiet[a:b]
        if np.count_nonzero(voice) >= MIN_VOICE_PACKETS:
            pt = cadence_interval(t[a:b][voice], sz[a:b][voice])
        else:
            pt = cadence_interval(t[a:b], sz[a:b])
        pt = _refine_interval(t[a:b], _refine_interval(t[a:b], pt, sz[a:b]), sz[a:b])
        ptimes.append(pt)
        k, clock = _cadence_slots(t[a:b], pt, quiet[a:b])
        if a > 0:  # the gap across the change counts in the new interval
            step = max(1, min(int(np.rint((t[a] - t[a - 1]) / pt)), int(MAX_GAP_S / pt) + 1))
            base_slot += step
            base_send += step * pt
        slot_parts.append(base_slot + k)
        send_parts.append(base_send + clock * pt)
        base_slot += int(k[-1])
        base_send += float(clock[-1]) * pt
    slot, send = _within_budget(np.concatenate(slot_parts).astype(np.int64), np.concatenate(send_parts),
                                max(MAX_SLOTS, SLOTS_PER_PACKET * t.size))
    return CadenceSlots(lead=lead, slot=slot, send=send, ptime=float(ptimes[0]))


def _within_budget(slot: np.ndarray, send: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Slots (and send clocks) with the longest gaps shortened so that at most ``budget`` slots exist.

    Every slot is an element of the per-slot arrays metrics and diagnose
    build, so their number must follow the packets present, not the time a
    capture spans: the gaps above a common length ``g`` (the largest one
    that fits the budget) are cut to ``g`` intervals. Gaps shorter than
    ``g`` -- every ordinary loss -- are kept as they are.
    """
    if slot.size < 2 or int(slot[-1]) + 1 <= budget:
        return slot, send
    d = np.diff(slot)
    lo, hi = 1, int(d.max())
    while lo < hi:  # the largest cap g with 1 + sum(min(d, g)) <= budget
        g = (lo + hi + 1) // 2
        if 1 + int(np.minimum(d, g).sum()) <= budget:
            lo = g
        else:
            hi = g - 1
    cut = np.concatenate([[0], np.cumsum(d - np.minimum(d, lo))])
    interval = np.divide(np.diff(send), d, out=np.zeros(d.size), where=d > 0)
    removed_s = np.concatenate([[0.0], np.cumsum((d - np.minimum(d, lo)) * interval)])
    return slot - cut, send - removed_s
