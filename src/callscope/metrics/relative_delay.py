"""Relative one-way delay from one capture point.

Without the sender's clock the absolute one-way delay is unknown, but its
variation is not: for packet i with arrival time ``a_i`` and RTP timestamp
``s_i`` (clock rate ``f``), ``d_i = a_i - s_i / f`` is the one-way delay plus
an unknown constant (RFC 3550 §6.4.1 uses the same difference for jitter;
RFC 5481 §4.2 calls its variation packet delay variation, PDV). We report
``d_i - min(d)`` in ms: 0 for the fastest packet, queueing on top of it.

A slope of the lower envelope of ``d`` is clock skew between sender and
capture clocks (Moon, Skelly & Towsley, "Estimation and removal of clock skew
from network delay measurements", INFOCOM 1999); a slope of the bulk of the
delays over the lower envelope is queue build-up (shaping, bufferbloat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope._numerics.lines import least_squares_slope, linspace, theil_sen_slope
from callscope._numerics.quantile import percentiles

_ENVELOPE_WINDOWS = 10  # lower-envelope points for the skew fit


@dataclass(frozen=True)
class DelayStats:
    """Relative one-way delay of one stream (ms above the minimum).

    ``delay_ms`` is per packet (NaN where the packet carries no media clock,
    e.g. RFC 4733 events). ``trend_ms_per_s`` is the least-squares slope of
    all delays over time (it includes clock skew, normally well under
    0.1 ms/s, while a filling queue ramps at ms to tens of ms per second);
    ``clock_skew_ppm`` is the slope of the lower envelope (positive: the
    sender's clock runs slow against the capture clock). A queue that fills
    for the whole stream lifts the envelope too, so read the two together.
    """

    delay_ms: np.ndarray
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    trend_ms_per_s: float | None
    clock_skew_ppm: float | None


def relative_delay(
    time_s: np.ndarray, ext_ts: np.ndarray, clock: np.ndarray, segment: np.ndarray | None = None
) -> DelayStats:
    """Relative one-way delay and its trend.

    Parameters
    ----------
    time_s : float64
        Arrival times (s).
    ext_ts : int64
        Extended RTP timestamps (wrap removed).
    clock : int64
        Clock rate per packet; packets with 0 get NaN.
    segment : int64, optional
        Segment id per packet (sequence restarts start a new timestamp base);
        the minimum is removed per segment.

    References
    ----------
    RFC 3550 §6.4.1; RFC 5481 §4.2; Moon et al., INFOCOM 1999.
    """
    t = np.asarray(time_s, np.float64)
    clock = np.asarray(clock)
    if t.size == 0 or (high := clock.max()) <= 0:
        return DelayStats(np.full(t.size, np.nan), None, None, None, None, None)
    low = clock.min()
    ok = None if low > 0 else clock > 0
    seg = None if segment is None else np.asarray(segment)
    if seg is not None and (seg.size == 0 or seg.max() == 0):
        seg = None
    if ok is None:
        # every packet has a clock: no masking (the usual case); one clock
        # rate divides as a scalar (the same quotients)
        rate = float(low) if low == high else clock.astype(np.float64)
        d_raw = (ext_ts - ext_ts[0]) / rate
        np.subtract(t, d_raw, out=d_raw)
        d_raw *= 1000.0
        if seg is None:
            d = d_raw
            d -= d_raw.min()
        else:
            d = d_raw - _segment_minima(d_raw, seg, np.ones(t.size, bool))[seg]
        v, tv = d, t
    else:
        rate = np.where(ok, clock, 1).astype(np.float64)
        base_ts = ext_ts[ok][0]
        d_raw = (t - (ext_ts - base_ts) / rate) * 1000.0
        d = np.where(ok, d_raw, np.nan)
        if seg is None:
            d = d - d_raw[ok].min()
        else:
            d = d - _segment_minima(d_raw, seg, ok)[seg]
        v = d[ok]
        tv = t[ok]
    skew_slope = _lower_envelope_slope(tv, v)
    trend = None
    if v.size >= 3 and tv[-1] > tv[0]:
        trend = least_squares_slope(tv - tv[0], v)
    p50, p95 = percentiles(v, (50, 95))
    return DelayStats(
        delay_ms=d,
        p50_ms=float(p50),
        p95_ms=float(p95),
        max_ms=float(v.max()),
        trend_ms_per_s=trend,
        clock_skew_ppm=None if skew_slope is None else skew_slope * 1000.0,
    )


def _segment_minima(d: np.ndarray, seg: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Smallest ``d`` of each segment over the ``ok`` packets (inf for a segment without any)."""
    seg_min = np.full(int(seg.max()) + 1, np.inf)
    np.minimum.at(seg_min, seg[ok], d[ok])
    return seg_min


def _lower_envelope_slope(t: np.ndarray, d: np.ndarray) -> float | None:
    """Slope (ms/s) of the lower envelope: Theil-Sen line through per-window minima.

    Theil-Sen (median of pairwise slopes) keeps one odd window, such as a
    first packet sent ahead of its timestamp, from tilting the line.
    """
    if t.size < 2 * _ENVELOPE_WINDOWS or t[-1] <= t[0]:
        return None
    edges = linspace(float(t[0]), float(t[-1]), _ENVELOPE_WINDOWS + 1)
    if (t[1:] >= t[:-1]).all():
        # Arrival order: each window is one slice of the packets, bounded by
        # the first packet at or after each inner edge.
        bounds = np.concatenate([[0], np.searchsorted(t, edges[1:-1], side="left"), [t.size]])
        pick = np.array(
            [a + int(np.argmin(d[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a],
            np.int64,
        )
    else:
        w = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, _ENVELOPE_WINDOWS - 1)
        low = np.full(_ENVELOPE_WINDOWS, np.inf)
        np.minimum.at(low, w, d)
        at_min = np.flatnonzero(d == low[w])
        first = np.full(_ENVELOPE_WINDOWS, t.size)
        np.minimum.at(first, w[at_min], at_min)
        pick = first[first < t.size]
    if pick.size < 2:
        return None
    return theil_sen_slope(t[pick] - t[0], d[pick])
