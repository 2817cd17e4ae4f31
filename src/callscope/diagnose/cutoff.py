"""Cut-off: normal service for T seconds (B bytes, N packets), then nothing.

A censor that lets a call through for a while and then blackholes it leaves
one change point: the stream runs normally up to T and then is lost entirely
for the rest of the capture. A stream that merely ends (hang-up) looks the
same from the stream alone, so the capture must show that the call went on
after it: traffic continuing for at least :data:`MIN_SILENCE_S` after the
last packet (the other direction, RTCP, STUN, signalling, or the capture
itself running on).
"""

from __future__ import annotations

import numpy as np

from callscope.diagnose.evidence import ramp, scale_confidence
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import Trace

#: Total loss to the end must last at least this long (DESIGN.md pattern table).
MIN_SILENCE_S = 5.0
#: Shortest stretch of service before the cut for a change point to be credible.
MIN_SERVICE_S = 1.0
#: Before the cut, the stream must have been delivered at least this well.
MIN_DELIVERY_BEFORE = 0.8


def detect_cutoff(trace: Trace, overhead: float = 0.0, reference_end: float | None = None) -> Finding | None:
    """A cut-off finding or None.

    Parameters
    ----------
    trace : Trace
    overhead : float
        Bytes added to each payload when counting the bytes delivered.
    reference_end : float, optional
        Until when the call demonstrably went on (seconds since the capture's
        first frame); the capture's end by default.
    """
    if not trace.received.any():
        return None
    end_ref = trace.capture_end if reference_end is None else reference_end
    last = trace.end
    silence = end_ref - last
    service = last - trace.start
    if silence < MIN_SILENCE_S or service < MIN_SERVICE_S:
        return None
    rec = trace.received
    delivered = float(np.count_nonzero(rec)) / rec.size
    # The change point: the stream's rate in its last second of service against its median.
    edges = np.arange(trace.start, last + 1e-9, 1.0)
    counts, _ = np.histogram(trace.time[rec], bins=np.append(edges, last + 1e-9))
    rate_before = float(np.median(counts[:-1])) if counts.size > 1 else float(counts.sum())
    n = int(np.count_nonzero(rec))
    b = float(np.sum(trace.size[rec] + overhead))
    confidence = (
        ramp(silence, MIN_SILENCE_S - 0.5, MIN_SILENCE_S + 2.0)
        * ramp(service, MIN_SERVICE_S, 3 * MIN_SERVICE_S)
        * ramp(delivered, 0.5, MIN_DELIVERY_BEFORE)
    )
    if confidence < 0.2:
        return None
    evidence = (
        Evidence("last_packet", round(last, 3), "s"),
        Evidence("silence_to_end", round(silence, 3), "s"),
        Evidence("service", round(service, 3), "s"),
        Evidence("delivered_before_cut", round(delivered, 4)),
        Evidence("packet_rate_before_cut", round(rate_before, 1), "packets/s"),
    )
    params = (
        Evidence("time_s", round(last, 3), "s"),
        Evidence("bytes", b, "B"),
        Evidence("packets", n, "packets"),
    )
    summary = (
        f"normal service ({100 * delivered:.1f} % delivered, {rate_before:.0f} packets/s) for "
        f"{service:.1f} s, then total loss from {last:.2f} s for the remaining {silence:.1f} s "
        f"while the call went on: cut off after T = {last:.2f} s, B = {b:.0f} bytes, N = {n} packets"
    )
    if trace.opaque:
        summary += " (encrypted media without sequence numbers)"
    return Finding(
        pattern="cutoff",
        confidence=scale_confidence(trace, confidence),
        summary=summary,
        stream_id=trace.stream_id,
        evidence=evidence,
        audible=AUDIBLE["cutoff"],
        spans=((round(last, 3), round(end_ref, 3)),),
        params=params,
    )
