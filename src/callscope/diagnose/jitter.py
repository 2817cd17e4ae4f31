"""Jitter: little loss, but packets arrive irregularly, out of order, or too late.

The RFC 3550 interarrival jitter (§6.4.1) summarises delay variation; a
playout buffer sized for the usual delay discards packets later than its
budget, which the listener hears exactly like loss. The clean bound of
docs/architecture.md's pattern table is a jitter p95 under 30 ms.
"""

from __future__ import annotations

import numpy as np

from callscope._numerics.filters import trailing_min
from callscope._numerics.quantile import percentile_sorted
from callscope.diagnose.evidence import loss_reliability, ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import Trace
from callscope.metrics.smoothing import rfc3550_jitter
from callscope.metrics.timeline import window_width

#: Jitter p95 at or above which a stream is not clean (docs/architecture.md, pattern table).
JITTER_P95_S = 0.030
#: A fixed playout budget above the stream's lowest delay (ITU-T G.114 §1 puts
#: mouth-to-ear comfort below 150 ms; typical jitter buffers hold 40-60 ms).
PLAYOUT_BUDGET_S = 0.060
#: Window of the running delay floor that lateness is measured from (s).
BASELINE_WINDOW_S = 4.0
#: Loss above which the stream's problem is loss, not jitter.
MAX_LOSS = 0.03
#: Confidence ramps (none at the first value, full at the second) of the four
#: signs of jitter: RFC 3550 jitter p95 (as fractions of :data:`JITTER_P95_S`),
#: reordered share, share later than the playout budget, bunched share; and
#: of the packet count behind them. set on the simulator corpus against DESIGN.md's pattern table; unchanged since, and held on lab-v1 (1.00) and the lab corpora
#: (lab ordinary calls with cross traffic: late 0, bunched <= 0.8 %, p95 <= 4.3 ms;
#: lab jitter runs: late 13-40 %, or bunched 17-32 %.)
JITTER_P95_RAMP = (0.8, 1.3)
REORDERED_RAMP = (0.005, 0.02)
LATE_RAMP = (0.01, 0.05)
BUNCHED_RAMP = (0.03, 0.08)
PACKETS_RAMP = (50, 300)


def _detrend(t: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Delay with the linear trend of its floor removed.

    A steady drift (clock skew between the ends, or an opaque sender whose
    cadence is not quite constant) is not variation a playout buffer has to
    absorb. The floor is the minimum of each :data:`BASELINE_WINDOW_S` window.
    """
    # t is in slot order: a capture's clock may run backwards between slots
    lo, hi = float(t.min()), float(t.max())
    width = window_width(hi - lo, BASELINE_WINDOW_S)
    edges = np.arange(lo, hi + width, width)
    # In arrival order each window is a run of packets (the last window takes
    # the rest); arrivals are nearly in order already, which a stable sort
    # makes quick work of.
    order = np.argsort(t, kind="stable")
    starts = np.concatenate([[0], np.searchsorted(t[order], edges[1:-1], side="left")])
    filled = starts < np.append(starts[1:], t.size)
    mins = np.full(edges.size - 1, np.inf)
    mins[filled] = np.minimum.reduceat(d[order], starts[filled])
    ok = np.isfinite(mins)
    if np.count_nonzero(ok) < 3:
        return d
    centres = edges[:-1] + 0.5 * width
    slope, _ = np.polyfit(centres[ok], mins[ok], 1)
    return d - slope * (t - t[0])


def detect_jitter(trace: Trace, reordered: int = 0) -> Finding | None:
    """A jitter finding or None.

    Parameters
    ----------
    trace : Trace
    reordered : int
        Packets that arrived after a later-numbered one (RFC 3550 §A.1 accounting).
    """
    n = trace.received_count
    # On opaque media the loss is inferred from gaps that jitter itself makes:
    # where arrivals are bunched it is not evidence against jitter.
    loss = trace.loss_fraction * (loss_reliability(trace) if trace.opaque else 1.0)
    if n < 20 or loss > MAX_LOSS:
        return None
    t_rx, d_rx = trace.received_time, trace.received_delay
    if trace.video:
        # A picture's packets leave back to back under one timestamp: its
        # delay is its first packet's (the rest queue behind it by design).
        t_rx, d_rx = t_rx[trace.frame_first], d_rx[trace.frame_first]
    d = _detrend(t_rx, d_rx)
    j = rfc3550_jitter(d)
    j95 = percentile_sorted(np.sort(j), 95)
    # Lateness against the delay floor of the last few seconds (what an adaptive
    # playout buffer would have settled on), not of the whole call: clock skew,
    # timestamp jumps and route changes move the floor without any jitter.
    k = max(2, int(round(BASELINE_WINDOW_S / trace.frame_interval)))
    if d.max() - d.min() <= PLAYOUT_BUDGET_S:
        late = 0.0  # no packet stands that far above any floor
    else:
        late = float(np.mean(d - trailing_min(d, k) > PLAYOUT_BUDGET_S))
    reorder = reordered / n
    # Packets arriving nearly back to back (less than a quarter interval apart)
    # are the trace reordering leaves even where no sequence number shows it.
    bunched = trace.bunched
    # Where the delay is measured (RTP timestamps, or both ends captured) and
    # every packet lies within the pattern table's jitter bound of the
    # lowest, no transit difference |D| (RFC 3550 §6.4.1) reaches the bound:
    # the bunches are variation the table calls clean (lab s7 two-point, a
    # DTX call whose kernel path held packets up to 26 ms: 5.9 % bunched,
    # jitter p95 8 ms). Queues that barely formed spread 48-62 ms and bunch
    # 7-14 % (lab jitter runs): still a sign. On opaque media the delay is
    # inferred from the cadence, and bunching is the sign that remains.
    bunching = ramp(bunched, *BUNCHED_RAMP)
    if not trace.opaque and d.max() - d.min() < JITTER_P95_S:
        bunching = 0.0
    score = max(
        ramp(j95, JITTER_P95_RAMP[0] * JITTER_P95_S, JITTER_P95_RAMP[1] * JITTER_P95_S),
        ramp(reorder, *REORDERED_RAMP),
        ramp(late, *LATE_RAMP),
        bunching,
    )
    confidence = (
        score * ramp(loss, MAX_LOSS, 0.5 * MAX_LOSS) * (0.5 + 0.5 * ramp(n, *PACKETS_RAMP))
    )
    if confidence < 0.2:
        return None
    ms = 1000.0
    d_sorted = np.sort(d)
    evidence = (
        Evidence("jitter_p95", round(j95 * ms, 2), "ms"),
        Evidence("jitter_mean", round(float(j.mean()) * ms, 2), "ms"),
        Evidence("delay_spread_p1_p99", round((percentile_sorted(d_sorted, 99) - percentile_sorted(d_sorted, 1)) * ms, 1), "ms"),
        Evidence("late_fraction", round(late, 4)),
        Evidence("reordered_fraction", round(reorder, 4)),
        Evidence("bunched_fraction", round(bunched, 4)),
        Evidence("loss_fraction", round(trace.loss_fraction, 4)),
    )
    summary = (
        f"only {100 * trace.loss_fraction:.1f} % lost but jitter p95 {j95 * ms:.0f} ms "
        f"(mean {float(j.mean()) * ms:.0f} ms), {100 * reorder:.1f} % reordered, {100 * bunched:.1f} % "
        f"bunched and {100 * late:.1f} % "
        f"later than a {PLAYOUT_BUDGET_S * ms:.0f} ms playout budget: delay variation"
    )
    if trace.opaque:
        summary += " (from the packet cadence: no RTP timestamps)"
    return Finding(
        pattern="jitter",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["jitter"],
        spans=((round(trace.start, 3), round(trace.end, 3)),),
        params=(
            Evidence("jitter_p95_ms", round(j95 * ms, 2), "ms"),
            Evidence("late_fraction", round(late, 4)),
        ),
    )
