"""Token-bucket policing: goodput clamped at a rate r, evenly spaced drops.

After Flach et al., "An Internet-Wide Analysis of Traffic Policing",
SIGCOMM 2016, §3 (the detection heuristic), adapted from TCP server traces to a
constant-rate voice stream seen at one point:

1. the policing rate is the goodput between the first and the last loss;
2. once the bucket is empty a constant-rate sender above r loses a fraction
   ``1 - r/s`` of its bytes, one packet whenever the tokens run short, so the
   drops are evenly spaced (coefficient of variation of the spacing << 1) and
   the goodput per window is flat;
3. a token bucket of rate r and depth b, replayed over the packets, must drop
   about as many packets by every point in time as were lost (consistency);
4. congestion veto: a policer holds no queue, so one-way delay must not rise
   before the losses (Flach et al. use RTT inflation; one-way delay is what a
   one-point capture has).

The bucket depth is the excess sent before the first loss:
``b = (bytes sent from the stream's start to the first loss) - r * (that time)``
plus half the first dropped packet (the tokens left then lay anywhere between
none and one packet's worth), the bucket being full when the stream starts.
A constant-rate stream shows the depth nowhere else, so when the policer may
have started later than the stream (the first loss comes more than
:data:`ONSET_WINDOW_S` after the start) the estimate is an upper bound.
"""

from __future__ import annotations

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence, spans_of, window_rates
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.queue_delay import Ramp, find_ramp, pre_loss_rise
from callscope.diagnose.shaping import OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2, OwnQueue
from callscope.diagnose.trace import Trace
from callscope.metrics.loss_structure import loss_runs

#: Fewest losses from which a drop pattern can be called evenly spaced.
MIN_LOSSES = 12
#: Shortest lossy stretch (first to last loss) to estimate a rate over (s).
MIN_LOSSY_SPAN_S = 2.0
#: A first loss within this of the stream's start means the policer was in
#: place from the start, so the burst estimate is not just an upper bound (s).
ONSET_WINDOW_S = 1.0
#: Below this loss a rate clamp is indistinguishable from occasional loss. A
#: policer at 98 % of a constant media rate drops one packet in 50 (2 %): the
#: clamp of the delivered bytes, not the amount, tells it from random loss.
MIN_LOSS = 0.01
#: Evenly spaced drops alone (without the delivered bytes clamped) count from
#: this loss up: a real Opus capture with every hundredth packet removed by a
#: test harness (asterisk testsuite, 1 %) is no policer, lab-v1's periodic
#: droppers (12.5-33 %) read as one.
EVEN_MIN_LOSS = 0.05
#: A delivered packet count clamped to a line counts from this loss up: a
#: packets/second policer at 98 % of the packet rate drops 2 % (the lab), the
#: test harness's every-hundredth drop above is 1 %.
PACKET_CLAMP_MIN_LOSS = 0.015
#: A delay ramp this high before the losses means a queue: shaping or congestion (s).
QUEUE_VETO_S = 0.030
#: ... when it rises at least this steeply (s/s): a sender outpacing a shaper
#: by 5 %. Slower ramps do not veto a policer's evenly spaced drops (a shaper
#: that close to the rate fills its queue without tail drops for seconds).
QUEUE_VETO_SLOPE = 0.05


def loss_onset(received: np.ndarray) -> int:
    """Slot where the loss rate steps up: the maximum-likelihood single change point.

    The loss indicator is modelled as Bernoulli with one rate before slot
    ``k`` and another from ``k`` on; ``k`` maximises the log-likelihood
    (0 when a single rate fits best).
    """
    lost = (~np.asarray(received, bool)).astype(np.float64)
    n = lost.size
    if n < 4:
        return 0
    c = np.concatenate([[0.0], np.cumsum(lost)])
    k = np.arange(1, n)
    a, b = c[k], c[-1] - c[k]

    def ll(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        p = np.clip(x / m, 1e-12, 1 - 1e-12)
        return x * np.log(p) + (m - x) * np.log1p(-p)

    split = ll(a, k) + ll(b, n - k)
    best = int(np.argmax(split))
    whole = float(ll(np.array([c[-1]]), np.array([float(n)]))[0])
    return int(k[best]) if split[best] > whole + 10.0 and b[best] / (n - k[best]) > a[best] / k[best] else 0


def replay_token_bucket(
    time: np.ndarray, size: np.ndarray, rate: float, depth: float
) -> np.ndarray:
    """Which packets a token bucket of ``rate`` B/s and ``depth`` B would drop.

    The bucket starts full; a packet conforms when the bucket holds at least
    its size, and takes that many tokens (RFC 2697 §3, single-rate policer,
    committed bucket only). One iteration per packet: a recurrence with a
    clamp does not vectorise.
    """
    drop = np.zeros(time.size, bool)
    tokens = depth
    prev = float(time[0]) if time.size else 0.0
    for i, (t, s) in enumerate(zip(time.tolist(), size.tolist(), strict=True)):
        tokens = min(depth, tokens + rate * (t - prev))
        prev = t
        if tokens >= s:
            tokens -= s
        else:
            drop[i] = True
    return drop


#: Confidence kept by every-other-packet drops on opaque media (a sender
#: halving its packet rate looks the same): under 0.5, a hint.
HALVED_CADENCE_DOUBT = 0.6
#: Confidence ramps (none at the first value, full at the second): the
#: coefficient of variation of the spacing of drops (a policer on
#: constant-rate media drops evenly), the share of loss runs longer than the
#: loss fraction allows, the coefficient of variation of the delivered rate
#: per window, the token-bucket replay's error in drops (share of all), and
#: the z score of delay standing high before the drops (a queue's, not a
#: policer's). Set on the simulator corpus; the lab showed evenly spaced kernel
#: policer drops at CV 0.00-0.22 and random loss at 0.60 and up.
EVEN_SPACING_CV = (0.6, 0.25)
LONG_RUNS = (0.15, 0.05)
FLAT_GOODPUT_CV = (0.35, 0.12)
REPLAY_ERROR = (0.25, 0.08)
QUEUED_Z = (0.7, 1.5)


#: :func:`clamp_ratio` at or below which the delivered bytes are clamped like a
#: policer's, and above which they vary like random loss's (lab-v1: policers
#: 0.03-0.12, random and bursty droppers 0.7-1.5).
CLAMP_POLICED = 0.25
CLAMP_RANDOM = 0.5


def clamp_ratio(time: np.ndarray, size: np.ndarray, received: np.ndarray) -> float:
    """How much straighter the delivered bytes run than the loss alone explains.

    A policer's token bucket lets through at most ``r t + b`` bytes by time
    ``t``: once it bites, the cumulative delivered bytes hug a straight line
    of slope r, however the sender's rate varied (Flach et al. 2016, §3: the
    goodput is clamped at the token rate). Random or bursty loss leaves the
    delivered curve as uneven as what was sent, plus the random walk of the
    drops themselves. The ratio is the spread (max - min) of the delivered
    curve about its line over the larger of the spread of the sent curve and
    the random walk's ``sqrt(n p (1 - p))`` packets: about 0.03-0.12 for
    lab-v1's nftables policers (constant and variable rate), 0.7-1.5 for its
    random and bursty droppers.
    """
    n = time.size
    lost = ~received
    p = float(np.count_nonzero(lost)) / n if n else 0.0
    if n < 10 or p == 0.0 or time[-1] <= time[0]:
        return float("inf")
    got = np.cumsum(np.where(received, size, 0.0))
    sent = np.cumsum(size)

    # Least-squares line by its closed form (one pass of dot products, not
    # polyfit's SVD): residual range about it.
    tc = time - time.mean()
    var = float(tc @ tc)

    def spread(c: np.ndarray) -> float:
        slope = float(tc @ c) / var
        resid = c - slope * tc
        return float(resid.max() - resid.min())

    walk = np.sqrt(n * p * (1.0 - p)) * float(size.mean())
    return spread(got) / max(spread(sent), walk)


def detect_policing(
    trace: Trace, overhead: float = 0.0, queue: Ramp | None = None, own: OwnQueue | None = None
) -> Finding | None:
    """A policing finding for ``trace`` or None when the pattern is absent.

    Parameters
    ----------
    trace : Trace
    overhead : float
        Bytes added to each UDP payload when counting what the policer meters
        (e.g. 28 for IPv4 + UDP headers); 0 counts payload bytes.
    queue : Ramp, optional
        :func:`~callscope.diagnose.queue_delay.find_ramp` of the trace, when already
        computed.
    """
    rec = trace.received
    lost_idx = np.flatnonzero(~rec)
    if lost_idx.size < MIN_LOSSES:
        return None
    # Whichever loss the policed stretch starts at, it runs to the last loss
    # and holds every loss between: when even the densest such stretch is
    # below MIN_LOSS (less a margin far above rounding), the test further on
    # fails for any onset and the change point need not be sought.
    first = np.arange(lost_idx.size - MIN_LOSSES + 1)
    densest = float(np.max((lost_idx.size - first) / (lost_idx[-1] - lost_idx[first] + 1)))
    if densest < MIN_LOSS * (1.0 - 1e-9):
        return None
    # The policed stretch starts where the loss rate changes, not at the first
    # loss: a stray loss before the policer acts is not its doing.
    lost_idx = lost_idx[lost_idx >= loss_onset(rec)]
    if lost_idx.size < MIN_LOSSES:
        return None
    i1, i2 = int(lost_idx[0]), int(lost_idx[-1])
    t1, t2 = float(trace.time[i1]), float(trace.time[i2])
    span = t2 - t1
    if span < MIN_LOSSY_SPAN_S:
        return None
    size = trace.size + overhead
    region = slice(i1, i2 + 1)
    got = float(np.sum(size[region][rec[region]]))
    sent = float(np.sum(size[region]))
    rate = got / span
    # What the policer meters: IP packets, headers and all (nftables `limit
    # rate ... bytes/second` counts the IP length; tc policers the frame).
    rate_ip = rate + trace.header_bytes * float(np.count_nonzero(rec[region])) / span
    send_rate = sent / span
    loss_region = 1.0 - float(np.count_nonzero(rec[region])) / (i2 - i1 + 1)
    if loss_region < MIN_LOSS:
        return None

    runs = loss_runs(rec[region])
    if runs.count < 3:
        return None  # a policer drops again and again, never in one or two stretches
    gaps = np.diff(runs.start).astype(np.float64)
    cv = float(gaps.std() / gaps.mean()) if gaps.size >= 2 and gaps.mean() > 0 else np.inf
    max_run = int(runs.length.max())
    expected_run = int(np.ceil(loss_region / max(1e-9, 1.0 - loss_region))) + 1
    too_long = float(np.mean(runs.length > expected_run))
    clamp = clamp_ratio(trace.time[region], size[region], rec[region])
    if loss_region >= PACKET_CLAMP_MIN_LOSS:
        # A packets/second policer clamps the packet count, not the bytes.
        clamp = min(clamp, clamp_ratio(trace.time[region], np.ones(i2 - i1 + 1), rec[region]))
    # Evenly spaced drops (constant-rate media), or delivered bytes clamped to
    # a line however the sender's rate varied (variable-rate media).
    c_spacing = ramp(cv, *EVEN_SPACING_CV) if loss_region >= EVEN_MIN_LOSS else 0.0
    c_even = max(c_spacing, ramp(clamp, CLAMP_RANDOM, CLAMP_POLICED))
    c_runs = ramp(too_long, *LONG_RUNS)
    # The factors below are at most 1: without the drop pattern, nothing can
    # raise the confidence to a finding (and the per-packet replay is skipped).
    if c_even * c_runs < 0.2:
        return None

    _, got_w = window_rates(trace, t1, t2)
    flat = float(got_w.std() / got_w.mean()) if got_w.size >= 2 and got_w.mean() > 0 else np.inf

    t0 = float(trace.time[0])
    sent_before = float(np.sum(size[:i1]))
    depth = max(0.0, sent_before + 0.5 * float(size[i1]) - rate * (t1 - t0))
    from_start = t1 - t0 <= ONSET_WINDOW_S
    # Once the bucket has drained its depth no longer matters: replay the
    # policed stretch with a bucket of one packet and compare the drop counts.
    # (two packets' worth at least: a shallower bucket wastes tokens, which the
    # measured goodput already reflects).
    drops = replay_token_bucket(trace.time[region], size[region], rate, 2.0 * float(size[region].max()))
    cum_pred = np.cumsum(drops)
    cum_real = np.cumsum(~rec[region])
    tb_error = float(np.max(np.abs(cum_pred - cum_real))) / lost_idx.size

    rise = pre_loss_rise(trace, runs.start + i1)
    if queue is None:
        queue = find_ramp(trace)
    # Only a ramp steep enough to be a rate clamp is a queue; slower drifts
    # are clock skew or, on opaque media, a loss the cadence did not reveal.
    queue_height = queue.height_s if queue is not None and queue.slope >= QUEUE_VETO_SLOPE else 0.0

    c_flat = ramp(flat, *FLAT_GOODPUT_CV)
    c_tb = ramp(tb_error, *REPLAY_ERROR)
    # A queue shows as delay standing well above typical before the drops, in
    # absolute terms as well as against the stream's own spread.
    queued_before = min(ramp(rise.z, *QUEUED_Z), ramp(rise.rise_s, 0.3 * QUEUE_VETO_S, QUEUE_VETO_S))
    c_veto = ramp(queue_height, 2 * QUEUE_VETO_S, QUEUE_VETO_S) * (1.0 - queued_before)
    # A queue its own load explains is a shaper's, which also clamps the rate
    # and drops evenly once full (tc htb/tbf at 97 % of the media rate).
    if own is not None:
        c_veto *= 1.0 - ramp(own.r2, OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2) * ramp(own.height_s, QUEUE_VETO_S, 2 * QUEUE_VETO_S)
    confidence = c_even * (0.5 + 0.25 * c_flat + 0.25 * c_tb) * c_runs * c_veto
    if confidence < 0.2:
        return None

    ms = 1000.0
    evidence = (
        Evidence("loss_fraction", round(loss_region, 4)),
        Evidence("drop_spacing_cv", round(cv, 3)),
        Evidence("drop_spacing_mean", round(float(gaps.mean()), 2), "packets"),
        Evidence("longest_loss_run", max_run, "packets"),
        Evidence("runs_longer_than_bucket_allows", round(too_long, 3)),
        Evidence("goodput_window_cv", round(flat, 3)),
        Evidence("token_bucket_mismatch", round(tb_error, 3)),
        Evidence("delivered_bytes_clamp_ratio", round(clamp, 3)),
        Evidence("delay_rise_before_loss", round(rise.rise_s * ms, 2), "ms"),
        Evidence("queue_delay_ramp", round(queue_height * ms, 1), "ms"),
        Evidence("send_rate", round(send_rate, 1), "B/s"),
    )
    # One drop in exactly every k packets: a bucket shallower than two packets
    # wastes the tokens that overflow it, so a range of rates up to the send
    # rate gives this same pattern, and the goodput is only its floor.
    k = float(gaps.mean())
    periodic = abs(k - round(k)) < 0.1 and cv < 0.1
    rate_upper = send_rate if periodic else rate
    params = (
        Evidence("rate_Bps", round(rate, 1), "B/s"),
        Evidence("rate_upper_Bps", round(rate_upper, 1), "B/s"),
        Evidence("rate_ip_Bps", round(rate_ip, 1), "B/s"),
        Evidence("burst_bytes", round(depth, 1), "B"),
        Evidence("burst_is_upper_bound", float(not from_start)),
        Evidence("onset_s", round(t1, 3), "s"),
        Evidence("loss_expected", round(1.0 - rate / send_rate, 4)),
    )
    summary = (
        f"drops evenly spaced every {gaps.mean():.1f} packets (CV {cv:.2f}) from {t1:.1f} s "
        f"while goodput holds at {rate / 1000:.2f} kB/s of {send_rate / 1000:.2f} kB/s sent "
        f"({100 * loss_region:.1f} % lost, 1 - r/s = {100 * (1 - rate / send_rate):.1f} %), "
        f"delay flat: a token-bucket policer, rate ≈ {rate / 1000:.2f} kB/s of payload "
        f"({rate_ip / 1000:.2f} kB/s as IP packets), "
        + (f"burst ≈ {depth / 1000:.2f} kB" if from_start else f"burst ≤ {depth / 1000:.2f} kB "
           f"(its start is not visible: first drop {t1 - t0:.1f} s into the stream)")
    )
    if periodic:
        summary += (
            f"; exactly one packet in {round(k)} is dropped, which any rate from {rate / 1000:.2f} up to "
            f"{send_rate / 1000:.2f} kB/s gives if the bucket is under two packets deep"
        )
    if trace.opaque:
        summary += " (loss inferred from cadence gaps: no sequence numbers)"
    if trace.opaque and periodic and round(k) == 2:
        # Every other beat missing, from one moment on, is also a sender that
        # moved from 20 to 40 ms packets (the lab's opaque codec downshift):
        # without sequence numbers the two look the same.
        confidence *= HALVED_CADENCE_DOUBT
        summary += "; or the sender halved its packet rate, which encrypted media cannot rule out"
    return Finding(
        pattern="policing",
        confidence=scale_confidence(trace, confidence, from_loss=True),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["policing"],
        spans=spans_of(trace, np.array([i1]), np.array([i2 - i1 + 1])),
        params=params,
    )
