"""Codec downshift: the sender lowers its bitrate to a new plateau.

An adaptive codec (Opus, AMR) facing a rate cap answers by sending smaller
packets or fewer of them; the capture shows the packet size or packet rate
stepping down to a new level and staying there, with no sustained loss. One
change point is found by least squares (the split of the per-window bitrate
series into two constant segments that minimises the squared error, the
single-change case of binary segmentation).
"""

from __future__ import annotations

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import Trace

#: Bitrate windows (seconds).
WINDOW_S = 1.0
#: Fewest windows on each side of the change.
MIN_SIDE = 3
#: The new plateau must be at most this fraction of the old one.
MAX_RATIO = 0.85
#: Loss above which the change is loss, not adaptation.
MAX_LOSS = 0.02


def best_split(x: np.ndarray, min_side: int) -> tuple[int, float]:
    """Index k minimising the squared error of two constant segments x[:k], x[k:], and that error."""
    n = x.size
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    k = np.arange(min_side, n - min_side + 1)
    if k.size == 0:
        return 0, float("inf")
    s_left, q_left = c1[k - 1], c2[k - 1]
    s_right, q_right = c1[-1] - s_left, c2[-1] - q_left
    sse = (q_left - s_left**2 / k) + (q_right - s_right**2 / (n - k))
    i = int(np.argmin(sse))
    return int(k[i]), float(sse[i])


def detect_downshift(trace: Trace) -> Finding | None:
    """A codec-downshift finding or None."""
    if trace.slots < 50:
        return None
    start, end = trace.start, trace.end
    n_w = int((end - start) // WINDOW_S)
    if n_w < 2 * MIN_SIDE:
        return None
    edges = start + WINDOW_S * np.arange(n_w + 1)
    rec = trace.received
    t = trace.time[rec]
    size = trace.size[rec]
    got_bytes, _ = np.histogram(t, bins=edges, weights=size)
    got_pkts, _ = np.histogram(t, bins=edges)
    sent_pkts, _ = np.histogram(trace.time, bins=edges)
    # Bitrate as sent: received bytes scaled up by the window's delivery ratio.
    ratio = np.divide(got_pkts, sent_pkts, out=np.ones(n_w), where=sent_pkts > 0)
    bitrate = np.divide(got_bytes, ratio, out=np.zeros(n_w), where=ratio > 0) / WINDOW_S
    k, sse = best_split(bitrate, MIN_SIDE)
    if k == 0:
        return None
    before, after = bitrate[:k], bitrate[k:]
    b_mean, a_mean = float(before.mean()), float(after.mean())
    if b_mean <= 0:
        return None
    drop = a_mean / b_mean
    noise = float(np.sqrt(sse / n_w)) / b_mean
    t_change = float(edges[k])
    after_slots = trace.time >= t_change
    loss_after = 1.0 - float(np.count_nonzero(rec[after_slots])) / max(1, np.count_nonzero(after_slots))
    if drop > MAX_RATIO or loss_after > 3 * MAX_LOSS:
        return None
    size_before = float(np.median(size[t < t_change]))
    size_after = float(np.median(size[t >= t_change]))
    pps_before = float(np.median(sent_pkts[:k])) / WINDOW_S
    pps_after = float(np.median(sent_pkts[k:])) / WINDOW_S
    step = (b_mean - a_mean) / b_mean
    confidence = (
        ramp(step, 1 - MAX_RATIO, 2 * (1 - MAX_RATIO))
        * ramp(noise / max(step, 1e-9), 0.5, 0.2)
        * ramp(loss_after, 3 * MAX_LOSS, MAX_LOSS)
    )
    if confidence < 0.2:
        return None
    what = []
    if size_after < 0.9 * size_before:
        what.append(f"packets shrink from {size_before:.0f} to {size_after:.0f} bytes")
    if pps_after < 0.9 * pps_before:
        what.append(f"packet rate falls from {pps_before:.0f} to {pps_after:.0f} /s")
    how = " and ".join(what) if what else "bitrate steps down"
    evidence = (
        Evidence("bitrate_before", round(b_mean, 1), "B/s"),
        Evidence("bitrate_after", round(a_mean, 1), "B/s"),
        Evidence("size_before", size_before, "B"),
        Evidence("size_after", size_after, "B"),
        Evidence("packet_rate_before", pps_before, "packets/s"),
        Evidence("packet_rate_after", pps_after, "packets/s"),
        Evidence("residual_noise", round(noise, 3)),
        Evidence("loss_after", round(loss_after, 4)),
    )
    summary = (
        f"at {t_change:.1f} s the {how}: bitrate {b_mean / 1000:.2f} -> {a_mean / 1000:.2f} kB/s "
        f"({100 * drop:.0f} %) and stays there, with {100 * loss_after:.1f} % loss after: "
        f"the codec adapted down to a rate cap"
    )
    return Finding(
        pattern="codec-downshift",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["codec-downshift"],
        spans=((round(t_change, 3), round(end, 3)),),
        params=(
            Evidence("change_s", round(t_change, 3), "s"),
            Evidence("bitrate_ratio", round(drop, 4)),
        ),
    )
