"""One-way delay features: the queue signatures of congestion and shaping.

Relative one-way delay (arrival time minus send clock, minimum removed) is
the only view of queueing a one-point capture gives; its *changes* are exact
even though its absolute value is unknown. A queue that overflows shows delay
rising before the losses (congestion); a shaper shows a sustained linear ramp
at slope (s - r) / r to a plateau (its buffer full), then tail drops; a
policer drops without any delay change (Flach et al., SIGCOMM 2016 §3, which
uses RTT inflation the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope._numerics.peaks import find_peaks
from callscope._numerics.quantile import median_sorted, percentile_sorted
from callscope.diagnose.trace import Trace

#: Window before a loss in which a rising queue would show (seconds).
PRE_LOSS_WINDOW_S = 0.5
def delay_spread(trace: Trace) -> float:
    """Spread of the received slots' delay: 95th minus 5th percentile (s), 0 when none arrived."""
    s = trace.sorted_delay
    return percentile_sorted(s, 95) - percentile_sorted(s, 5) if s.size else 0.0


@dataclass(frozen=True)
class PreLossRise:
    """How far delay stood above its typical level just before losses.

    ``rise_s`` is the mean delay of received packets in the
    :data:`PRE_LOSS_WINDOW_S` before each loss event minus the median delay of
    the whole stream; ``z`` divides it by the delay's interquartile spread
    (robust scale), ``fraction`` is the share of loss events preceded by a
    delay above the stream's 75th percentile.
    """

    rise_s: float
    z: float
    fraction: float
    events: int


def pre_loss_rise(trace: Trace, event_slots: np.ndarray) -> PreLossRise:
    """Delay just before each loss event against the stream's typical delay."""
    t = trace.received_time
    d = trace.received_delay
    if event_slots.size == 0 or d.size < 10:
        return PreLossRise(0.0, 0.0, 0.0, 0)
    s = trace.sorted_delay
    med = median_sorted(s)
    q25, q75 = percentile_sorted(s, 25), percentile_sorted(s, 75)
    scale = max(float(q75 - q25), 1e-4)
    ev_t = trace.time[event_slots]
    lo = np.searchsorted(t, ev_t - PRE_LOSS_WINDOW_S)
    hi = np.searchsorted(t, ev_t)
    csum = np.concatenate([[0.0], np.cumsum(d)])
    count = hi - lo
    ok = count > 0
    if not ok.any():
        return PreLossRise(0.0, 0.0, 0.0, 0)
    mean_before = (csum[hi[ok]] - csum[lo[ok]]) / count[ok]
    rise = float(np.mean(mean_before) - med)
    frac = float(np.mean(mean_before > q75))
    return PreLossRise(rise, rise / scale, frac, int(ok.sum()))


#: Delay spread (5th to 99th percentile, s) under which a stream has no queue
#: to speak of: timer and scheduling noise, not a backlog. Lab random and
#: bursty loss without a bottleneck: 0.1-18 ms; kernel tbf queues behind
#: cross traffic: 47-358 ms.
CEILING_MIN_SPREAD_S = 0.020


@dataclass(frozen=True)
class LossCeiling:
    """Whether losses came while the delay stood at its ceiling (a full queue).

    A drop-tail queue drops only when full, so the packets received around
    each loss event sat behind the longest backlog; a loss independent of the
    queue falls between packets of any delay. ``high`` counts the loss events
    where the longer wait of the packets just before and just after was in
    the upper half of the delay range (5th to 99th percentile), ``events``
    all of them, ``share`` the fraction of consecutive received pairs whose
    longer wait is in that upper half (what chance would give), and
    ``chance_log10`` how unlikely ``high`` or more of ``events`` are by luck:
    ``-log10`` of the binomial tail.
    """

    high: int
    events: int
    share: float
    chance_log10: float
    spread_s: float

    @property
    def fraction(self) -> float:
        return self.high / self.events if self.events else 0.0


def binomial_tail_log10(k: int, n: int, p: float) -> float:
    """``-log10 P(X >= k)`` for ``X ~ Binomial(n, p)``, summed exactly in log space.

    The binomial coefficients come from one running sum of logs
    (``log C(n, i+1) = log C(n, i) + log(n - i) - log(i + 1)``); a z score
    would understate the tail for a handful of events.
    """
    if n <= 0 or k <= 0:
        return 0.0
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    i = np.arange(n + 1)
    steps = np.log(np.arange(n, 0, -1, dtype=np.float64)) - np.log(np.arange(1, n + 1, dtype=np.float64))
    log_comb = np.concatenate([[0.0], np.cumsum(steps)])
    terms = (log_comb + i * np.log(p) + (n - i) * np.log1p(-p))[k:]
    top = float(terms.max())
    return -(top + float(np.log(np.exp(terms - top).sum()))) / float(np.log(10.0))


def loss_ceiling(trace: Trace) -> LossCeiling | None:
    """:class:`LossCeiling` of the trace's loss events, None without a queue or losses to test."""
    runs = trace.loss_runs
    d = trace.received_delay
    if runs.count < 3 or d.size < 10:
        return None
    s = trace.sorted_delay
    lo, hi = percentile_sorted(s, 5), percentile_sorted(s, 99)
    spread = float(hi - lo)
    if spread < CEILING_MIN_SPREAD_S:
        return None
    threshold = lo + 0.5 * spread
    received = np.flatnonzero(trace.received)
    before = np.searchsorted(received, runs.start) - 1
    before = before[(before >= 0) & (before + 1 < received.size)]
    if before.size == 0:
        return None
    # The longer wait of the two packets around the loss: with a small queue
    # filled by a burst of other traffic between two voice packets, only the
    # one after the drop shows it. Chance is the same maximum over every pair
    # of consecutive received packets.
    around = np.maximum(trace.delay[received[before]], trace.delay[received[before + 1]])
    high = int(np.count_nonzero(around >= threshold))
    share = float(np.count_nonzero(np.maximum(d[:-1], d[1:]) >= threshold)) / (d.size - 1)
    n = int(before.size)
    return LossCeiling(high, n, share, binomial_tail_log10(high, n, share), spread)


#: Windows (s) whose delay minima trace the floor of an opaque stream's delay.
FLOOR_WINDOW_S = 2.0
#: A floor step counts as lost packets when within this many intervals of a
#: whole number (a changed path delay lands anywhere between).
FLOOR_WHOLE_TOLERANCE = 0.15
#: Largest drift of the floor (intervals per window) that is the interval's
#: estimation error; more, and the cadence was inferred wrong (lab s2 opaque
#: tbf shaper: 1.03; lossless and congested opaque queues: under 0.02).
FLOOR_MAX_DRIFT = 0.1


def hidden_loss(trace: Trace) -> float:
    """Packets an opaque stream lost that its cadence gaps did not show, in intervals (0 if none seen).

    Slots inferred from cadence gaps miss drops inside a queue's swings (the
    gaps there are not whole intervals). The send clock then runs one
    interval short per missed drop, so once the queue has drained the delay's
    floor stands higher by exactly that many intervals. The floor is the
    minimum delay per :data:`FLOOR_WINDOW_S` window, its drift (the interval's
    estimation error) the median step between windows; the step from the
    first windows' floor to the last ones' counts only if both are flat and
    it is a whole number of intervals (:data:`FLOOR_WHOLE_TOLERANCE`). RTP streams count
    their losses by sequence number: 0.
    """
    if not trace.opaque:
        return 0.0
    t = trace.received_time
    d = trace.received_delay / trace.ptime
    if t.size < 100:
        return 0.0
    # One entry per window that holds packets (a hostile capture's clock may
    # jump years ahead, or back): the windows in time order, empty ones skipped.
    windows, which = np.unique(((t - t[0]) // FLOOR_WINDOW_S).astype(np.int64), return_inverse=True)
    floor = np.full(windows.size, np.inf)
    np.minimum.at(floor, which, d)
    if floor.size < 6:
        return 0.0
    drift = float(np.median(np.diff(floor)))
    if abs(drift) > FLOOR_MAX_DRIFT:
        return 0.0  # the cadence itself is off: the floor is no reference
    floor = floor - drift * np.arange(floor.size)
    first, last = floor[:3], floor[-3:]
    if np.ptp(first) > FLOOR_WHOLE_TOLERANCE or np.ptp(last) > FLOOR_WHOLE_TOLERANCE:
        return 0.0  # a queue standing at either end: no floor to compare
    step = float(np.min(last) - np.min(first))
    whole = round(step)
    return float(whole) if whole >= 1 and abs(step - whole) < FLOOR_WHOLE_TOLERANCE else 0.0


@dataclass(frozen=True)
class Ramp:
    """A sustained delay ramp (a queue filling) and what followed it.

    Times are seconds since the capture's first frame; ``slope`` is delay
    gained per second of send clock (``(s - r) / r`` for a shaper of rate r
    fed at s); ``height_s`` is the delay added from ramp start to plateau;
    ``plateau_s`` how long the delay then stayed within 15 % of the peak;
    ``fit_r2`` the coefficient of determination of a line through the ramp.
    """

    start: float
    end: float
    slope: float
    height_s: float
    plateau_s: float
    fit_r2: float
    base_delay_s: float
    peak_delay_s: float


def find_ramp(trace: Trace) -> Ramp | None:
    """The largest sustained rise of smoothed delay, fitted by a line.

    The ramp runs from the last time the smoothed delay was near its baseline
    (below 10 % of the peak height) before the peak to the first time it came
    within 10 % of the peak.
    """
    if trace.received_count < 20:
        return None
    sd = trace.smoothed_delay
    t = trace.received_time
    send = trace.received_send
    sd_sorted = np.sort(sd)
    base = percentile_sorted(sd_sorted, 2)
    peak = percentile_sorted(sd_sorted, 98)
    height = peak - base
    if height <= 0:
        return None
    i_peak = int(np.argmax(sd >= base + 0.9 * height))
    below = np.flatnonzero(sd[: i_peak + 1] <= base + 0.1 * height)
    i_start = int(below[-1]) if below.size else 0
    if i_peak - i_start < 5:
        return None
    x = send[i_start : i_peak + 1]
    y = sd[i_start : i_peak + 1]
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 0.0
    after = sd[i_peak:]
    stay = np.flatnonzero(after < peak - 0.15 * height)
    plateau_end = i_peak + (int(stay[0]) if stay.size else after.size - 1)
    return Ramp(
        start=float(t[i_start]),
        end=float(t[i_peak]),
        slope=float(slope),
        height_s=height,
        plateau_s=float(t[plateau_end] - t[i_peak]),
        fit_r2=r2,
        base_delay_s=base,
        peak_delay_s=peak,
    )


#: A queue build-up must raise smoothed delay by this much above the trough
#: before it (its topographic prominence) to count as an episode (s).
EPISODE_PROMINENCE_S = 0.040
#: Prominence is measured within this window around each peak (s): long
#: enough for a queue to fill, short enough that a sawtooth's peaks do not
#: share one trough.
EPISODE_WINDOW_S = 4.0


@dataclass(frozen=True)
class Episodes:
    """Peaks of smoothed delay: queue build-ups (that drained again, or not).

    Per episode (arrays): ``start`` (the trough before the rise), ``peak_time``
    (seconds), ``height`` (the peak's prominence, s), ``rise`` (seconds from
    the trough to the peak: a queue filling takes seconds, a stall is
    instant) and ``rise_r2``, the coefficient of determination of a line
    through the raw delays of the rise (a queue fills smoothly; noise does
    not line up). ``drained`` is False for a peak whose delay never falls back
    by half its prominence before the stream ends (a standing queue).
    """

    start: np.ndarray
    peak_time: np.ndarray
    height: np.ndarray
    rise: np.ndarray
    rise_r2: np.ndarray
    drained: np.ndarray

    @property
    def count(self) -> int:
        return int(self.start.size)


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0:
        return 0.0
    slope, icpt = np.polyfit(x, y, 1)
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - slope * x - icpt) ** 2)) / ss if ss > 0 else 0.0


def delay_episodes(trace: Trace, prominence: float = EPISODE_PROMINENCE_S) -> Episodes:
    """Peaks of smoothed delay with a prominence of ``prominence`` or more.

    Peaks and their left bases are found as by ``scipy.signal.find_peaks``
    (topographic prominence, :mod:`callscope._numerics.peaks`). Each episode
    depends on its own peak only, so a higher ``prominence`` gives exactly
    the episodes of the default one that reach it.
    """
    empty = np.zeros(0)
    none = Episodes(empty, empty, empty, empty, empty, np.zeros(0, bool))
    if trace.received_count < 20:
        return none
    sd = trace.smoothed_delay
    if sd.max() - sd.min() < prominence:
        return none  # no peak stands that far above anything
    t = trace.received_time
    raw = trace.received_delay
    # Append a floor so that a standing queue at the end is still a peak.
    padded = np.concatenate([sd, [sd.min()]])
    wlen = 2 * int(round(EPISODE_WINDOW_S / trace.ptime)) + 1
    found = find_peaks(padded, prominence, wlen)
    if found.index.size == 0:
        return none
    out: dict[str, list[float]] = {k: [] for k in ("start", "peak", "height", "rise", "r2", "drained")}
    for k, lb, prom in zip(found.index.tolist(), found.left_base.tolist(), found.prominence.tolist(), strict=True):
        after = sd[k:]
        # The rise proper: from the last time delay stood near the trough.
        near = np.flatnonzero(sd[lb:k] <= sd[lb] + 0.2 * prom)
        lb = lb + int(near[-1]) if near.size else lb
        out["start"].append(t[lb])
        out["peak"].append(t[k])
        out["height"].append(prom)
        out["rise"].append(t[k] - t[lb])
        out["r2"].append(_r2(t[lb : k + 1], raw[lb : k + 1]))
        out["drained"].append(bool(np.any(after < sd[k] - 0.5 * prom)))
    return Episodes(
        np.array(out["start"]), np.array(out["peak"]), np.array(out["height"]),
        np.array(out["rise"]), np.array(out["r2"]), np.array(out["drained"], bool),
    )
