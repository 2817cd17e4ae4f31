"""Intermittent outages: repeated runs of total loss separated by clean service.

An on/off blackhole (a middlebox that drops a flow for a while, lets it
through, drops it again) leaves runs of 100 % loss of hundreds of
milliseconds with clean stretches between them, often on a fixed period.
The period is read from the autocorrelation of the per-slot outage
indicator (the first peak after lag zero, Wiener-Khinchin via the FFT) and
checked against the spacing of the outage starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence, spans_of
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import Trace
from callscope.metrics.loss_structure import Runs

#: Shortest run of total loss that counts as an outage (docs/architecture.md, pattern table).
MIN_OUTAGE_S = 0.2
#: Fewest outages that make the pattern intermittent (docs/architecture.md, pattern table).
MIN_OUTAGES = 3
#: Median service between outages must last this long (s): on/off blocking
#: lets the flow through for a while each time.
MIN_ON_S = 0.5
#: Confidence ramps (none at the first value, full at the second): the share
#: of all loss inside the outages, and the delivery between them. set on the simulator corpus against DESIGN.md's pattern table; unchanged since, and held on lab-v1 (1.00) and the lab corpora
#: (lab outages: 100 % of loss in outages, delivery between >= 99.9 %).
OUTAGE_DOMINANCE = (0.6, 0.9)
CLEAN_BETWEEN = (0.9, 0.98)


@dataclass(frozen=True)
class Outages:
    """Runs of total loss of at least :data:`MIN_OUTAGE_S`, and the rest of the loss."""

    runs: Runs
    durations: np.ndarray
    lost_in_outages: int
    lost_elsewhere: int


def find_outages(trace: Trace, min_s: float = MIN_OUTAGE_S) -> Outages:
    """The loss runs lasting ``min_s`` or longer (duration = run length × ptime)."""
    runs = trace.loss_runs
    dur = runs.length * trace.ptime
    # A tolerance of a twentieth of an interval: an interval measured from
    # capture timestamps (two-point) is a hair off the nominal one.
    long = dur >= min_s - 0.05 * trace.ptime
    kept = Runs(runs.start[long], runs.length[long])
    inside = int(runs.length[long].sum())
    return Outages(kept, dur[long], inside, int(runs.length.sum()) - inside)


def autocorrelation_period(indicator: np.ndarray, min_lag: int) -> tuple[int, float]:
    """Lag of the highest autocorrelation peak at or beyond ``min_lag`` and its value.

    The normalised autocorrelation of the mean-removed indicator, computed as
    the inverse FFT of the power spectrum (Wiener-Khinchin theorem).
    """
    x = indicator.astype(np.float64) - indicator.mean()
    n = x.size
    if n < 2 * min_lag + 2 or not np.any(x):
        return 0, 0.0
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    # Unbiased for the shrinking overlap, limited to lags with at least half the data.
    lags = np.arange(n)
    acf = acf * n / np.maximum(n - lags, 1)
    hi = n // 2
    if hi <= min_lag:
        return 0, 0.0
    seg = acf[min_lag:hi]
    k = int(np.argmax(seg))
    return min_lag + k, float(seg[k])


def detect_outages(trace: Trace) -> Finding | None:
    """An intermittent-outage finding or None (fewer than three outages)."""
    out = find_outages(trace)
    if out.runs.count < MIN_OUTAGES:
        return None
    lost_total = out.lost_in_outages + out.lost_elsewhere
    dominance = out.lost_in_outages / lost_total if lost_total else 0.0
    starts_t = trace.time[out.runs.start]
    diffs = np.diff(starts_t)
    spacing_cv = float(diffs.std() / diffs.mean()) if diffs.size >= 2 else 1.0

    indicator = np.zeros(trace.slots, bool)
    for s, n in zip(out.runs.start.tolist(), out.runs.length.tolist(), strict=True):
        indicator[s : s + n] = True
    min_lag = int(out.runs.length.min()) + 1
    lag, peak = autocorrelation_period(indicator, min_lag)
    period = float(np.median(diffs))
    if lag > 0 and peak >= 0.3 and abs(lag * trace.ptime - period) <= 0.15 * period:
        period = lag * trace.ptime
    periodic = spacing_cv < 0.2 or peak >= 0.5

    # Service between outages must be mostly clean: otherwise this is heavy bursty loss.
    clean_between = float(np.count_nonzero(trace.received[~indicator])) / max(
        1, int(np.count_nonzero(~indicator))
    )
    mean_dur = float(out.durations.mean())
    duty = mean_dur / period if period > 0 else 0.0
    # Service between outages must last: a few packets between long gaps is a
    # flow that is sparse or still starting, not one switched on and off.
    ends = out.runs.start + out.runs.length
    on_runs = (trace.time[out.runs.start[1:]] - trace.time[ends[:-1] - 1]) - trace.ptime
    on_median = float(np.median(on_runs))
    c_count = ramp(out.runs.count, MIN_OUTAGES - 1, MIN_OUTAGES + 1)
    c_dom = ramp(dominance, *OUTAGE_DOMINANCE)
    c_clean = ramp(clean_between, *CLEAN_BETWEEN)
    c_long = ramp(mean_dur, MIN_OUTAGE_S, 2 * MIN_OUTAGE_S)
    c_on = ramp(on_median, 0.5 * MIN_ON_S, MIN_ON_S)
    confidence = c_dom * c_clean * c_on * (0.5 + 0.2 * c_count + 0.3 * (1.0 if periodic else c_long))
    if confidence < 0.2:
        return None

    evidence = (
        Evidence("outages", out.runs.count),
        Evidence("outage_mean", round(mean_dur * 1000, 1), "ms"),
        Evidence("outage_max", round(float(out.durations.max()) * 1000, 1), "ms"),
        Evidence("loss_in_outages", round(dominance, 3)),
        Evidence("delivery_between_outages", round(clean_between, 4)),
        Evidence("service_between_median", round(on_median, 3), "s"),
        Evidence("start_spacing_cv", round(spacing_cv, 3)),
        Evidence("autocorrelation_peak", round(peak, 3)),
    )
    params = (
        Evidence("period_s", round(period, 3), "s"),
        Evidence("outage_s", round(mean_dur, 3), "s"),
        Evidence("duty_cycle", round(duty, 3)),
        Evidence("count", out.runs.count),
        Evidence("onset_s", round(float(starts_t[0]), 3), "s"),
    )
    rhythm = (
        f"every {period:.2f} s (CV {spacing_cv:.2f}, autocorrelation {peak:.2f})"
        if periodic
        else f"at irregular intervals (mean {float(diffs.mean()):.2f} s, CV {spacing_cv:.2f})"
    )
    summary = (
        f"{out.runs.count} outages of total loss, {mean_dur * 1000:.0f} ms on average, {rhythm}, "
        f"{100 * dominance:.0f} % of all loss inside them and {100 * clean_between:.1f} % delivered "
        f"between them: intermittent on/off blocking (duty cycle {100 * duty:.0f} %)"
    )
    if trace.opaque:
        summary += " (gaps in the packet cadence: no sequence numbers)"
    return Finding(
        pattern="intermittent-outage",
        confidence=scale_confidence(trace, confidence, from_loss=True),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["intermittent-outage"],
        spans=spans_of(trace, out.runs.start, out.runs.length),
        params=params,
    )
