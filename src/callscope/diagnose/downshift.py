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
from callscope.metrics.cadence import COMFORT_NOISE_FRACTION
from callscope.metrics.timeline import window_width

#: Bitrate windows (seconds).
WINDOW_S = 1.0
#: Fewest windows on each side of the change.
MIN_SIDE = 3
#: The new plateau must be at most this fraction of the old one.
MAX_RATIO = 0.85
#: Loss above which the change is loss, not adaptation.
MAX_LOSS = 0.02
#: The residual noise of the two-plateau fit against the size of the step: a
#: confidence ramp (none at the first ratio, full at the second); set on the
#: simulator corpus, held on the lab downshifts (noise/step 0.05-0.15).
STEP_NOISE = (0.5, 0.2)
#: Where the packet rate held, a lower bitrate must lower the loudest frames
#: too (95th percentile of packet size after / before): a codec capped to a
#: rate scales every frame, while a talker who speaks less (or a listener
#: after a long turn) sends as large voice frames as before, only fewer of
#: them. Lab ordinary Opus calls with a talk-mix change: 0.80 and more
#: (relay_to_direct_opus, seeds 2 and 5; hangup_opus); simulator bitrate
#: downshifts: 0.58-0.66. Full confidence at or below the first, none at or
#: above the second.
PEAK_RATIO_CAPPED = 0.70
PEAK_RATIO_TALK_MIX = 0.80
#: A new level must stay for this long (s, a confidence ramp) to be a
#: plateau: speech alternates talk spurts and pauses of about a second each
#: (ITU-T P.59), so a few seconds of smaller packets is a party listening,
#: not a codec capped, and a few seconds of fewer packets a pause kept with
#: comfort noise. Lab ordinary calls whose sizes dropped near the end: 4.0
#: and 6.3 s after the step; a relay leg with DTX before a move to the direct
#: path (lab s5): 4.7 s; lab and simulator downshifts: 11 s and more.
PLATEAU_S = (6.0, 10.0)


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


def _step(x: np.ndarray) -> tuple[int, float, float]:
    """Best single split of ``x``: index, after/before ratio, residual noise / level before."""
    k, sse = best_split(x, MIN_SIDE)
    if k == 0:
        return 0, 1.0, float("inf")
    before = float(x[:k].mean())
    if before <= 0:
        return 0, 1.0, float("inf")
    return k, float(x[k:].mean()) / before, float(np.sqrt(sse / x.size)) / before


def _window_medians(w: np.ndarray, x: np.ndarray, n_w: int) -> np.ndarray:
    """Median of ``x`` in each window ``0 .. n_w - 1`` (NaN for an empty one), all
    windows from one sort: the middle element, or the mean of the two middle ones."""
    order = np.lexsort((x, w))
    s = np.asarray(x, np.float64)[order]
    count = np.bincount(w, minlength=n_w)
    if s.size == 0:
        return np.full(n_w, np.nan)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    lo = np.minimum(start + (count - 1) // 2, s.size - 1)
    hi = np.minimum(start + count // 2, s.size - 1)
    return np.where(count > 0, (s[lo] + s[hi]) / 2, np.nan)


def _sent_per_window(
    send: np.ndarray, size: np.ndarray, edges: np.ndarray, in_order: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Slots and bytes sent in each window ``[edges[k], edges[k + 1])`` (the last one
    closed), as ``np.histogram`` counts them.

    With the send clock in order the windows are runs of slots, bounded by a
    binary search; the byte counts are then differences of one running sum,
    exact (so equal to the histogram's) because sizes are whole bytes.
    """
    if in_order and np.all(size == np.round(size)):
        bound = np.concatenate(
            [np.searchsorted(send, edges[:-1], side="left"), np.searchsorted(send, edges[-1:], side="right")]
        )
        running = np.concatenate([[0.0], np.cumsum(size)])
        return np.diff(bound), np.diff(running[bound])
    return np.histogram(send, bins=edges)[0], np.histogram(send, bins=edges, weights=size)[0]


def _window_index(t: np.ndarray, edges: np.ndarray, in_order: bool) -> np.ndarray:
    """Index of the window of each time, ``searchsorted(edges, t, "right") - 1``
    clipped to the windows; for times in order, from one search per edge."""
    if in_order:
        below = np.searchsorted(t, edges, side="left")  # times before each edge
        runs = np.diff(np.concatenate([[0], below, [t.size]]))
        w = np.repeat(np.arange(-1, edges.size), runs)
    else:
        w = np.searchsorted(edges, t, side="right") - 1
    return np.clip(w, 0, edges.size - 2)


def detect_downshift(trace: Trace) -> Finding | None:
    """A codec-downshift finding or None.

    Three per-window series are tested for one step down to a new plateau:
    packet rate (packets sent per second, lost ones included), median packet
    size, and bitrate sent. The best-supported step wins.
    """
    if trace.slots < 50:
        return None
    # Windows on the send clock: what the sender did, not when a queue let it through.
    start, end = float(trace.send[0]), float(trace.send[-1])
    width = window_width(end - start, WINDOW_S)
    n_w = int((end - start) // width)
    if n_w < 2 * MIN_SIDE:
        return None
    edges = start + width * np.arange(n_w + 1)
    rec = trace.received
    t = trace.received_send
    size = trace.received_size
    in_order = bool(np.all(trace.send[1:] >= trace.send[:-1]))
    sent_pkts, sent_bytes = _sent_per_window(trace.send, trace.size, edges, in_order)
    w = _window_index(t, edges, in_order)
    med_size = _window_medians(w, size, n_w)
    empty = ~np.isfinite(med_size)
    if empty.any():
        med_size = np.where(empty, np.nanmedian(med_size), med_size)
    series = {
        "packet rate": sent_pkts / width,
        "packet size": med_size,
        "bitrate": sent_bytes / width,
    }
    best = None
    for name, x in series.items():
        k, ratio, noise = _step(x.astype(np.float64))
        if k == 0 or ratio > MAX_RATIO:
            continue
        drop = 1.0 - ratio
        c = ramp(drop, 1 - MAX_RATIO, 2 * (1 - MAX_RATIO)) * ramp(noise / drop, *STEP_NOISE)
        if best is None or c > best[0]:
            best = (c, name, k, ratio)
    if best is None:
        return None
    c_step, what, k, ratio = best
    send_change = float(edges[k])
    t_change = float(np.interp(send_change, trace.send, trace.time))
    after_slots = trace.send >= send_change
    loss_after = 1.0 - float(np.count_nonzero(rec[after_slots])) / max(1, int(np.count_nonzero(after_slots)))
    confidence = c_step * ramp(loss_after, 3 * MAX_LOSS, MAX_LOSS)
    size_before = float(np.median(size[t < send_change]))
    size_after = float(np.median(size[t >= send_change]))
    pps_before = float(np.median(sent_pkts[:k])) / width
    pps_after = float(np.median(sent_pkts[k:])) / width
    peak_ratio = float("nan")
    if what == "packet rate" and size_after <= COMFORT_NOISE_FRACTION * size_before:
        return None  # fewer and far smaller packets: a silence kept with comfort noise (DTX)
    rate_held = pps_after > MAX_RATIO * pps_before
    sizes_fell = what != "packet rate" and size_after <= size_before
    if (rate_held or sizes_fell) and np.any(t < send_change) and np.any(t >= send_change):
        peak_ratio = float(np.percentile(size[t >= send_change], 95) / np.percentile(size[t < send_change], 95))
        confidence *= ramp(peak_ratio, PEAK_RATIO_TALK_MIX, PEAK_RATIO_CAPPED)
    # A new level must last, whichever series stepped: a party listening
    # behind DTX sends fewer packets for as long as the pause.
    confidence *= ramp(float(trace.send[-1]) - send_change, *PLATEAU_S)
    if confidence < 0.2:
        return None
    b_before = float(np.mean(sent_bytes[:k])) / width
    b_after = float(np.mean(sent_bytes[k:])) / width
    evidence: tuple[Evidence, ...] = (
        Evidence("changed", ("packet rate", "packet size", "bitrate").index(what)),
        Evidence("ratio_after_before", round(ratio, 3)),
        Evidence("bitrate_before", round(b_before, 1), "B/s"),
        Evidence("bitrate_after", round(b_after, 1), "B/s"),
        Evidence("size_before", size_before, "B"),
        Evidence("size_after", size_after, "B"),
        Evidence("packet_rate_before", pps_before, "packets/s"),
        Evidence("packet_rate_after", pps_after, "packets/s"),
        Evidence("loss_after", round(loss_after, 4)),
    )
    if np.isfinite(peak_ratio):
        evidence += (Evidence("peak_size_ratio", round(peak_ratio, 3)),)
    summary = (
        f"at {t_change:.1f} s the {what} steps down to {100 * ratio:.0f} % and stays there "
        f"({pps_before:.0f} -> {pps_after:.0f} packets/s, {size_before:.0f} -> {size_after:.0f} bytes, "
        f"{b_before / 1000:.2f} -> {b_after / 1000:.2f} kB/s) with {100 * loss_after:.1f} % loss after: "
        f"the codec adapted down (longer frames or a lower bitrate), as to a rate cap"
    )
    return Finding(
        pattern="codec-downshift",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["codec-downshift"],
        spans=((round(t_change, 3), round(trace.end, 3)),),
        params=(
            Evidence("change_s", round(t_change, 3), "s"),
            Evidence("ratio", round(ratio, 4)),
        ),
    )
