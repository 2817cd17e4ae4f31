"""Shaping: a rate limiter that queues instead of dropping.

A shaper of rate r fed at s > r delays each packet by the backlog in front of
it: one-way delay ramps up at slope ``(s - r) / r`` seconds per second, until
the buffer is full, where delay plateaus at ``buffer / r`` and the excess is
tail-dropped (RFC 7567 §2), a fraction ``1 - r/s``. Throughout, packets leave
at exactly r, so the goodput from the ramp's start on is the shaping rate.
Unlike congestion, the queue never drains while the sender keeps sending: the
delay stays on the plateau instead of falling back (a sawtooth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.queue_delay import Ramp, find_ramp
from callscope.diagnose.trace import Trace
from callscope.metrics.cadence import serialized_stretches

#: Smallest queueing delay built up that counts as a shaper's queue (s): well
#: above the few ms of jitter of an ordinary path.
MIN_QUEUE_S = 0.040
#: Smallest ramp slope (s/s) that is a rate clamp: the sender outpaces the
#: shaper by 0.5 % or more. Clock skew between the ends drifts at most about
#: 1e-4 s/s (crystal oscillators, +-50 ppm; 1e-3 for the worst), far below.
#: lab-v1's tbf at 84 kbit/s under 85.6 kbit/s of media ramps at 0.019 s/s to
#: 730 ms without a loss: 5 % (the value before lab-v1) missed it.
MIN_SLOPE = 0.005
#: Without tail drops, only a queue this deep is called shaping (s): delay a
#: caller notices (ITU-T G.114: one-way delay above 150 ms degrades
#: conversation). Below it a slow drift is as likely a sender's clock running
#: off its RTP timestamps: a real Opus capture (asterisk testsuite) drifts
#: 70 ms in 8.5 s. lab-v1's lossless shaper reached 730 ms.
LOSSLESS_MIN_QUEUE_S = 0.150
#: Smallest ramp slope on opaque media (s/s), whose send clock is the
#: cadence-inferred packet interval: above what an error in it gives (a real
#: Telegram call's relay leg ramps at 0.034 s/s with no queue on its path; a
#: simulated opaque call behind a congested FIFO at 0.038).
OPAQUE_MIN_SLOPE = 0.05
#: Ethernet header bytes a qdisc counts besides the IP packet (IEEE 802.3).
ETHERNET_HEADER = 14.0
#: Drain rates tried for a stream's own queue, relative to its mean rate.
OWN_QUEUE_RATES = np.linspace(0.8, 1.05, 26)
#: r² of the own-load queue model from which the delay is a shaper's queue,
#: and below which it says nothing (between, the other queue findings are
#: doubted in proportion). Lab tbf/htb shapers: 0.89-0.998; queues shared
#: with cross traffic: <= 0.1.
OWN_QUEUE_R2 = 0.8
OWN_QUEUE_DOUBT_R2 = 0.6
#: Stretches of arrivals spaced by packet size that show a rate limiter's
#: busy queue on encrypted media without a steep ramp. Lab tbf shapers on
#: opaque media: 25-40 stretches of 25 gaps; every other lab, simulator and
#: real opaque stream: none.
MIN_SERIALIZED = 3
#: A ramp's straightness (r² of the line through it), the share of its height
#: still held at the end, and the share of the time after it spent on the
#: plateau: confidence ramps. set on the simulator corpus against DESIGN.md's pattern table; unchanged since, and held on lab-v1 (1.00) and the lab corpora.
RAMP_FIT_R2 = (0.7, 0.9)
RAMP_HELD = (0.5, 0.8)
RAMP_PLATEAU = (0.5, 0.9)
#: Tail loss below this counts as none (a stray loss is not a full queue).
LOSSLESS_TAIL_LOSS = 0.005


def _goodput(trace: Trace, start: float, end: float, overhead: float) -> float:
    """Received bytes per second over ``[start, end]`` by least squares on the cumulative bytes."""
    t = trace.received_time
    sel = (t >= start) & (t <= end)
    if np.count_nonzero(sel) < 5:
        return float("nan")
    cum = np.cumsum(trace.received_size[sel] + overhead)
    slope, _ = np.polyfit(t[sel], cum, 1)
    return float(slope)


def detect_shaping(
    trace: Trace, overhead: float = 0.0, queue: Ramp | None = None, own: OwnQueue | None = None
) -> Finding | None:
    """A shaping finding or None: a sustained delay ramp to a plateau, or a
    delay that the stream's own load through one fixed-rate queue explains
    (:func:`own_queue`; ``own`` when already computed)."""
    q = queue if queue is not None else find_ramp(trace)
    by_ramp = _ramp_finding(trace, overhead, q)
    by_load = _own_queue_finding(trace, own if own is not None else own_queue(trace, q))
    found = [f for f in (by_ramp, by_load) if f is not None]
    return max(found, key=lambda f: f.confidence) if found else None


def _own_queue_finding(trace: Trace, own: OwnQueue | None) -> Finding | None:
    if own is None:
        return None
    d = trace.sorted_delay
    held = float(np.percentile(d, 98) - np.percentile(d, 2)) if d.size else 0.0
    if trace.loss_fraction < LOSSLESS_TAIL_LOSS and held < LOSSLESS_MIN_QUEUE_S:
        return None
    confidence = ramp(own.r2, OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2 + 0.05) * ramp(held, MIN_QUEUE_S, 2 * MIN_QUEUE_S)
    payload = float(np.mean(trace.received_size)) if trace.received_count else 0.0
    payload_share = payload / (payload + trace.header_bytes + ETHERNET_HEADER) if payload > 0 else 0.0
    if confidence < 0.2:
        return None
    ms = 1000.0
    summary = (
        f"one-way delay swings over {held * ms:.0f} ms, and one queue fed by this stream alone and "
        f"drained at {own.rate_Bps / 1000:.2f} kB/s on the wire explains {100 * own.r2:.0f} % of it "
        f"(it fills when the sender speaks louder than that rate, drains when quieter; "
        f"{100 * trace.loss_fraction:.1f} % tail drops): a shaper, rate ≈ {own.rate_Bps / 1000:.2f} kB/s"
    )
    evidence = (
        Evidence("queue_delay", round(held * ms, 1), "ms"),
        Evidence("own_queue_fit_r2", round(own.r2, 3)),
        Evidence("own_queue_rate", round(own.rate_Bps, 1), "B/s"),
        Evidence("tail_loss_fraction", round(trace.loss_fraction, 4)),
    )
    params = (
        # The same rate in UDP payload bytes, the unit of the ramp's estimate.
        Evidence("rate_Bps", round(own.rate_Bps * payload_share, 1), "B/s"),
        Evidence("rate_l2_Bps", round(own.rate_Bps, 1), "B/s"),
        Evidence("queue_delay_s", round(held, 4), "s"),
    )
    return _finding(trace, confidence, summary, evidence, params, trace.start)


def _finding(
    trace: Trace, confidence: float, summary: str, evidence: tuple, params: tuple, start: float
) -> Finding:
    """A shaping finding from ``start`` to the stream's end (either route to it)."""
    if trace.opaque:
        summary += " (delay from the packet cadence: no RTP timestamps)"
    return Finding(
        pattern="shaping",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["shaping"],
        spans=((round(start, 3), round(trace.end, 3)),),
        params=params,
    )


def _ramp_finding(trace: Trace, overhead: float, q: Ramp | None) -> Finding | None:
    if q is None or q.height_s < MIN_QUEUE_S or q.slope < (OPAQUE_MIN_SLOPE if trace.opaque else MIN_SLOPE):
        return None
    rec = trace.received
    t_rec = trace.received_time
    after_peak = t_rec >= q.end
    sd_after = trace.received_delay[after_peak]
    # The queue must not drain back towards its empty level while the call goes on.
    if sd_after.size:
        floor_after = float(np.percentile(sd_after, 5))
    else:
        floor_after = q.peak_delay_s
    held = (floor_after - q.base_delay_s) / q.height_s
    tail = max(0.0, trace.end - q.end)
    plateau_share = q.plateau_s / tail if tail > 0 else 1.0

    rate = _goodput(trace, q.start, trace.end, overhead)
    sel = (trace.time >= q.start) & (trace.time <= trace.end)
    span = trace.end - q.start
    send_rate = float(np.sum(trace.size[sel] + overhead)) / span if span > 0 else float("nan")
    after = trace.time >= q.end
    tail_loss = 1.0 - float(np.count_nonzero(rec[after])) / max(1, int(np.count_nonzero(after)))
    slope_rate = send_rate / (1.0 + q.slope) if np.isfinite(send_rate) else float("nan")

    if tail_loss < LOSSLESS_TAIL_LOSS and q.height_s < LOSSLESS_MIN_QUEUE_S:
        # A queue that never overflowed must stand on its delay alone.
        return None
    confidence = (
        ramp(q.height_s, MIN_QUEUE_S, 2 * MIN_QUEUE_S)
        * ramp(q.fit_r2, *RAMP_FIT_R2)
        * ramp(held, *RAMP_HELD)
        * (0.6 + 0.4 * ramp(plateau_share, *RAMP_PLATEAU))
    )
    if confidence < 0.2:
        return None
    ms = 1000.0
    evidence = (
        Evidence("queue_delay", round(q.height_s * ms, 1), "ms"),
        Evidence("ramp_slope", round(q.slope, 4), "s/s"),
        Evidence("ramp_fit_r2", round(q.fit_r2, 3)),
        Evidence("ramp_start", round(q.start, 3), "s"),
        Evidence("ramp_end", round(q.end, 3), "s"),
        Evidence("plateau", round(q.plateau_s, 2), "s"),
        Evidence("queue_held", round(held, 3)),
        Evidence("tail_loss_fraction", round(tail_loss, 4)),
        Evidence("send_rate", round(send_rate, 1), "B/s"),
        Evidence("rate_from_slope", round(slope_rate, 1), "B/s"),
    )
    params = (
        Evidence("rate_Bps", round(rate, 1), "B/s"),
        Evidence("queue_delay_s", round(q.height_s, 4), "s"),
        Evidence("onset_s", round(q.start, 3), "s"),
    )
    summary = (
        f"one-way delay ramps up {q.height_s * ms:.0f} ms from {q.start:.1f} s to {q.end:.1f} s "
        f"(slope {q.slope:.3f} s/s, r² {q.fit_r2:.2f}) and stays there for {q.plateau_s:.1f} s "
        f"while goodput is clamped at {rate / 1000:.2f} kB/s of {send_rate / 1000:.2f} kB/s sent"
        f" ({100 * tail_loss:.1f} % tail drops once full): a shaper queue, "
        f"rate ≈ {rate / 1000:.2f} kB/s, buffer ≈ {q.height_s * ms:.0f} ms"
    )
    return _finding(trace, confidence, summary, evidence, params, q.start)


@dataclass(frozen=True)
class OwnQueue:
    """The best fit of a queue fed by this stream alone, drained at a fixed rate.

    ``rate_Bps`` is the drain rate in bytes on the wire (UDP payload plus
    IP, UDP and Ethernet headers), ``r2`` how much of the relative delay's
    variance the model explains, ``height_s`` the range of the delay it predicts.
    """

    rate_Bps: float
    r2: float
    height_s: float


def own_queue(trace: Trace, queue: Ramp | None = None) -> OwnQueue | None:
    """How well the stream's own load explains its delay as one rate-limited queue.

    A shaper holds this stream's packets only: its backlog follows from the
    stream's own sizes and send times and the shaping rate r by Lindley's
    recursion ``W(n) = max(0, W(n-1) + S(n-1) - T(n))``, in closed form
    ``W(n) = X(n) - min(X(k), k <= n)`` with ``X`` the cumulative service
    time minus the send clock (D. V. Lindley, Proc. Camb. Phil. Soc. 48
    (1952)). Packets the queue dropped never entered it, so only the received
    ones are fed. A queue shared with other traffic (congestion, jitter behind
    cross traffic) is not explained by one stream's load. On the kernel-made
    captures: tbf and htb shapers at 90-97 % of the media rate, CBR and VBR,
    r² 0.92-0.998 (rate within 6 % of the qdisc's); congestion and jitter
    behind cross traffic, r² at most 0.1.

    On opaque media a slow drift of the cadence-derived delay fits a queue
    too: there the delay must also climb as steeply as a shaper makes it
    (``queue``, the trace's :func:`~callscope.diagnose.queue_delay.find_ramp`), or
    the arrivals show a link serialising the backlog: stretches of gaps
    proportional to the packets' sizes
    (:func:`~callscope.metrics.cadence.serialized_stretches`).
    """
    if trace.received_count < 50:
        return None
    if trace.opaque and (queue is None or queue.slope < OPAQUE_MIN_SLOPE):
        order = np.argsort(trace.received_time, kind="stable")
        if serialized_stretches(trace.received_time[order], trace.received_size[order]) < MIN_SERIALIZED:
            return None
    sd = trace.sorted_delay
    if sd.size == 0 or float(sd[int(0.98 * (sd.size - 1))] - sd[int(0.02 * (sd.size - 1))]) < MIN_QUEUE_S:
        return None
    d = trace.received_delay
    send = trace.received_send
    size = trace.received_size + trace.header_bytes + ETHERNET_HEADER
    span = float(send[-1] - send[0])
    if span <= 0:
        return None
    rates = float(size.sum()) / span * OWN_QUEUE_RATES
    service = np.cumsum(size)[None, :] / rates[:, None]
    x = np.concatenate([np.zeros((rates.size, 1)), service[:, :-1]], axis=1) - (send - send[0])[None, :]
    pred = x - np.minimum.accumulate(x, axis=1) + size[None, :] / rates[:, None]
    resid = d[None, :] - pred
    resid -= resid.mean(axis=1, keepdims=True)
    var = float(d.var())
    if var <= 0:
        return None
    r2 = 1.0 - resid.var(axis=1) / var
    k = int(np.argmax(r2))
    return OwnQueue(float(rates[k]), float(r2[k]), float(np.ptp(pred[k])))
