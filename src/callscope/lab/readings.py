"""Which verdicts read a lab capture correctly besides the mechanism's label.

The lab labels a run by the mechanism it applied: a queue shared with cross
traffic is ``congestion`` if it dropped anything, ``jitter`` if not; a random
dropper is ``random-loss`` however few packets it hit. A mechanism can leave
too little trace to show: two drops in 1,300 packets, a queue that never held
more than a millisecond. What the capture then shows is what the taxonomy
(docs/architecture.md, pattern table) calls ``clean`` (loss < 0.5 %, jitter
p95 < 30 ms, no packets later than a playout budget) or ``jitter`` (little
loss, delay variation), and that reading is correct too: it joins the truth's
``accept`` list, with the numbers that decided it under ``readings``.

The numbers come from the truth itself (both captures, one kernel clock):
loss and the exact one-way delay of every delivered packet in the impaired
direction(s), so the RFC 3550 jitter and the late share are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from callscope.diagnose.jitter import JITTER_P95_S, LATE_RAMP, PLAYOUT_BUDGET_S
from callscope.diagnose.ordinary_loss import CLEAN_LOSS
from callscope.metrics.smoothing import rfc3550_jitter

DIRECTIONS = ("a->b", "b->a")
#: Share of packets later than the playout budget from which a stream is not
#: clean: where the jitter detector's lateness sign starts.
LATE_CLEAN = LATE_RAMP[0]
#: Labels whose mechanism may leave too little trace to show.
FAINT_LABELS = frozenset({"random-loss", "bursty-loss", "congestion", "jitter"})


def readings(doc: dict[str, Any]) -> dict[str, Any]:
    """Loss, RFC 3550 jitter p95 and late share of the impaired direction(s),
    and the verdicts besides the label that read the capture correctly
    (``also``)."""
    direction = doc.get("params", {}).get("direction", "a->b")
    dirs = DIRECTIONS if direction not in DIRECTIONS else (direction,)
    media = [st for st in doc.get("streams", []) if st.get("kind") in ("rtp", "opaque")
             and st.get("direction") in dirs and "sent" in st and "alias_of" not in st]
    sent = sum(int(st["sent"]) for st in media)
    lost = sum(int(st["dropped"]) for st in media)
    loss = lost / sent if sent else 0.0
    jitter_p95, late = 0.0, 0.0
    # Truths written before per-packet delays were kept cannot show quiet.
    known = bool(media) and all("delay_us" in st for st in media)
    for st in media:
        delay = np.asarray(st.get("delay_us", []), np.float64) / 1e6
        if delay.size < 2:
            continue
        jitter_p95 = max(jitter_p95, float(np.percentile(rfc3550_jitter(delay), 95)))
        late = max(late, float(np.mean(delay - delay.min() > PLAYOUT_BUDGET_S)))
    quiet = known and jitter_p95 < JITTER_P95_S and late < LATE_CLEAN
    label = doc.get("label", "")
    also: list[str] = []
    if label in FAINT_LABELS and loss < CLEAN_LOSS:
        if label == "congestion":
            also.append("jitter")
        if quiet:
            also.append("clean")
    return {"loss_fraction": round(loss, 6),
            "jitter_p95_ms": round(1000 * jitter_p95, 3) if known else None,
            "late_share": round(late, 4) if known else None, "also": also}


def with_readings(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``readings`` and ``accept`` = the mechanism's accepted
    verdicts plus the readings' (idempotent: a previous reading's additions
    are replaced, not kept)."""
    previous = set(doc.get("readings", {}).get("also", ()))
    mechanism = [a for a in doc.get("accept", [doc.get("label")]) if a not in previous or a == doc.get("label")]
    r = readings(doc)
    out = dict(doc)
    out["readings"] = r
    out["accept"] = mechanism + [a for a in r["also"] if a not in mechanism]
    return out
