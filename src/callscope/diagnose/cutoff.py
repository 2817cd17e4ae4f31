"""Cut-off: normal service for T seconds (B bytes, N packets), then nothing, both ways.

A censor that lets a call through for a while and then blackholes it leaves
one change point: every direction runs normally up to T and then is lost
entirely for the rest of the capture. A call that merely ends (hang-up) looks
the same from its media alone, so the capture must show that the call went on
after it: the capture running on for at least :data:`MIN_SILENCE_S` after the
last packet (its signalling, a BYE at the end, keepalives) when no other
call's media is what keeps it running (the caller, :mod:`~callscope.diagnose.engine`,
passes the reference end accordingly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from callscope.diagnose.evidence import opaque_confidence, ramp
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import TraceSummary

#: Total loss to the end must last at least this long (DESIGN.md pattern table).
MIN_SILENCE_S = 5.0
#: Shortest stretch of service before the cut for a change point to be credible.
MIN_SERVICE_S = 1.0
#: Directions of a call stopping within this of each other stopped together (s).
TOGETHER_S = 1.0


def detect_cutoff(
    call_id: str, traces: Sequence[TraceSummary], reference_end: float, overhead: float = 0.0
) -> Finding | None:
    """Every direction of the call stops within :data:`TOGETHER_S` and stays silent ≥ 5 s.

    The cut time T is counted from the call's first media packet; B and N
    count the bytes and packets delivered in all directions together.
    """
    live = [t for t in traces if t.received_count > 0]
    if not live:
        return None
    ends = np.array([t.end for t in live])
    media_start = min(t.start for t in live)
    last = float(ends.max())
    silence = reference_end - last
    service = last - media_start
    if silence < MIN_SILENCE_S or service < MIN_SERVICE_S:
        return None
    spread = float(ends.max() - ends.min())
    together = spread <= TOGETHER_S
    delivered = [t.delivered for t in live]
    ptime = min(t.ptime for t in live)
    n = int(sum(t.received_count for t in live))
    b = float(sum(t.received_bytes + overhead * t.received_count for t in live))
    cut_at = last + 0.5 * ptime  # the cut fell between the last delivered packet and the next
    confidence = (
        ramp(silence, MIN_SILENCE_S - 0.5, MIN_SILENCE_S + 2.0)
        * ramp(service, MIN_SERVICE_S, 3 * MIN_SERVICE_S)
        * ramp(min(delivered), 0.5, 0.8)
        * (1.0 if together else 0.4)
    )
    if confidence < 0.2:
        return None
    opaque = all(t.opaque for t in live)
    evidence = (
        Evidence("last_packet", round(last, 3), "s"),
        Evidence("silence_to_end", round(silence, 3), "s"),
        Evidence("directions", len(live)),
        Evidence("stop_spread", round(spread, 3), "s"),
        Evidence("delivered_before_cut", round(min(delivered), 4)),
    )
    params = (
        Evidence("time_s", round(cut_at - media_start, 3), "s"),
        Evidence("at_s", round(cut_at, 3), "s"),
        Evidence("bytes", b, "B"),
        Evidence("packets", n, "packets"),
    )
    summary = (
        f"{'all ' + str(len(live)) + ' directions' if len(live) > 1 else 'the stream'} delivered normally "
        f"({100 * min(delivered):.1f} % or better) for {cut_at - media_start:.2f} s, then stopped "
        f"{'together' if together else f'within {spread:.1f} s of each other'} at {cut_at:.2f} s with "
        f"{silence:.1f} s of silence to the end of the capture: cut off after T = "
        f"{cut_at - media_start:.2f} s, B = {b:.0f} bytes, N = {n} packets"
    )
    if opaque:
        summary += " (encrypted media without sequence numbers)"
    return Finding(
        pattern="cutoff",
        confidence=opaque_confidence(confidence, opaque) if opaque else round(confidence, 3),
        summary=summary,
        call_id=call_id,
        evidence=evidence,
        audible=AUDIBLE["cutoff"],
        spans=((round(cut_at, 3), round(reference_end, 3)),),
        params=params,
    )
