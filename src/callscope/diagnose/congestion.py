"""Congestion: a shared FIFO filling and draining, losses at its peaks.

A bottleneck shared with elastic (TCP-like) traffic fills as the competing
flows speed up, delaying every packet behind the backlog, overflows and drops
from its tail, then drains when they back off (RFC 5681 §3.1 halving; RFC 7567
§2 drop-tail). A one-point capture sees one-way delay rise smoothly over
seconds and fall again — repeatedly (a sawtooth) — and whatever voice packets
are lost, lost while the delay stood high. That separates it from

- jitter: delay varies packet to packet, not along smooth ramps;
- shaping: one ramp to a plateau that stays (the shaper's queue never drains
  while the sender keeps sending);
- random or bursty loss: no delay rise before the losses.
"""

from __future__ import annotations

import numpy as np

from callscope.diagnose.delay import (
    EPISODE_PROMINENCE_S,
    PreLossRise,
    delay_episodes,
    delay_spread,
    pre_loss_rise,
)
from callscope.diagnose.evidence import ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.shaping import OWN_QUEUE_R2, OwnQueue
from callscope.diagnose.trace import Trace

#: A queue episode must add this much delay (s) ...
MIN_HEIGHT_S = 0.060
#: ... built up over at least this long (s) ...
MIN_RISE_S = 0.5
#: ... along a line this straight (r²) to count as a queue filling.
MIN_RISE_R2 = 0.9
#: Loss between these fractions takes a sawtooth from delay variation (jitter)
#: to congestion: docs/architecture.md's pattern table calls a queue that never overflows jitter.
#: In lab-v1 the lossless tbf queues behind cross traffic lose nothing at all,
#: the overflowing ones 2.7-6.1 %; the floor sits well below the latter.
LOSS_FLOOR = 0.001
LOSS_FULL = 0.005


def detect_congestion(trace: Trace, rise: PreLossRise | None = None, own: OwnQueue | None = None) -> Finding | None:
    """A congestion finding or None.

    ``rise``: :func:`~callscope.diagnose.delay.pre_loss_rise` at the trace's
    loss runs, when already computed.
    """
    # Lower build-ups do not count as queues here: do not look for them.
    ep = delay_episodes(trace, prominence=max(MIN_HEIGHT_S, EPISODE_PROMINENCE_S))
    ok = (ep.height >= MIN_HEIGHT_S) & (ep.rise >= MIN_RISE_S) & (ep.rise_r2 >= MIN_RISE_R2)
    queues = int(np.count_nonzero(ok))
    drained = int(np.count_nonzero(ok & ep.drained))
    runs = trace.loss_runs
    if rise is None:
        rise = pre_loss_rise(trace, runs.start)
    spread = delay_spread(trace)

    c_sawtooth = ramp(drained, 0, 2) if queues else 0.0
    if not trace.opaque:
        # Only counted loss can show a queue never overflowed: loss inferred
        # from an opaque stream's cadence misses drops hidden in its swings.
        c_sawtooth *= ramp(trace.loss_fraction, LOSS_FLOOR, LOSS_FULL)
    c_losses = 0.0
    if runs.count >= 3:
        c_losses = (
            ramp(rise.z, 0.8, 2.0) * ramp(rise.fraction, 0.5, 0.8) * ramp(spread, 0.008, 0.03)
        )
    confidence = max(c_sawtooth, c_losses)
    # A queue the stream's own load explains is not shared: a shaper's.
    if own is not None:
        confidence *= 1.0 - ramp(own.r2, 0.6, OWN_QUEUE_R2)
    if confidence < 0.2:
        return None
    ms = 1000.0
    heights = ep.height[ok]
    evidence = (
        Evidence("queue_episodes", queues),
        Evidence("drained_episodes", drained),
        Evidence("queue_delay_max", round(float(heights.max()) * ms if heights.size else 0.0, 1), "ms"),
        Evidence("rise_time_median", round(float(np.median(ep.rise[ok])) if queues else 0.0, 2), "s"),
        Evidence("loss_fraction", round(trace.loss_fraction, 4)),
        Evidence("losses_at_high_delay", round(rise.fraction, 3)),
        Evidence("delay_rise_before_loss", round(rise.rise_s * ms, 2), "ms"),
        Evidence("delay_spread_p5_p95", round(spread * ms, 1), "ms"),
    )
    params = (
        Evidence("max_queue_delay_s", round(float(heights.max()) if heights.size else spread, 4), "s"),
        Evidence("episodes", queues),
        Evidence("loss_fraction", round(trace.loss_fraction, 5)),
    )
    parts = []
    if queues:
        parts.append(
            f"one-way delay builds up smoothly {queues} times (up to {float(heights.max()) * ms:.0f} ms "
            f"over {float(np.median(ep.rise[ok])):.1f} s) and drains {drained} times"
        )
    if trace.lost:
        parts.append(
            f"{100 * trace.loss_fraction:.1f} % lost, {100 * rise.fraction:.0f} % of loss events while "
            f"delay stood high ({rise.rise_s * ms:.0f} ms above typical)"
        )
    else:
        parts.append("no voice packet lost")
    summary = "; ".join(parts) + ": a congested queue shared with other traffic"
    if trace.opaque:
        summary += " (delay from the packet cadence: no RTP timestamps)"
    spans = tuple(
        (round(float(a), 3), round(float(b), 3))
        for a, b in zip(ep.start[ok], ep.peak_time[ok], strict=True)
    )
    return Finding(
        pattern="congestion",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["congestion"],
        spans=spans,
        params=params,
    )
