"""Small helpers shared by the detectors: confidence ramps and goodput windows."""

from __future__ import annotations

import numpy as np

from callscope.diagnose.trace import Trace
from callscope.metrics.timeline import window_width

#: Confidence is scaled by this on opaque streams, where loss is inferred from
#: cadence gaps rather than counted from sequence numbers.
OPAQUE_CONFIDENCE = 0.85
#: Bunched-arrival shares between which cadence-inferred loss goes from
#: trustworthy to meaningless.
BUNCHED_RELIABLE = 0.03
BUNCHED_UNRELIABLE = 0.10


def ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi``, linear between (``lo > hi`` for a falling ramp)."""
    if not np.isfinite(x):
        return 0.0
    v = (x - lo) / (hi - lo)
    return float(min(1.0, max(0.0, v)))


def loss_reliability(trace: Trace) -> float:
    """How far cadence-inferred loss can be trusted: 1 with regular arrivals, 0 when bunched."""
    return ramp(trace.bunched, BUNCHED_UNRELIABLE, BUNCHED_RELIABLE)


def scale_confidence(trace: Trace, confidence: float, from_loss: bool = False) -> float:
    """Lower the confidence of a finding on an opaque stream.

    ``from_loss``: the finding rests on the loss pattern, which on an opaque
    stream is inferred from cadence gaps and means little where arrivals are
    bunched by jitter (:attr:`Trace.bunched`).
    """
    c = confidence * (OPAQUE_CONFIDENCE if trace.opaque else 1.0)
    if from_loss and trace.opaque:
        c *= loss_reliability(trace)
    return round(float(min(1.0, max(0.0, c))), 3)


def opaque_confidence(confidence: float, opaque: bool) -> float:
    """:func:`scale_confidence` of a finding that does not rest on the loss pattern,
    for a stream known only by its :class:`~callscope.diagnose.trace.TraceSummary`."""
    c = confidence * (OPAQUE_CONFIDENCE if opaque else 1.0)
    return round(float(min(1.0, max(0.0, c))), 3)


def window_rates(
    trace: Trace, start: float, end: float, window_s: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Bytes per second sent and received in consecutive windows of ``[start, end)``.

    Sent bytes count every slot (lost ones at their interpolated time).
    """
    window_s = window_width(end - start, window_s)
    n = int((end - start) // window_s)
    if n < 1:
        return np.zeros(0), np.zeros(0)
    edges = start + window_s * np.arange(n + 1)
    sent, _ = np.histogram(trace.time, bins=edges, weights=trace.size)
    got, _ = np.histogram(trace.received_time, bins=edges, weights=trace.received_size)
    return sent / window_s, got / window_s


def spans_of(trace: Trace, starts: np.ndarray, lengths: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Time spans of slot runs (first slot, length): from the slot's time to one ptime past the last."""
    out = []
    for s, n in zip(starts.tolist(), lengths.tolist(), strict=True):
        out.append((round(float(trace.time[s]), 3), round(float(trace.time[s + n - 1] + trace.ptime), 3)))
    return tuple(out)
