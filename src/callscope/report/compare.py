"""Text and JSON forms of a two-point Comparison."""

from __future__ import annotations

import numpy as np

from callscope.report.jsonout import finding_dict


def _delay_stats(delay_ms: np.ndarray) -> dict:
    d = delay_ms[np.isfinite(delay_ms)]
    if d.size == 0:
        return {"delay_p50_ms": None, "delay_p95_ms": None, "delay_max_ms": None}
    p50, p95 = np.percentile(d, [50, 95])
    return {"delay_p50_ms": float(p50), "delay_p95_ms": float(p95), "delay_max_ms": float(d.max())}


def direction_dict(r, verdict) -> dict:
    bursts = r.loss_bursts()
    primary, findings = verdict
    return {
        "sender": r.sender,
        "receiver": r.receiver,
        "sent_flow": "{}:{} > {}:{}".format(*r.sent_flow),
        "received_flow": "{}:{} > {}:{}".format(*r.received_flow),
        "sent": r.sent,
        "received": r.received,
        "lost": r.lost,
        "duplicated": r.duplicated,
        "reordered": r.reordered,
        "loss_fraction": r.loss_fraction,
        **_delay_stats(r.delay_ms),
        "clock_offset_s": r.clock_offset_s,
        "clock_drift_ppm": r.clock_drift_ppm,
        "loss_bursts": len(bursts),
        "longest_burst_packets": max((b[2] for b in bursts), default=0),
        "lost_at_s": [round(float(t), 6) for t in r.send_time[r.lost_mask]],
        "verdict": primary.pattern if primary else "clean",
        "findings": [finding_dict(f) for f in findings],
    }


def compare_dict(c, verdicts) -> dict:
    """JSON document of a comparison (``verdicts``: per direction, as diagnose_direction returns)."""
    return {
        "schema": "callscope-compare/1",
        "sent": c.sent_path,
        "received": c.received_path,
        "assumptions": list(c.assumptions),
        "directions": [direction_dict(r, v) for r, v in zip(c.directions, verdicts, strict=True)],
        "only_in_sent": ["{}:{} > {}:{}".format(*f) for f in c.only_in_sent],
        "only_in_received": ["{}:{} > {}:{}".format(*f) for f in c.only_in_received],
    }


def compare_text(c, verdicts) -> str:
    doc = compare_dict(c, verdicts)
    out = [f"two-point: {doc['sent']}  <->  {doc['received']}", ""]
    for d in doc["directions"]:
        out += [
            f"{d['sent_flow']}  (seen at the receiver as {d['received_flow']})",
            f"  sent {d['sent']}, received {d['received']}, lost {d['lost']} ({d['loss_fraction']:.1%}), "
            f"duplicated {d['duplicated']}, reordered {d['reordered']}; "
            f"{d['loss_bursts']} loss bursts, longest {d['longest_burst_packets']} packets",
        ]
        if d["delay_p50_ms"] is not None:
            out.append(
                f"  one-way delay above minimum: median {d['delay_p50_ms']:.1f} ms, p95 {d['delay_p95_ms']:.1f} ms, "
                f"max {d['delay_max_ms']:.1f} ms (clock offset {d['clock_offset_s']:+.6f} s, "
                f"drift {d['clock_drift_ppm']:+.1f} ppm)"
            )
        summary = next((f["summary"] for f in d["findings"] if f["pattern"] == d["verdict"]), "no degradation found")
        out += [f"  verdict: {d['verdict']} - {summary}", ""]
    for f in doc["only_in_sent"]:
        out.append(f"only in {doc['sent']}: {f}")
    for f in doc["only_in_received"]:
        out.append(f"only in {doc['received']}: {f}")
    out.append("assumed: " + "; ".join(doc["assumptions"]))
    return "\n".join(out) + "\n"
