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

from callscope.diagnose.evidence import ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.queue_delay import (
    EPISODE_PROMINENCE_S,
    PreLossRise,
    delay_episodes,
    delay_spread,
    hidden_loss,
    loss_ceiling,
    pre_loss_rise,
)
from callscope.diagnose.shaping import OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2, OwnQueue
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
#: Losses after a delay rise (:func:`~callscope.diagnose.queue_delay.pre_loss_rise`):
#: ramps of its z score, of the share of loss events after high delay, and
#: of the delay spread (s) that makes a rise more than timer noise. set on the simulator corpus against DESIGN.md's pattern table; unchanged since, and held on lab-v1 (1.00) and the lab corpora
RISE_Z = (0.8, 2.0)
RISE_SHARE = (0.5, 0.8)
RISE_SPREAD_S = (0.008, 0.03)
#: Losses at the queue's ceiling (:func:`~callscope.diagnose.queue_delay.loss_ceiling`):
#: how unlikely by chance (exact binomial tail) the association is, and the share of
#: loss events at the ceiling. Lab s1-s5 congestion (tbf behind cross
#: traffic, queue full in under a second, so no smooth ramps): z 7.4-15.4 with
#: all events at the ceiling (one of 4 drops: z 3.4); random loss: z below 0,
#: bursty loss has no queue.
CEILING_CHANCE = (2.0, 4.0)  # -log10 of the binomial tail: 1 in 100 to 1 in 10,000
CEILING_SHARE = (0.6, 0.8)
#: Opaque media: lost packets hidden in a queue's swings that the delay floor
#: shows (:func:`~callscope.diagnose.queue_delay.hidden_loss`), from none to full
#: confidence. Lab s1 opaque congestion (tbf, 11 drops): a step of 9.9
#: intervals; lossless opaque queues and ordinary opaque calls: no whole step
#: of 2 or more (simulator jitter: up to 3.4, never within 0.15 of a whole).
HIDDEN_LOSS = (1.0, 3.0)
#: Opaque media with neither inferred nor hidden loss: a sawtooth that may
#: never have overflowed (jitter) keeps this share of its confidence.
OPAQUE_UNSEEN_LOSS = 0.5
#: Bunched-arrival shares between which loss inferred on opaque media stops
#: showing that a queue overflowed: congested opaque streams bunch 6-7 % of
#: arrivals (lab s4, s5), up to 18 % (simulator); a lossless queue behind
#: bursty cross traffic 48 % (lab s6 tbf 321 kbit/s, 0.7 % "lost" by cadence).
QUEUE_BUNCHED = (0.30, 0.15)


def detect_congestion(trace: Trace, rise: PreLossRise | None = None, own: OwnQueue | None = None) -> Finding | None:
    """A congestion finding or None.

    ``rise``: :func:`~callscope.diagnose.queue_delay.pre_loss_rise` at the trace's
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
    hidden = hidden_loss(trace) if queues else 0.0
    c_hidden = ramp(hidden, *HIDDEN_LOSS)
    c_loss = ramp(trace.loss_fraction, LOSS_FLOOR, LOSS_FULL)
    if not trace.opaque:
        # Counted loss shows whether the queue ever overflowed.
        c_sawtooth *= c_loss
    else:
        # Inferred loss misses drops hidden in a queue's swings; the delay
        # floor may still show them. Without either, the sawtooth is doubtful.
        # Gaps between bunched arrivals are the queue's, not loss.
        c_inferred = c_loss * ramp(trace.bunched, *QUEUE_BUNCHED)
        c_sawtooth *= max(c_inferred, c_hidden, OPAQUE_UNSEEN_LOSS)
    c_losses = 0.0
    if runs.count >= 3:
        c_losses = (
            ramp(rise.z, *RISE_Z) * ramp(rise.fraction, *RISE_SHARE) * ramp(spread, *RISE_SPREAD_S)
        )
    ceiling = loss_ceiling(trace)
    c_ceiling = 0.0
    if ceiling is not None:
        c_ceiling = ramp(ceiling.chance_log10, *CEILING_CHANCE) * ramp(ceiling.fraction, *CEILING_SHARE)
    confidence = max(c_sawtooth, c_losses, c_ceiling, c_hidden)
    # A queue the stream's own load explains is not shared: a shaper's.
    if own is not None:
        confidence *= 1.0 - ramp(own.r2, OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2)
    if confidence < 0.2:
        return None
    ms = 1000.0
    heights = ep.height[ok]
    evidence: tuple[Evidence, ...] = (
        Evidence("queue_episodes", queues),
        Evidence("drained_episodes", drained),
        Evidence("queue_delay_max", round(float(heights.max()) * ms if heights.size else 0.0, 1), "ms"),
        Evidence("rise_time_median", round(float(np.median(ep.rise[ok])) if queues else 0.0, 2), "s"),
        Evidence("loss_fraction", round(trace.loss_fraction, 4)),
        Evidence("losses_at_high_delay", round(rise.fraction, 3)),
        Evidence("delay_rise_before_loss", round(rise.rise_s * ms, 2), "ms"),
        Evidence("delay_spread_p5_p95", round(spread * ms, 1), "ms"),
    )
    if hidden:
        evidence += (Evidence("hidden_loss", int(hidden), "packets"),)
    if ceiling is not None:
        evidence += (
            Evidence("loss_events_at_ceiling", ceiling.high),
            Evidence("loss_events_tested", ceiling.events),
            Evidence("packets_at_ceiling", round(ceiling.share, 3)),
            Evidence("ceiling_chance_log10", round(ceiling.chance_log10, 2)),
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
    if trace.lost and c_ceiling >= max(c_sawtooth, c_losses) and ceiling is not None:
        parts.append(
            f"{100 * trace.loss_fraction:.1f} % lost, {ceiling.high} of {ceiling.events} loss events next to "
            f"a packet that waited in the upper half of a {ceiling.spread_s * ms:.0f} ms delay range, "
            f"where only {100 * ceiling.share:.0f} % of neighbouring packets were "
            f"(by luck: 1 in 10^{ceiling.chance_log10:.1f}): drops from a full queue"
        )
    elif trace.lost and rise.rise_s > 0:
        parts.append(
            f"{100 * trace.loss_fraction:.1f} % lost, {100 * rise.fraction:.0f} % of loss events while "
            f"delay stood high ({rise.rise_s * ms:.0f} ms above typical)"
        )
    elif trace.lost:
        parts.append(f"{100 * trace.loss_fraction:.1f} % lost, with no rise in delay before the losses")
    elif hidden:
        parts.append(
            f"after the swings the delay floor stands {int(hidden)} packet intervals higher: "
            f"{int(hidden)} packets lost inside them that the cadence gaps did not show"
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
