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

from dataclasses import dataclass

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

    Two readings: a policed stretch (:func:`_policed_stretch`: many drops,
    evenly spaced or with the delivered bytes clamped to a line), and, for
    a few drops, a token bucket that drops exactly those packets
    (:func:`_bucket_episode`).

    Parameters
    ----------
    trace : Trace
    overhead : float
        Bytes added to each UDP payload when counting what the policer meters
        (e.g. 28 for IPv4 + UDP headers); 0 counts payload bytes.
    queue : Ramp, optional
        :func:`~callscope.diagnose.queue_delay.find_ramp` of the trace, when already
        computed.
    own : OwnQueue, optional
        The stream's own-queue fit (a shaper's queue vetoes a policer).
    """
    found = _policed_stretch(trace, overhead, queue, own)
    if found is None and BUCKET_MIN_DROPS <= trace.lost <= BUCKET_MAX_DROPS:
        found = _bucket_episode(trace, queue, own)
    return found


def _queue_veto(trace: Trace, loss_starts: np.ndarray, queue: Ramp | None, own: OwnQueue | None) -> tuple[float, float, float]:
    """How far no queue vetoes a policer: (factor in [0, 1], delay rise before
    the losses in s, steep queue ramp height in s).

    A queue shows as delay standing well above typical before the drops, in
    absolute terms as well as against the stream's own spread; only a ramp
    steep enough to be a rate clamp counts (slower drifts are clock skew or,
    on opaque media, a loss the cadence did not reveal). A queue its own load
    explains is a shaper's, which also clamps the rate and drops evenly once
    full (tc htb/tbf at 97 % of the media rate).
    """
    rise = pre_loss_rise(trace, loss_starts)
    if queue is None:
        queue = find_ramp(trace)
    queue_height = queue.height_s if queue is not None and queue.slope >= QUEUE_VETO_SLOPE else 0.0
    queued_before = min(ramp(rise.z, *QUEUED_Z), ramp(rise.rise_s, 0.3 * QUEUE_VETO_S, QUEUE_VETO_S))
    veto = ramp(queue_height, 2 * QUEUE_VETO_S, QUEUE_VETO_S) * (1.0 - queued_before)
    if own is not None:
        veto *= 1.0 - ramp(own.r2, OWN_QUEUE_DOUBT_R2, OWN_QUEUE_R2) * ramp(own.height_s, QUEUE_VETO_S, 2 * QUEUE_VETO_S)
    return veto, rise.rise_s, queue_height


def _policed_stretch(
    trace: Trace, overhead: float, queue: Ramp | None, own: OwnQueue | None
) -> Finding | None:
    """The policed-stretch reading of :func:`detect_policing`."""
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

    c_veto, rise_s, queue_height = _queue_veto(trace, runs.start + i1, queue, own)
    c_flat = ramp(flat, *FLAT_GOODPUT_CV)
    c_tb = ramp(tb_error, *REPLAY_ERROR)
    confidence = c_even * (0.5 + 0.25 * c_flat + 0.25 * c_tb) * c_runs * c_veto
    if confidence < 0.2:
        return None

    # A byte bucket that reproduces the drops pins the rate and depth exactly;
    # the goodput overstates the rate by depth / span (lab s8 VBR Opus behind
    # an nft byte limiter: goodput +5.9 %, fitted -0.4 %).
    goodput = rate
    fit = fitted_bucket(trace)
    exact = fit is not None and fit.mismatched <= BUCKET_RATE_MISMATCH * fit.drops
    if fit is not None and exact:
        payload = float(np.mean(trace.received_size))
        to_payload = payload / (payload + trace.header_bytes)
        rate_ip, rate, depth, from_start = fit.rate, fit.rate * to_payload, fit.depth * to_payload, True

    ms = 1000.0
    evidence: tuple[Evidence, ...] = (
        Evidence("loss_fraction", round(loss_region, 4)),
        Evidence("drop_spacing_cv", round(cv, 3)),
        Evidence("drop_spacing_mean", round(float(gaps.mean()), 2), "packets"),
        Evidence("longest_loss_run", max_run, "packets"),
        Evidence("runs_longer_than_bucket_allows", round(too_long, 3)),
        Evidence("goodput_window_cv", round(flat, 3)),
        Evidence("token_bucket_mismatch", round(tb_error, 3)),
        Evidence("delivered_bytes_clamp_ratio", round(clamp, 3)),
        Evidence("delay_rise_before_loss", round(rise_s * ms, 2), "ms"),
        Evidence("queue_delay_ramp", round(queue_height * ms, 1), "ms"),
        Evidence("send_rate", round(send_rate, 1), "B/s"),
    )
    if fit is not None:
        evidence += (Evidence("bucket_mismatched", fit.mismatched, "packets"),)
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
        f"while goodput holds at {goodput / 1000:.2f} kB/s of {send_rate / 1000:.2f} kB/s sent "
        f"({100 * loss_region:.1f} % lost, 1 - r/s = {100 * (1 - goodput / send_rate):.1f} %), "
        f"delay flat: a token-bucket policer, rate ≈ {rate / 1000:.2f} kB/s of payload "
        + ("(the byte bucket that drops those very packets) " if exact else "")
        + f"({rate_ip / 1000:.2f} kB/s as IP packets), "
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


#: A few drops (from :data:`BUCKET_MIN_DROPS` to :data:`BUCKET_MAX_DROPS`) are a
#: policer's when a token bucket drops exactly those packets and no others:
#: confidence from none to full between the two drop counts of
#: :data:`BUCKET_DROPS` and the two mismatch shares of
#: :data:`BUCKET_MISMATCH` (drops the best bucket misses plus deliveries it
#: would drop, over the drops). Lab seeds 3 and 6, both ends captured: byte
#: and packet policers 0.00-0.03 (a VBR policer at 92 % of the media rate
#: that bit 9 and 11 times in a loud spurt: 0), shapers 0.48-0.95, random,
#: bursty, congested and outage drops 0.83-1.00; one end (sizes of lost
#: packets unknown): the 92 % policer 0.00-0.09, random loss 0.86 and up.
#: Past :data:`BUCKET_MAX_DROPS` the policed-stretch test has the data it needs
#: (and a replay per candidate rate over a long lossy stream costs too much).
BUCKET_MIN_DROPS = 5
BUCKET_MAX_DROPS = 60
BUCKET_DROPS = (5, 10)
BUCKET_MISMATCH = (0.15, 0.05)
#: Mismatch share up to which a policed stretch takes its rate and depth from
#: the fitted bucket rather than the goodput (lab byte policers on VBR media:
#: 0.00-0.07 from one end; packets/second policers 0.66 and up).
BUCKET_RATE_MISMATCH = 0.10
#: Candidate bucket rates as fractions of the mean metered rate sent: a coarse
#: grid, then a fine one around its two best rates (a long stream pins the
#: rate to a fraction of a percent: the lab's nft rates came back exactly).
BUCKET_RATE_GRID = (0.2, 1.2, 0.004)
BUCKET_RATE_FINE = 0.0002
#: A policer lets traffic through after it drops: deliveries must go on for
#: this long after the last drop (s) and this many packets, or the drops are
#: a stop, not a rate limit.
BUCKET_AFTER_S = 1.0
BUCKET_AFTER_PACKETS = 25
#: Coefficient of variation of the packet sizes from which a byte bucket's
#: fit says more than "evenly spaced": G.711 and other constant-bitrate
#: codecs 0, the lab's Opus and encrypted voice 0.2-0.4.
BUCKET_MIN_SIZE_CV = 0.1
#: Slots either side whose largest received packet stands in for a lost
#: packet of unknown size (one end captured): about the 0.1-0.2 s over which
#: a loud spurt keeps its level.
BUCKET_SIZE_NEIGHBOURS = 5
#: History before the first drop over which the bucket is replayed (s): an
#: nft byte limiter holds rate x 1 s + burst, refilled within seconds by a
#: sender below its rate; 30 s of it is ample, and bounds the work.
BUCKET_HISTORY_S = 30.0
#: Most slots replayed per candidate rate (about 7 minutes at 50 packets/s):
#: a few drops spread wider than that are no single policing episode.
BUCKET_MAX_SLOTS = 20_000


@dataclass(frozen=True)
class BucketFit:
    """The token bucket (RFC 2697 single-rate, committed bucket) that best
    explains which packets were dropped."""

    rate: float  #: metered units (IP bytes) per second
    depth: float  #: metered units
    mismatched: int  #: drops it misses plus deliveries it would drop
    drops: int


def _bucket_mismatch(
    t: np.ndarray, metered: np.ndarray, lost: np.ndarray, delivered_before: np.ndarray, rate: float
) -> tuple[int, float]:
    """(mismatches, depth) of the best bucket depth at ``rate``.

    With the bucket full at ``t = 0`` and only delivered packets taking tokens,
    the tokens just before packet ``i`` are ``b - (Y_i - min_{j <= i} Y_j)``
    with ``Y_j = A_j - r t_j`` (``A_j`` the metered units delivered before
    ``j``, and ``Y = 0`` at the start): the clamp at ``b`` is the running
    minimum (the token-bucket arrival curve ``r t + b`` of network calculus,
    Le Boudec & Thiran, Network Calculus, 2001, §1.2.2). Packet ``i`` conforms
    when ``b >= z_i``, ``z_i = Y_i - min_{j <= i} Y_j + w_i``: one threshold on
    ``z`` splits kept from dropped, and the best ``b`` is where the fewest
    packets fall on the wrong side.
    """
    y = delivered_before - rate * t
    z = y - np.minimum.accumulate(np.minimum(y, 0.0)) + metered
    order = np.argsort(z, kind="stable")
    dropped = lost[order]
    kept_dropped = np.concatenate([[0], np.cumsum(dropped)])  # drops a bucket this deep would keep
    dropped_kept = np.count_nonzero(~dropped) - np.concatenate([[0], np.cumsum(~dropped)])
    wrong = kept_dropped + dropped_kept
    k = int(np.argmin(wrong))
    return int(wrong[k]), float(z[order[k - 1]]) if k else 0.0


def fit_token_bucket(send: np.ndarray, metered: np.ndarray, received: np.ndarray) -> BucketFit:
    """The bucket rate and depth whose drops best match the lost packets.

    ``send`` (s, in order), ``metered`` (what the policer counts per packet:
    IP bytes, or 1 for a packets/second policer), ``received``. The rate is
    searched over :data:`BUCKET_RATE_GRID` of the mean metered rate, then
    finely around the two best; for each rate the depth is exact
    (:func:`_bucket_mismatch`). Vectorised per candidate rate.
    """
    t = send - send[0]
    lost = ~received
    duration = max(float(t[-1]), 1e-9)
    mean_rate = float(metered.sum()) / duration
    delivered_before = np.concatenate([[0.0], np.cumsum(np.where(lost, 0.0, metered))[:-1]])
    lo, hi, step = BUCKET_RATE_GRID
    coarse = np.arange(lo, hi + step / 2, step)
    wrong = np.array([_bucket_mismatch(t, metered, lost, delivered_before, f * mean_rate)[0] for f in coarse])
    best = (np.iinfo(np.int64).max, 0.0, 0.0)
    for f0 in coarse[np.argsort(wrong, kind="stable")[:2]]:
        for f in f0 + np.arange(-step, step + BUCKET_RATE_FINE / 2, BUCKET_RATE_FINE):
            m, depth = _bucket_mismatch(t, metered, lost, delivered_before, f * mean_rate)
            if m < best[0]:
                best = (m, f * mean_rate, depth)
    return BucketFit(rate=best[1], depth=best[2], mismatched=int(best[0]), drops=int(np.count_nonzero(lost)))


def _metered_bytes(trace: Trace) -> np.ndarray:
    """IP bytes of each slot; a lost packet whose size is unknown takes the
    largest received within :data:`BUCKET_SIZE_NEIGHBOURS` slots (a policer
    drops the packets its tokens cannot cover: the larger ones nearby)."""
    wire = trace.size + trace.header_bytes
    if trace.lost_sizes_known or trace.received_count == 0:
        return wire
    k = BUCKET_SIZE_NEIGHBOURS
    known = np.where(trace.received, wire, -np.inf)
    padded = np.concatenate([np.full(k, -np.inf), known, np.full(k, -np.inf)])
    nearby = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1).max(axis=1)
    stand_in = np.where(np.isfinite(nearby), nearby, wire)
    return np.where(trace.received, wire, stand_in)


def fitted_bucket(trace: Trace) -> BucketFit | None:
    """:func:`fit_token_bucket` of a lossy stream whose sizes vary (else any
    evenly spaced drops fit: :data:`BUCKET_MIN_SIZE_CV`), over the slots from
    :data:`BUCKET_HISTORY_S` before its first loss (the bucket taken full
    there: a sender that ran below its rate for that long refilled it) to
    :data:`BUCKET_AFTER_S` after its last; None when not applicable or past
    :data:`BUCKET_MAX_SLOTS` (which bounds the work on an hour-long call)."""
    rec = trace.received
    lost_idx = np.flatnonzero(~rec)
    received_size = trace.received_size
    if lost_idx.size == 0 or received_size.size < 2:
        return None
    if float(np.std(received_size)) < BUCKET_MIN_SIZE_CV * float(np.mean(received_size)):
        return None
    first, last = float(trace.send[int(lost_idx[0])]), float(trace.send[int(lost_idx[-1])])
    window = np.flatnonzero((trace.send >= first - BUCKET_HISTORY_S) & (trace.send <= last + BUCKET_AFTER_S))
    if window.size > BUCKET_MAX_SLOTS:
        return None
    return fit_token_bucket(trace.send[window], _metered_bytes(trace)[window], rec[window])


def _bucket_episode(trace: Trace, queue: Ramp | None, own: OwnQueue | None) -> Finding | None:
    """A few drops that a token bucket explains exactly: a policer that bit briefly.

    A variable-rate sender just under a policer's rate loses packets only in
    its loudest spurts: too few drops, too close together, for the evenly
    spaced test. Which packets a token bucket drops is fixed by the sizes and
    times of everything sent, so a bucket that reproduces the drop set (and
    drops nothing else) is evidence no chance loss gives. Only a byte
    bucket, on variable sizes: see :data:`BUCKET_MIN_SIZE_CV`.
    """
    rec = trace.received
    lost_idx = np.flatnonzero(~rec)
    last = int(lost_idx[-1])
    after = rec[last + 1 :]
    if (np.count_nonzero(after) < BUCKET_AFTER_PACKETS
            or float(trace.time[-1] - trace.time[last]) < BUCKET_AFTER_S):
        return None
    runs = loss_runs(rec)
    if runs.count < 3:
        return None  # a policer drops again and again, never in one or two stretches
    fit = fitted_bucket(trace)
    if fit is None:
        return None
    received_size = trace.received_size
    share = fit.mismatched / fit.drops
    c_fit = ramp(share, *BUCKET_MISMATCH) * ramp(fit.drops, *BUCKET_DROPS)
    if c_fit < 0.2:
        return None
    c_veto, rise_s, queue_height = _queue_veto(trace, runs.start, queue, own)
    confidence = c_fit * c_veto
    if confidence < 0.2:
        return None
    i1 = int(lost_idx[0])
    t1, t2 = float(trace.time[i1]), float(trace.time[last])
    payload = float(np.mean(received_size))
    to_payload = payload / (payload + trace.header_bytes)
    rate, depth = fit.rate * to_payload, fit.depth * to_payload
    ms = 1000.0
    evidence = (
        Evidence("loss_fraction", round(trace.loss_fraction, 4)),
        Evidence("lost", fit.drops, "packets"),
        Evidence("loss_events", runs.count),
        Evidence("bucket_mismatched", fit.mismatched, "packets"),
        Evidence("bucket_rate", round(fit.rate, 1), "B/s"),
        Evidence("bucket_depth", round(fit.depth, 1), "B"),
        Evidence("delay_rise_before_loss", round(rise_s * ms, 2), "ms"),
        Evidence("queue_delay_ramp", round(queue_height * ms, 1), "ms"),
    )
    params = (
        Evidence("rate_Bps", round(rate, 1), "B/s"),
        Evidence("rate_ip_Bps", round(fit.rate, 1), "B/s"),
        Evidence("burst_bytes", round(depth, 1), "B"),
        Evidence("onset_s", round(t1, 3), "s"),
    )
    m = fit.mismatched
    exact = "exactly those" if m == 0 else f"those, bar {m} packet{'s' if m > 1 else ''},"
    summary = (
        f"{fit.drops} packets lost between {t1:.1f} and {t2:.1f} s ({100 * trace.loss_fraction:.2f} %), "
        f"{exact} a token bucket of {fit.rate:,.0f} IP bytes/s and {fit.depth:,.0f} B depth "
        f"drops from what was sent, with delivery going on after: a policer that bit when the sender "
        f"peaked, rate ≈ {rate / 1000:.2f} kB/s of payload"
    )
    if trace.opaque:
        summary += " (loss inferred from cadence gaps: no sequence numbers)"
    return Finding(
        pattern="policing",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["policing"],
        spans=spans_of(trace, np.array([i1]), np.array([last - i1 + 1])),
        params=params,
    )
