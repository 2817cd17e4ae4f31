"""Plots of a :class:`~callscope.analysis.Report`: timelines, loss structure, distributions.

Every function returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so nothing is kept in a global figure registry and no display is
needed); :func:`save_plots` writes them all. matplotlib is imported on first
use with the Agg backend forced, so the other commands never pay for it.

Figures read at a glance: the title names the stream (addresses, SSRC,
codec) and its verdict, every axis has a unit, constrained layout keeps
labels apart, and the time axis ticks in seconds, mm:ss or h:mm:ss with a
step that suits a 10 s call as well as a 2 h one.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import numpy as np

from callscope.report.text import terminal_safe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from callscope.analysis import Report
    from callscope.diagnose.findings import Finding
    from callscope.media.stream import MediaStream
    from callscope.report.audio import Rendering

P = ParamSpec("P")
R = TypeVar("R")

#: Tick steps (s) the time axis may use: round numbers of seconds, minutes, hours.
TIME_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
MAX_TIME_TICKS = 10
#: One colour per pattern, so a pattern looks the same in every figure.
PATTERN_COLOURS = {
    "random-loss": "#9467bd",
    "bursty-loss": "#8c564b",
    "congestion": "#ff7f0e",
    "intermittent-outage": "#d62728",
    "policing": "#e377c2",
    "shaping": "#bcbd22",
    "cutoff": "#7f7f7f",
    "one-way": "#17becf",
    "setup-blocked": "#1f1f1f",
    "jitter": "#2ca02c",
    "codec-downshift": "#1f77b4",
}
DIRECTION_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
SPAN_ALPHA = 0.18
MAX_LINE_POINTS = 20_000  # longer per-packet series are drawn as per-bin range and median
ENVELOPE_BINS = 1_000
MAX_WINDOWS = 600  # more windows than this are merged for display
LINE_BREAK_FACTOR = 10  # a gap of this many median packet intervals breaks a per-packet line
LINE_BREAK_MIN_S = 0.2  # ... and never less than this (s)
LABEL_STEP_PT = 12  # vertical distance between stacked finding labels, points
FONT_SIZE = 10
DPI = 110
MOS_RANGE = (1.0, 4.5)  # ITU-T P.800 scale; the E-model tops out near 4.5 (G.107 Annex B)
#: Windows with a spectrogram: FFT length and overlap at 8 kHz (32 ms, 50 %).
SPECTROGRAM_NFFT = 256
SPECTROGRAM_OVERLAP = 128
SPECTROGRAM_MAX_COLUMNS = 2400  # more time columns than a figure has pixels are wasted
SPECTROGRAM_BLOCK = 64  # columns computed at once for long signals
#: Longest loss run drawn on the run-length axis (longer runs share the last bin).
MAX_RUN_BIN = 60
#: Run lengths always shown, so the models' predictions for longer runs are visible.
MIN_RUN_BINS = 8


#: rcParams every figure is built (and saved) with; applied in a context, so a
#: user's own matplotlib settings are left as they were.
STYLE = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE + 2,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
    # Titles and legends carry capture text (codec names from SDP, Call-IDs):
    # "$...$" in it must be shown as written, not parsed as mathtext (which
    # raises on malformed TeX and renders whatever a capture asks for).
    "text.parse_math": False,
    "text.usetex": False,
}


def _matplotlib():
    """Import matplotlib with the Agg backend forced (no display, no GUI toolkit).

    Figures here never go through pyplot, so any backend could render them;
    Agg is forced so that nothing ever looks for a display. A session that
    already imported pyplot (a notebook with its inline backend) keeps its
    backend.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


def _styled(build: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder under :data:`STYLE`."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _matplotlib().rc_context(STYLE):
            return build(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


# --------------------------------------------------------------------- time axis


def format_clock(seconds: float, span_s: float) -> str:
    """A time label in the unit that suits a span: ``12.5 s``, ``03:20`` or ``1:03:20``.

    Examples
    --------
    >>> format_clock(7.5, 10), format_clock(200, 600), format_clock(3800, 7200)
    ('7.5 s', '03:20', '1:03:20')
    """
    if span_s < 120:
        text = f"{seconds:.1f}".rstrip("0").rstrip(".")
        return f"{text} s"
    sign = "-" if seconds < 0 else ""
    whole = int(round(abs(seconds)))
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    if span_s < 3600:
        return f"{sign}{m:02d}:{s:02d}"
    return f"{sign}{h}:{m:02d}:{s:02d}"


def time_step(span_s: float, max_ticks: int = MAX_TIME_TICKS) -> float:
    """The smallest round step that puts at most ``max_ticks`` ticks on a span."""
    for step in TIME_STEPS_S:
        if span_s / step <= max_ticks:
            return float(step)
    return float(TIME_STEPS_S[-1] * math.ceil(span_s / (TIME_STEPS_S[-1] * max_ticks)))


def set_time_axis(ax: Axes, start_s: float, end_s: float, *, label: bool = True) -> None:
    """Limit ``ax`` to ``[start_s, end_s]`` with round ticks and clock labels."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = max(end_s - start_s, 1e-3)
    ax.set_xlim(start_s, start_s + span)
    ax.xaxis.set_major_locator(MultipleLocator(time_step(span)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_clock(x, span)))
    if label:
        unit = "s" if span < 120 else ("mm:ss" if span < 3600 else "h:mm:ss")
        ax.set_xlabel(f"time since capture start ({unit})")


# --------------------------------------------------------------------- helpers


def stream_title(stream: MediaStream) -> str:
    """``s1  10.0.0.1:4000 → 10.0.0.2:5000  SSRC 0x0A7328F3  PCMU``."""
    parts = [stream.id, f"{stream.src}:{stream.src_port} → {stream.dst}:{stream.dst_port}"]
    if stream.ssrc is not None:
        parts.append(f"SSRC 0x{stream.ssrc:08X}")
    if stream.codec:
        parts.append(terminal_safe(stream.codec))
    elif stream.kind != "rtp":
        parts.append("opaque media")
    return "   ".join(parts)


def findings_for(report: Report, stream_id: str) -> list[Finding]:
    """Findings about a stream, or about the call it belongs to."""
    calls = {c.id for c in report.inventory.calls if stream_id in c.stream_ids}
    return [
        f
        for f in report.diagnosis.findings
        if f.stream_id == stream_id or (f.stream_id is None and f.call_id in calls)
    ]


def _stream_subtitle(report: Report, stream: MediaStream) -> str:
    m = report.metrics[stream.id]
    verdict = report.diagnosis.stream_verdicts.get(stream.id, "clean")
    loss = f"loss {100 * m.loss_fraction:.1f} %" + (" (inferred)" if m.loss_inferred else "")
    return f"verdict: {verdict}   {loss}   MOS {m.mos:.2f}   {m.packets} packets in {m.duration_s:.1f} s"


def _shade_findings(axes: Sequence[Axes], findings: Sequence[Finding]) -> list:
    """Shade every span of every finding on all axes; label each span on the top axis.

    Returns the legend handles (one patch per pattern). Labels of different
    patterns are stacked so that findings sharing a span stay readable.
    """
    from matplotlib.patches import Patch

    handles: dict[str, Patch] = {}
    top = axes[0]
    for f in findings:
        colour = PATTERN_COLOURS.get(f.pattern, "#999999")
        for start, end in f.spans:
            for ax in axes:
                ax.axvspan(start, max(end, start + 1e-3), color=colour, alpha=SPAN_ALPHA, lw=0, label="_span")
        if f.spans and f.pattern not in handles:
            first = f.spans[0][0]
            top.annotate(
                f.pattern, xy=(first, 1.0), xycoords=("data", "axes fraction"),
                xytext=(2, -2 - LABEL_STEP_PT * len(handles)),
                textcoords="offset points", va="top", ha="left", fontsize=FONT_SIZE - 1, color=colour,
                fontweight="bold", clip_on=True, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.75, "lw": 0},
            )
            handles[f.pattern] = Patch(color=colour, alpha=0.4, label=f"{f.pattern} ({f.confidence:.2f})")
    return list(handles.values())


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="#666666")


def _finite(x: np.ndarray) -> bool:
    return bool(np.isfinite(np.asarray(x, np.float64)).any())


def _packet_line(ax: Axes, t: np.ndarray, y: np.ndarray, colour: str) -> None:
    """A per-packet series as a line that does not bridge silences or outages.

    The line is broken (a NaN inserted) where packets are more than
    ``LINE_BREAK_FACTOR`` median intervals (and ``LINE_BREAK_MIN_S``) apart, so
    a gap reads as a gap rather than a ramp; small dots keep lone packets visible.
    """
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    if t.size > MAX_LINE_POINTS:
        _envelope(ax, t, y, colour)
        return
    if t.size > 1:
        dt = np.diff(t)
        limit = max(LINE_BREAK_FACTOR * float(np.median(dt)), LINE_BREAK_MIN_S)
        cut = np.flatnonzero(dt > limit) + 1
        t = np.insert(t, cut, np.nan)
        y = np.insert(y, cut, np.nan)
    ax.plot(t, y, lw=0.7, color=colour, marker=".", ms=1.5)


def _envelope(ax: Axes, t: np.ndarray, y: np.ndarray, colour: str) -> None:
    """A long per-packet series as its per-bin range (shaded) and median (line).

    Hundreds of thousands of points drawn as one line are a solid block; the
    range and median over ``ENVELOPE_BINS`` bins show the same extremes and
    the typical value. Empty bins (outages) stay gaps.
    """
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size == 0:
        return
    edges = np.linspace(t[0], t[-1], ENVELOPE_BINS + 1)
    b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, ENVELOPE_BINS - 1)
    order = np.lexsort((y, b))
    b, y = b[order], y[order]
    first = np.searchsorted(b, np.arange(ENVELOPE_BINS), side="left")
    last = np.searchsorted(b, np.arange(ENVELOPE_BINS), side="right") - 1
    has = last >= first
    lo = np.where(has, y[np.minimum(first, y.size - 1)], np.nan)
    hi = np.where(has, y[np.maximum(last, 0)], np.nan)
    mid = np.where(has, y[np.clip((first + last) // 2, 0, y.size - 1)], np.nan)
    x = 0.5 * (edges[:-1] + edges[1:])
    ax.fill_between(x, lo, hi, color=colour, alpha=0.3, lw=0, label="range per bin")
    ax.plot(x, mid, color=colour, lw=0.9, label="median per bin")


def _coarse_windows(tl) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """The timeline merged into at most ``MAX_WINDOWS`` windows for display.

    Loss is recomputed from the merged counts (lost / expected); bitrate and
    MOS are averaged over the merged windows. Returns start, width, loss %,
    bitrate, MOS.
    """
    k = max(1, int(math.ceil(tl.start_s.size / MAX_WINDOWS)))
    loss = 100 * np.nan_to_num(tl.loss_fraction)
    if k == 1:
        return tl.start_s, tl.window_s, loss, tl.bitrate_kbps, tl.mos
    n = tl.start_s.size
    idx = np.arange(n) // k
    m = int(idx[-1]) + 1
    lost = np.bincount(idx, weights=tl.lost, minlength=m)
    expected = np.bincount(idx, weights=tl.expected, minlength=m)
    count = np.bincount(idx, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(expected > 0, 100 * lost / np.maximum(expected, 1), 0.0)
    bitrate = np.bincount(idx, weights=tl.bitrate_kbps, minlength=m) / count
    mos_ok = np.isfinite(tl.mos)
    mos_n = np.bincount(idx[mos_ok], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mos = np.bincount(idx[mos_ok], weights=tl.mos[mos_ok], minlength=m) / mos_n
    return tl.start_s[::k], tl.window_s * k, loss, bitrate, np.where(mos_n > 0, mos, np.nan)


def _step(ax: Axes, start: np.ndarray, window_s: float, values: np.ndarray, **kw) -> None:
    """Per-window values as a step line covering each window."""
    if start.size == 0:
        return
    x = np.concatenate([start, [start[-1] + window_s]])
    y = np.concatenate([values, [values[-1]]])
    ax.step(x, y, where="post", **kw)


# --------------------------------------------------------------------- timeline

#: Panels of the timeline, top to bottom: (key, y label).
TIMELINE_PANELS = (
    ("delta", "inter-arrival\nΔ (ms)"),
    ("jitter", "jitter RFC 3550\n(ms)"),
    ("delay", "relative one-way\ndelay (ms)"),
    ("loss", "loss per window\n(%)"),
    ("bitrate", "bitrate\n(kbit/s)"),
    ("mos", "MOS\n(E-model)"),
)


@_styled
def timeline_figure(report: Report, stream_id: str) -> Figure:
    """One stream over time: Δ, jitter, delay, loss events, bitrate and MOS.

    Per-packet series (Δ, running jitter, relative delay; Wireshark's and
    RFC 3550 §6.4.1 definitions, :mod:`callscope.metrics`) are lines; loss,
    bitrate and MOS are per window of the stream's :class:`Timeline`. Every
    lost packet is a tick at the top of the loss panel (bursts read as solid
    bars). The spans of each finding are shaded on all panels.

    Parameters
    ----------
    report : Report
    stream_id : str

    Returns
    -------
    Figure
        Six axes sharing the time axis, in the order of :data:`TIMELINE_PANELS`.
    """
    stream = report.inventory.stream(stream_id)
    m = report.metrics[stream_id]
    pp, tl = m.per_packet, m.timeline
    fig = _figure(11, 10.5)
    axes = fig.subplots(len(TIMELINE_PANELS), 1, sharex=True)
    ax = dict(zip((k for k, _ in TIMELINE_PANELS), axes, strict=True))
    for a, (_, label) in zip(axes, TIMELINE_PANELS, strict=True):
        a.set_ylabel(label)

    t = pp.time_s
    _packet_line(ax["delta"], t, pp.delta_ms, "#1f77b4")
    if stream.ssrc is None:
        _no_data(ax["jitter"], "no RTP timestamps: jitter is not defined")
        _no_data(ax["delay"], "no RTP timestamps: delay is not defined")
    else:
        if _finite(pp.jitter_ms):
            _packet_line(ax["jitter"], t, pp.jitter_ms, "#ff7f0e")
        else:
            _no_data(ax["jitter"], "no clock rate: jitter not measurable")
        if _finite(pp.delay_ms):
            _packet_line(ax["delay"], t, pp.delay_ms, "#2ca02c")
        else:
            _no_data(ax["delay"], "no clock rate: delay not measurable")

    w_start, w_len, loss_pct, bitrate, mos = _coarse_windows(tl)
    if w_start.size:
        ax["loss"].bar(w_start, loss_pct, width=w_len, align="edge", color="#d62728", alpha=0.55,
                       label=f"lost in window ({w_len:g} s)")
    lost_t = pp.lost_time_s
    ax["loss"].set_ylim(0, 112)
    if lost_t.size:
        ax["loss"].vlines(lost_t, 102, 110, color="#7f0000", lw=0.8,
                          label=f"each lost packet ({lost_t.size})")
        ax["loss"].legend(loc="center left", fontsize=FONT_SIZE - 2, framealpha=0.8)
    _step(ax["bitrate"], w_start, w_len, bitrate, color="#9467bd", lw=1.0)
    _step(ax["mos"], w_start, w_len, mos, color="#17becf", lw=1.2)
    if w_len != tl.window_s:
        for a in (ax["bitrate"], ax["mos"]):
            a.annotate(f"mean per {w_len:g} s", xy=(1, 1), xycoords="axes fraction", xytext=(-4, -4),
                       textcoords="offset points", ha="right", va="top", fontsize=FONT_SIZE - 2, color="#555555")
    ax["mos"].set_ylim(*MOS_RANGE)
    ax["bitrate"].set_ylim(bottom=0)

    start = float(min(t.min(), lost_t.min() if lost_t.size else t.min())) if t.size else 0.0
    end = float(max(t.max(), lost_t.max() if lost_t.size else t.max())) if t.size else 1.0
    handles = _shade_findings(axes, findings_for(report, stream_id))
    set_time_axis(axes[-1], start, end)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                   title="findings (confidence)")
    fig.suptitle(f"{stream_title(stream)}\n{_stream_subtitle(report, stream)}")
    return fig


# --------------------------------------------------------------------- loss structure


def gilbert_elliott_runs(p: float, r: float, loss_good: float, loss_bad: float, max_len: int) -> np.ndarray:
    """Probability that a loss run has length 1 .. ``max_len`` under a Gilbert-Elliott chain.

    Two hidden states, good (G) and bad (B), with per-packet transition
    probabilities ``p`` (G -> B) and ``r`` (B -> G) and loss probabilities
    ``loss_good`` / ``loss_bad`` in them (the four-parameter model of
    RFC 3611 §4.7.2 / ITU-T P.564 Annex A). A run starts at a loss that
    follows a received packet and ends at the next received packet; with
    ``T`` the transition matrix, ``h`` the loss vector and ``π`` the
    stationary distribution, ``P(run = k) ∝ (π ∘ (1 - h)) T_L^k T_R 1`` where
    ``T_L = T diag(h)``, ``T_R = T diag(1 - h)``.

    Returns
    -------
    float64, shape (max_len,)
        Element ``k - 1`` is the probability of a run of exactly ``k`` (the
        tail beyond ``max_len`` is left out, so it may sum to less than 1).

    Examples
    --------
    >>> np.round(gilbert_elliott_runs(0.0, 1.0, 0.5, 0.5, 3), 3).tolist()  # Bernoulli, 50 % loss
    [0.5, 0.25, 0.125]
    """
    transition = np.array([[1 - p, p], [r, 1 - r]])
    h = np.array([loss_good, loss_bad])
    if p + r <= 0:
        pi = np.array([1.0, 0.0])
    else:
        pi = np.array([r, p]) / (p + r)
    t_lost = transition * h[None, :]
    t_recv = transition * (1 - h)[None, :]
    v = (pi * (1 - h)) @ t_lost
    out = np.empty(max_len)
    ones = np.ones(2)
    for k in range(max_len):
        out[k] = v @ t_recv @ ones
        v = v @ t_lost
    start = (pi * (1 - h)) @ t_lost @ ones
    return out / start if start > 0 else np.zeros(max_len)


@_styled
def loss_structure_figure(report: Report, stream_id: str) -> Figure:
    """Histogram of consecutive-loss run lengths with model fits overlaid.

    Bars: how many runs of exactly k lost packets the stream had. Lines: the
    run counts a Gilbert-Elliott chain with the stream's fitted parameters
    (RFC 3611 §4.7.2 states, :mod:`callscope.metrics.loss_structure`) predicts,
    and those of independent (Bernoulli) loss at the same loss rate: bursty
    loss shows as bars far above the Bernoulli line at long runs.
    """
    stream = report.inventory.stream(stream_id)
    m = report.metrics[stream_id]
    fig = _figure(8, 4.8)
    ax = fig.subplots()
    runs = np.asarray(m.loss_runs, np.int64)
    n_runs = int(runs.sum())
    ax.set_xlabel("consecutive packets lost (run length)")
    ax.set_ylabel("number of runs")
    fig.suptitle(f"Loss structure — {stream_title(stream)}")
    if n_runs == 0:
        _no_data(ax, "no packet was lost")
        ax.set_title("no loss")
        return fig
    longest = runs.size
    shown = min(max(longest, MIN_RUN_BINS), MAX_RUN_BIN)
    counts = np.zeros(shown)
    counts[: min(longest, shown)] = runs[:shown]
    if longest > shown:
        counts[-1] += runs[shown:].sum()
    k = np.arange(1, shown + 1)
    ax.bar(k, counts, width=0.8, color="#d62728", alpha=0.6, label=f"observed ({n_runs} runs)")
    fit = n_runs * gilbert_elliott_runs(m.ge_p, m.ge_r, m.ge_loss_good, m.ge_loss_bad, shown)
    ax.plot(k, fit, "o-", color="#1f1f1f", ms=3, lw=1.2,
            label=f"Gilbert-Elliott fit (p={m.ge_p:.3g}, r={m.ge_r:.3g}, "
                  f"h_G={m.ge_loss_good:.2g}, h_B={m.ge_loss_bad:.2g})")
    loss = min(max(m.loss_fraction, 0.0), 1.0)
    bernoulli = n_runs * (1 - loss) * loss ** (k - 1.0)
    ax.plot(k, bernoulli, "--", color="#1f77b4", lw=1.2, label=f"independent loss at {100 * loss:.1f} %")
    ax.set_yscale("log")
    ax.set_ylim(0.5, max(counts.max(), fit.max()) * 2)
    ax.set_xlim(0.3, shown + 0.7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        f"{100 * m.loss_fraction:.1f} % lost   BurstR {m.burst_ratio:.2f}   "
        f"longest run {longest}" + (f" (runs ≥ {shown} in last bar)" if longest > shown else "")
    )
    ax.legend(fontsize=FONT_SIZE - 1)
    return fig


# --------------------------------------------------------------------- distributions


def _cdf(ax: Axes, values: np.ndarray, label: str, colour: str) -> bool:
    v = np.asarray(values, np.float64)
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return False
    y = np.arange(1, v.size + 1) / v.size
    ax.step(v, y, where="post", color=colour, lw=1.3, label=label)
    return True


@_styled
def distributions_figure(report: Report, stream_ids: Sequence[str]) -> Figure:
    """Empirical CDFs of inter-arrival Δ, jitter and relative delay.

    One line per stream, so the two directions of a call sit side by side on
    the same axes (a one-way problem shows as two different curves).
    """
    fig = _figure(12, 4.2)
    axes = fig.subplots(1, 3, sharey=True)
    titles = (("delta_ms", "inter-arrival Δ (ms)"), ("jitter_ms", "jitter RFC 3550 (ms)"),
              ("delay_ms", "relative one-way delay (ms)"))
    streams = [report.inventory.stream(s) for s in stream_ids]
    for ax, (field, label) in zip(axes, titles, strict=True):
        drew = False
        for i, s in enumerate(streams):
            pp = report.metrics[s.id].per_packet
            name = f"{s.id}: {s.src}:{s.src_port} → {s.dst}:{s.dst_port}"
            drew |= _cdf(ax, getattr(pp, field), name, DIRECTION_COLOURS[i % len(DIRECTION_COLOURS)])
        ax.set_xlabel(label)
        if not drew:
            _no_data(ax, "not measurable")
    axes[0].set_ylabel("fraction of packets ≤ x")
    axes[0].set_ylim(0, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        for ax in axes[1:]:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 2))
    fig.suptitle("Distributions — " + ", ".join(s.id for s in streams))
    return fig


# --------------------------------------------------------------------- spectrogram


def spectrogram_power(x: np.ndarray, fs: int, max_columns: int = SPECTROGRAM_MAX_COLUMNS):
    """Power spectral density over time, with at most ``max_columns`` time columns.

    Short signals: a Hann-windowed STFT (``scipy.signal.spectrogram``,
    ``SPECTROGRAM_NFFT`` samples, 50 % overlap). Longer ones: each column is
    the Welch average (same segments) over its stretch of the signal, computed
    a block of columns at a time so memory stays bounded on a 2-hour call.

    Returns
    -------
    f : frequencies (Hz); t : column centres (s); sxx : shape (f.size, t.size)
    """
    from scipy.signal import spectrogram, welch

    hop = SPECTROGRAM_NFFT - SPECTROGRAM_OVERLAP
    if x.size // hop <= max_columns:
        return spectrogram(x, fs=fs, nperseg=SPECTROGRAM_NFFT, noverlap=SPECTROGRAM_OVERLAP)
    col = max(int(math.ceil(x.size / max_columns)), SPECTROGRAM_NFFT)
    n_cols = x.size // col
    blocks = []
    for i in range(0, n_cols, SPECTROGRAM_BLOCK):
        part = x[i * col : min(i + SPECTROGRAM_BLOCK, n_cols) * col].reshape(-1, col)
        f, pxx = welch(part, fs=fs, nperseg=SPECTROGRAM_NFFT, noverlap=SPECTROGRAM_OVERLAP, axis=-1)
        blocks.append(pxx)
    t = (np.arange(n_cols) + 0.5) * col / fs
    return f, t, np.concatenate(blocks, axis=0).T


@_styled
def spectrogram_figure(rendering: Rendering, stream: MediaStream, start_s: float = 0.0) -> Figure:
    """Spectrogram of a decoded G.711 stream, concealed stretches marked.

    Parameters
    ----------
    rendering : Rendering
        From :func:`callscope.report.audio.render_stream`.
    stream : MediaStream
        For the title.
    start_s : float
        Capture time of the first sample, so the axis matches the timeline.
    """
    fig = _figure(11, 4.2)
    ax = fig.subplots()
    x = rendering.samples.astype(np.float64) / 32768.0
    fs = rendering.sample_rate
    if x.size >= SPECTROGRAM_NFFT:
        f, t, sxx = spectrogram_power(x, fs)
        db = 10 * np.log10(sxx + 1e-12)
        top = float(np.percentile(db, 99.5))
        mesh = ax.pcolormesh(start_s + t, f / 1000, db, shading="auto", cmap="magma", vmin=top - 80, vmax=top,
                             rasterized=True)
        fig.colorbar(mesh, ax=ax, label="power (dB)")
    else:
        _no_data(ax, "too little audio")
    gaps = _runs(rendering.concealed)
    for a, b in gaps:
        ax.axvspan(start_s + a / fs, start_s + b / fs, ymin=0.97, ymax=1.0, color="#00bfff", lw=0)
    ax.set_ylabel("frequency (kHz)")
    set_time_axis(ax, start_s, start_s + max(x.size / fs, 1e-3))
    ax.grid(False)
    conceal = "silence" if rendering.conceal == "silence" else "the last frame repeated"
    ax.set_title(f"decoded {rendering.codec}; blue ticks on top: {rendering.concealed_s:.2f} s concealed "
                 f"with {conceal}")
    fig.suptitle(f"Spectrogram — {stream_title(stream)}")
    return fig


def _runs(mask: np.ndarray) -> np.ndarray:
    """(start, end) sample index pairs of the True runs of ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return edges.reshape(-1, 2)


# --------------------------------------------------------------------- files


@dataclass(frozen=True)
class PlotFile:
    """One written plot: what it shows and where it is."""

    kind: str  # "timeline", "loss", "distributions", "spectrogram"
    subject: str  # stream id, or the streams of a call joined by "+"
    path: Path


def figures(report: Report, stream_ids: Sequence[str] | None = None) -> Iterator[tuple[str, str, Figure]]:
    """Every figure of a report as ``(kind, subject, Figure)``, in reading order.

    Per stream: timeline, loss structure (when it lost packets) and, for
    G.711 RTP, the spectrogram of the decoded audio. Per call (or lone
    stream): the distributions of both directions.
    """
    from callscope.report.audio import is_decodable, render_stream

    wanted = [s.id for s in report.inventory.streams] if stream_ids is None else list(stream_ids)
    capture = None
    for sid in wanted:
        stream = report.inventory.stream(sid)
        yield "timeline", sid, timeline_figure(report, sid)
        if report.metrics[sid].missing > 0:
            yield "loss", sid, loss_structure_figure(report, sid)
        if is_decodable(stream):
            if capture is None:
                from callscope.capture.reader import read_capture

                capture = read_capture(report.path)
            rendering = render_stream(capture, stream, late=report.metrics[sid].per_packet.late_adaptive)
            first = float(report.metrics[sid].first_time_s or 0.0)
            yield "spectrogram", sid, spectrogram_figure(rendering, stream, first)
    for group in _groups(report, wanted):
        yield "distributions", "+".join(group), distributions_figure(report, group)


def _groups(report: Report, wanted: Sequence[str]) -> list[list[str]]:
    """Wanted streams grouped by call (streams in no call stand alone)."""
    seen: set[str] = set()
    out = []
    for call in report.inventory.calls:
        group = [s for s in call.stream_ids if s in wanted]
        if group:
            out.append(group)
            seen.update(group)
    out.extend([s] for s in wanted if s not in seen)
    return out


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write one figure; the format follows the suffix (``.png``, ``.svg``)."""
    out = Path(path)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with _matplotlib().rc_context(STYLE):
        fig.savefig(out, format=fmt, dpi=DPI)
    return out


def save_plots(
    report: Report,
    out_dir: str | os.PathLike,
    fmt: str = "png",
    stream_ids: Sequence[str] | None = None,
) -> list[PlotFile]:
    """Write every figure of :func:`figures` to ``out_dir`` as ``<subject>-<kind>.<fmt>``.

    Parameters
    ----------
    report : Report
    out_dir : path-like
        Created if missing.
    fmt : {"png", "svg"}
    stream_ids : sequence of str, optional
        Only these streams (default: all).

    Returns
    -------
    list of PlotFile
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, subject, fig in figures(report, stream_ids):
        path = save_figure(fig, out / f"{subject}-{kind}.{fmt}")
        written.append(PlotFile(kind, subject, path))
    return written


# --------------------------------------------------------------------- two-point

#: Directions with fewer packets sent than this are left out of the two-point figure
#: (RTCP and stray flows carry no timeline worth a panel).
TWO_POINT_MIN_PACKETS = 20


def two_point_directions(comparison) -> list[int]:
    """Indices of the directions of a Comparison worth a panel (media, not a trickle)."""
    return [i for i, r in enumerate(comparison.directions) if r.sent >= TWO_POINT_MIN_PACKETS]


@_styled
def two_point_figure(comparison, verdicts: Sequence) -> Figure:
    """One-way delay of every packet with every lost packet marked, one panel per direction.

    Parameters
    ----------
    comparison : callscope.twopoint.Comparison
    verdicts : sequence of (primary Finding or None, findings)
        As :func:`callscope.twopoint.diagnose_direction` returns them, one per direction;
        the primary finding's spans are shaded.

    Returns
    -------
    Figure
        Axes in the order of :func:`two_point_directions`; lost packets are the
        red ticks along each panel's top edge (one tick per packet).
    """
    shown = two_point_directions(comparison)
    fig = _figure(11, 2.6 * max(len(shown), 1) + 0.6)
    if not shown:
        _no_data(fig.add_subplot(), "no media direction in common")
        return fig
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    span = max(float(comparison.directions[i].send_time[-1]) for i in shown)
    for ax, i in zip(axes, shown, strict=True):
        r = comparison.directions[i]
        primary = verdicts[i][0]
        ok = ~r.lost_mask
        # delay in blue or green, never the red of the loss ticks
        colour = DIRECTION_COLOURS[0] if i % 2 == 0 else DIRECTION_COLOURS[2]
        _packet_line(ax, r.send_time[ok], r.delay_ms[ok], colour)
        top = float(np.nanmax(r.delay_ms)) if ok.any() else 1.0
        top = max(top, 1.0) * 1.15
        lost_t = r.send_time[r.lost_mask]
        ax.vlines(lost_t, top * 0.92, top, color="#b30000", lw=0.8, label=f"lost packet ({r.lost})")
        ax.set_ylim(0, top)
        ax.set_ylabel("one-way delay\nabove minimum (ms)")
        if primary is not None:
            _shade_findings([ax], [primary])
        verdict = primary.pattern if primary is not None else "clean"
        ax.set_title(
            "{}:{} → {}:{}".format(*r.sent_flow)
            + f"   sent {r.sent}, lost {r.lost} ({100 * r.loss_fraction:.1f} %), reordered {r.reordered}"
            + f"   verdict: {verdict}",
            loc="left", fontsize=FONT_SIZE,
        )
        ax.legend(loc="upper right", fontsize=FONT_SIZE - 1)
        set_time_axis(ax, 0.0, span, label=ax is axes[-1])
        if ax is axes[-1]:
            ax.set_xlabel(ax.get_xlabel().replace("capture start", "first packet sent"))
    fig.suptitle(f"two-point: {Path(comparison.sent_path).name} ↔ {Path(comparison.received_path).name}   "
                 f"(clock offset and drift removed)", fontsize=FONT_SIZE + 1)
    return fig
