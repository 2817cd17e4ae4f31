"""Ordinary loss: random or bursty.

- *random-loss*: independent losses; the Gilbert chain's burst ratio
  ``1/(p + r)`` is about 1 (ITU-T G.113 Appendix I) and the spacing of loss
  events is irregular (coefficient of variation about 1, as for a Bernoulli
  process; evenly spaced drops are not random, :data:`PERIODIC_CV`).
- *bursty-loss*: losses cluster (burst ratio > 1.5; RFC 3611 §4.7.2 burst
  density well above gap density) with no delay rise before them (radio
  fading, a dropper acting in bursts).

Loss that comes while one-way delay stands high is congestion
(:mod:`callscope.diagnose.congestion`), which takes precedence.
"""

from __future__ import annotations

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence, spans_of
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.queue_delay import PreLossRise, delay_spread, pre_loss_rise
from callscope.diagnose.trace import Trace
from callscope.metrics.loss_structure import bernoulli_loglik, fit_gilbert_elliott, loss_structure

#: Below this loss a stream is clean (docs/architecture.md pattern table: loss < 0.5 %).
CLEAN_LOSS = 0.005
#: Gilbert burst ratio above which loss is called bursty (docs/architecture.md, pattern table).
BURSTY_RATIO = 1.5
#: Burst ratios from here up to BURSTY_RATIO are settled by a likelihood-ratio test.
BORDERLINE_RATIO = 1.1
#: Burst-ratio ramps of the two verdicts (none at the first value, full at
#: the second), around :data:`BURSTY_RATIO`: set on the simulator corpus and
#: held on the lab (kernel random loss: burst ratio 0.9-1.1; Gilbert-Elliott
#: dropping: 2-10).
BURSTY_RAMP = (1.2, 2.0)
RANDOM_RAMP = (1.8, 1.3)
#: 2 x log-likelihood ratio above which the Gilbert-Elliott channel (3 more
#: parameters than independent loss) fits significantly better: the 0.999
#: quantile of chi-squared with 3 degrees of freedom.
LRT_CRITICAL = 16.27
#: Losses all within this span (s) are one dropout, however many runs.
SINGLE_DROPOUT_S = 1.0
#: Fewest loss events for a loss-structure estimate to be more than a guess.
MIN_EVENTS = 8
#: Spacing of independent losses: the gaps between loss events of a Bernoulli
#: process are geometric, coefficient of variation sqrt(1 - p(1 - p)) >= 0.87.
#: Evenly spaced drops (a policer, a shaper's tail drops, a test harness
#: dropping every n-th packet) are not chance: confidence halves at or below
#: the first CV, full from the second (the loss is still single packets, so
#: still this pattern unless a policer or shaper explains it better).
#: Lab s1/s2/lab-v1: random loss 0.60-1.34 (8-129 events), policers and
#: shapers with even drops 0.00-0.22.
PERIODIC_CV = 0.25
IRREGULAR_CV = 0.45
PERIODIC_DOUBT = 0.5


def detect_loss_pattern(trace: Trace, rise: PreLossRise | None = None) -> Finding | None:
    """random-loss or bursty-loss, or None when the loss is negligible.

    ``rise``: :func:`~callscope.diagnose.queue_delay.pre_loss_rise` at the trace's
    loss runs, when already computed.
    """
    rec = trace.received
    lost = trace.lost
    if lost == 0 or trace.loss_fraction < CLEAN_LOSS:
        return None
    # The same burst/gap densities and burst ratio as the metrics table shows.
    ls = loss_structure(rec, trace.ptime * 1000.0)
    runs = trace.loss_runs
    if rise is None:
        rise = pre_loss_rise(trace, runs.start)
    gaps = np.diff(runs.start).astype(np.float64)
    cv = float(gaps.std() / gaps.mean()) if gaps.size >= 2 and gaps.mean() > 0 else float("nan")
    spread = delay_spread(trace)
    burst_ratio = ls.burst_ratio
    thin = runs.count < MIN_EVENTS
    c_data = ramp(runs.count, 1, MIN_EVENTS)

    ml = None
    clustered = 0.0
    if not thin and BORDERLINE_RATIO <= burst_ratio < BURSTY_RATIO:
        # A mild burst ratio is settled by a likelihood-ratio test of the
        # Gilbert-Elliott channel against independent loss (3 more parameters).
        ml = fit_gilbert_elliott(rec)
        clustered = 2.0 * (ml.loglik - bernoulli_loglik(rec))
    if burst_ratio >= BURSTY_RATIO or clustered >= LRT_CRITICAL or (thin and runs.length.max() >= 3):
        pattern = "bursty-loss"
        # A few long runs are bursty beyond doubt, however few they are.
        if thin:
            confidence = 0.6
        elif burst_ratio >= BURSTY_RATIO:
            confidence = ramp(burst_ratio, *BURSTY_RAMP)
        else:
            confidence = ramp(clustered, 0.5 * LRT_CRITICAL, 2.0 * LRT_CRITICAL)
    else:
        pattern = "random-loss"
        confidence = ramp(burst_ratio, *RANDOM_RAMP) * (1.0 - ramp(clustered, 0.5 * LRT_CRITICAL, LRT_CRITICAL))
        if not thin:
            confidence *= PERIODIC_DOUBT + (1 - PERIODIC_DOUBT) * ramp(cv, PERIODIC_CV, IRREGULAR_CV)
    if not thin or pattern == "random-loss":
        confidence *= 0.4 + 0.6 * c_data
    # Counted loss (sequence numbers) at or above the clean bound is not
    # clean: the bound is the taxonomy's, the count exact. Loss inferred from
    # cadence gaps is uncertain by a few packets: just above the bound, the
    # bound itself is within that error.
    if trace.opaque:
        confidence *= ramp(trace.loss_fraction, CLEAN_LOSS, 2 * CLEAN_LOSS)

    ms = 1000.0
    evidence = (
        Evidence("loss_fraction", round(trace.loss_fraction, 4)),
        Evidence("lost", lost, "packets"),
        Evidence("loss_events", runs.count),
        Evidence("longest_loss_run", int(runs.length.max()), "packets"),
        Evidence("gilbert_burst_ratio", round(burst_ratio, 3)),
        Evidence("clustering_lrt", round(clustered, 2)),
        Evidence("burst_density", round(ls.burst_density, 4)),
        Evidence("gap_density", round(ls.gap_density, 4)),
        Evidence("loss_spacing_cv", round(cv, 3)),
        Evidence("delay_rise_before_loss", round(rise.rise_s * ms, 2), "ms"),
        Evidence("delay_rise_z", round(rise.z, 2)),
        Evidence("losses_at_high_delay", round(rise.fraction, 3)),
        Evidence("delay_spread_p5_p95", round(spread * ms, 2), "ms"),
    )
    # The two-state fit above puts every loss in the bad state; a bursty
    # channel also drops in its good state and delivers some in its bad one,
    # which only the four-parameter maximum-likelihood fit separates.
    if pattern == "bursty-loss" and not thin:
        ml = ml if ml is not None else fit_gilbert_elliott(rec)
        p_est, r_est, k_est, h_est = ml.p, ml.r, ml.loss_good, ml.loss_bad
    else:
        p_est, r_est, k_est, h_est = ls.gilbert_p, ls.gilbert_q, 0.0, 1.0
    params = (
        Evidence("p", round(p_est, 5)),
        Evidence("r", round(r_est, 5)),
        Evidence("loss_good", round(k_est, 5)),
        Evidence("loss_bad", round(h_est, 4)),
        Evidence("burst_ratio", round(burst_ratio, 3)),
        Evidence("loss_fraction", round(trace.loss_fraction, 5)),
        Evidence("onset_s", round(float(trace.time[runs.start[0]]), 3), "s"),
        Evidence("packets_expected", trace.slots, "packets"),
    )
    pct = 100 * trace.loss_fraction
    longest_ms = int(runs.length.max()) * trace.ptime * ms
    first_t = float(trace.time[runs.start[0]])
    last_t = float(trace.time[runs.start[-1] + runs.length[-1] - 1]) + trace.ptime
    single = thin and last_t - first_t <= SINGLE_DROPOUT_S
    if single:
        summary = (
            f"all {lost} lost packets ({pct:.1f} %) fall in one {1000 * (last_t - first_t):.0f} ms "
            f"dropout at {first_t:.2f} s ({runs.count} run{'s' if runs.count > 1 else ''}; the longest, "
            f"{runs.length.max()} packets, left {(runs.length.max() + 1) * trace.ptime * ms:.0f} ms between "
            f"arrivals): a single short outage, not a repeated pattern"
        )
    elif pattern == "bursty-loss":
        summary = (
            f"{pct:.1f} % lost in bursts (Gilbert-Elliott p {p_est:.4f}, r {r_est:.3f}, loss "
            f"{100 * k_est:.1f} % / {100 * h_est:.0f} % in the good / bad state; BurstR {burst_ratio:.2f}; "
            f"longest {runs.length.max()} packets = {longest_ms:.0f} ms) with no delay rise before them"
        )
    else:
        summary = (
            f"{pct:.1f} % lost as scattered single packets (BurstR {burst_ratio:.2f}, spacing CV "
            f"{cv:.2f}) with no delay rise before them: random loss"
        )
        if not thin and cv <= PERIODIC_CV:
            summary = (
                f"{pct:.1f} % lost as single packets evenly spaced, one every {float(np.median(gaps)):.0f} "
                f"(BurstR {burst_ratio:.2f}, spacing CV {cv:.2f}), with no delay rise before them: not "
                f"chance but a periodic dropper that no rate limit explains"
            )
    if thin and runs.count > 1 and last_t - first_t > SINGLE_DROPOUT_S:
        summary += f"; only {runs.count} loss events, so the loss structure is a rough estimate"
    if trace.opaque:
        summary += " (loss inferred from cadence gaps: no sequence numbers)"
    audible = AUDIBLE[pattern]
    if longest_ms >= 150:
        audible += f"; the longest gap ({longest_ms:.0f} ms) is an audible dropout"
    return Finding(
        pattern=pattern,
        confidence=scale_confidence(trace, confidence, from_loss=True),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=audible,
        spans=spans_of(trace, runs.start[runs.length >= 3], runs.length[runs.length >= 3])[:50],
        params=params,
    )
