"""diagnose(): run every detector over a capture's streams and calls, pick verdicts.

Each stream is turned into a slot :class:`~callscope.diagnose.trace.Trace`
and given to the per-stream detectors; calls get the call-level ones, which
need only a :class:`~callscope.diagnose.trace.TraceSummary` of each member,
so one stream's slot arrays are in memory at a time. A
stream's primary verdict is its best-supported finding. Mechanisms that
explain loss (an outage pattern, a policer, a shaper, a cut-off) outrank the
generic loss descriptions (random, bursty) when both fire, because a policer
*also* produces loss that a generic description would accept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from callscope.diagnose.calls import (
    MIN_MEDIA_PACKETS,
    detect_lone_opaque,
    detect_never_started,
    detect_one_way,
    detect_setup_blocked,
    detect_unreceived,
)
from callscope.diagnose.congestion import detect_congestion
from callscope.diagnose.cutoff import TOGETHER_S, judge_ending
from callscope.diagnose.downshift import detect_downshift
from callscope.diagnose.findings import Diagnosis, Finding
from callscope.diagnose.jitter import detect_jitter
from callscope.diagnose.ordinary_loss import detect_loss_pattern
from callscope.diagnose.outage import detect_outages
from callscope.diagnose.policing import detect_policing
from callscope.diagnose.queue_delay import find_ramp, pre_loss_rise
from callscope.diagnose.shaping import detect_shaping, own_queue
from callscope.diagnose.trace import Trace, TraceSummary, build_trace, summarise
from callscope.diagnose.vantage import activity_of, infer_vantage
from callscope.media.discover import MediaInventory
from callscope.media.stream import MediaStream
from callscope.metrics.measure import StreamMetrics

#: Findings below this confidence are not reported.
REPORT_THRESHOLD = 0.3
#: Fewest packets and seconds of a stream worth diagnosing; below, say so.
MIN_PACKETS = 50
MIN_DURATION_S = 2.0
#: A longer gap in arrivals is worth a note (docs/architecture.md pattern table, ``clean``: a pause is not loss).
PAUSE_S = 2.0

#: Tie-break and precedence: a mechanism explaining the loss beats a generic
#: description of it. Higher ranks first.
RANK: Mapping[str, int] = {
    "setup-blocked": 11,
    "one-way": 10,
    "cutoff": 9,
    "intermittent-outage": 8,
    "policing": 7,
    "shaping": 6,
    "congestion": 5,
    "codec-downshift": 4,
    "jitter": 3,
    "bursty-loss": 2,
    "random-loss": 1,
    "clean": 0,
}
#: Generic descriptions of loss; a mechanism finding whose confidence is at
#: least this fraction of theirs takes precedence over them.
GENERIC = frozenset({"random-loss", "bursty-loss", "jitter"})
MECHANISM_PRECEDENCE = 0.6


def _strength(f: Finding, generic_max: float) -> tuple[float, int]:
    c = f.confidence
    if f.pattern not in GENERIC and c >= MECHANISM_PRECEDENCE * generic_max:
        c = max(c, generic_max + 1e-6)
    return (c, RANK.get(f.pattern, 0))


def strongest(findings: list[Finding]) -> Finding | None:
    """The best-supported finding (mechanisms over generic loss, then rank)."""
    if not findings:
        return None
    generic = max((f.confidence for f in findings if f.pattern in GENERIC), default=0.0)
    return max(findings, key=lambda f: _strength(f, generic))


def _reference_end(inventory: MediaInventory, capture_end: float | None) -> float:
    """Until when the capture demonstrably ran (its last frame when known)."""
    if capture_end is not None:
        return float(capture_end)
    ends = [float(s.packets.time[-1]) for s in inventory.streams if len(s.packets)]
    ends += [e.last_time for e in inventory.stun.exchanges]
    return max(ends, default=0.0)


def _longest_pause(trace: Trace) -> tuple[float, float] | None:
    """Start and length of the longest gap between consecutive slots, both received,
    when it exceeds :data:`PAUSE_S` (RTP only: opaque slots are inferred from gaps)."""
    if trace.opaque or trace.slots < 2:
        return None
    both = trace.received[:-1] & trace.received[1:]
    gaps = np.where(both, np.diff(trace.time), 0.0)
    i = int(np.argmax(gaps))
    return (float(trace.time[i]), float(gaps[i])) if gaps[i] > PAUSE_S else None


def stream_findings(trace: Trace, reordered: int = 0) -> list[Finding]:
    """Every per-stream detector's finding on one trace (unfiltered)."""
    queue = find_ramp(trace)
    own = own_queue(trace, queue)
    rise = pre_loss_rise(trace, trace.loss_runs.start)
    found = [
        detect_outages(trace),
        detect_policing(trace, queue=queue, own=own),
        # Without a ramp or a queue of its own there is no shaper's queue.
        detect_shaping(trace, queue=queue, own=own) if queue is not None or own is not None else None,
        detect_congestion(trace, rise=rise, own=own),
        detect_loss_pattern(trace, rise=rise),
        detect_jitter(trace, reordered),
        detect_downshift(trace),
    ]
    return [f for f in found if f is not None]


def diagnose(
    inventory: MediaInventory,
    metrics: Mapping[str, StreamMetrics],
    capture_end: float | None = None,
) -> Diagnosis:
    """What degraded each stream and call of a capture.

    Parameters
    ----------
    inventory : MediaInventory
        Streams, calls and STUN/TURN summary from :func:`callscope.media.discover`.
    metrics : Mapping[str, StreamMetrics]
        Per-stream metrics keyed by stream id (the reorder count is taken
        from them when present).
    capture_end : float, optional
        Time of the capture's last frame, seconds since its first; without it
        the last media / STUN packet stands in (a cut-off then needs another
        stream or STUN traffic to outlive it).

    Returns
    -------
    Diagnosis
    """
    end = _reference_end(inventory, capture_end)
    notes: list[str] = []
    # One stream's slot arrays at a time: its own detectors run on them, the
    # call-level ones need only a few numbers of each stream, kept instead.
    summaries: dict[str, TraceSummary] = {}
    candidates: dict[str, list[Finding]] = {}
    for s in inventory.streams:
        n = len(s.packets)
        span = float(s.packets.time[-1] - s.packets.time[0]) if n else 0.0
        if n < 2:
            continue
        trace = build_trace(s, end)
        # Too short a stream for its own detectors still tells the call-level
        # ones when its direction stopped (a direction blocked 0.5 s in).
        summaries[s.id] = summarise(trace)
        if n < MIN_PACKETS or span < MIN_DURATION_S:
            notes.append(
                f"stream {s.id}: only {n} packets over {span:.1f} s, too few to diagnose"
            )
            continue
        pause = _longest_pause(trace)
        if pause is not None:
            notes.append(
                f"stream {s.id}: {pause[1]:.1f} s pause from {pause[0]:.1f} s with no packet missing "
                f"(the sender stopped: silence suppression or hold, not loss)"
            )
        m = metrics.get(s.id)
        reordered = m.reordered if m is not None else 0
        candidates[s.id] = stream_findings(trace, reordered)
        del trace

    call_findings: list[Finding] = []
    sip_calls = {c.call_id: c for c in inventory.sip.calls}
    activity = activity_of(inventory)
    vantage = infer_vantage(inventory)
    if vantage.local:
        seen = "before any network" if vantage.seen_before_network else f"having crossed only {vantage.crossed}"
        notes.append(f"vantage: {vantage.reason}; its own outgoing media is seen {seen}")
    by_id: dict[str, MediaStream] = {}
    for s in inventory.streams:
        by_id.setdefault(s.id, s)
    # Each stream's last arrival once, latest first: a capture of thousands of
    # calls must not recompute every stream's end for every call.
    ends = {sid: t.end for sid, t in summaries.items()}
    latest_first = sorted(ends, key=ends.__getitem__, reverse=True)
    for call in inventory.calls:
        members = [summaries[s] for s in call.stream_ids if s in summaries]
        if not members:
            continue
        # With several calls in the capture, its running on shows nothing about
        # this one when another call's media is what keeps it running.
        last = max(ends[s] for s in call.stream_ids if s in summaries)
        latest_other = next((ends[sid] for sid in latest_first if sid not in call.stream_ids), 0.0)
        call_end = end if latest_other <= last + TOGETHER_S else last
        streams = [by_id[t.stream_id] for t in members]
        sip = sip_calls.get(call.call_id) if call.call_id else None
        ending = judge_ending(call.id, members, streams, call_end, activity, vantage, sip)
        if ending.note:
            notes.append(ending.note)
        stop = ending.finding
        one_way = detect_one_way(call.id, members) if stop is None else None
        if one_way is None and stop is None:
            one_way = detect_unreceived(call.id, members, streams, inventory.rtcp.report_blocks)
        if one_way is None and stop is None and sip is not None:
            one_way = detect_never_started(call.id, sip.media, streams, members, vantage.local)
        if one_way is None and stop is None:
            one_way = detect_lone_opaque(call.id, members, streams, vantage.local)
        for f in (stop, one_way):
            if f is None or f.confidence < REPORT_THRESHOLD:
                continue
            call_findings.append(f)
            targets = [f.stream_id] if f.stream_id is not None else [t.stream_id for t in members]
            for sid in targets:
                candidates.setdefault(sid, []).append(f)

    media_packets = sum(len(s.packets) for s in inventory.streams)
    blocked = detect_setup_blocked(inventory.stun, media_packets)
    if blocked is not None and blocked.confidence >= REPORT_THRESHOLD:
        call_findings.append(blocked)

    findings: list[Finding] = list(call_findings)
    verdicts: dict[str, str] = {s.id: "clean" for s in inventory.streams}
    for sid, found in candidates.items():
        reported = [f for f in found if f.confidence >= REPORT_THRESHOLD]
        best = strongest(reported)
        if best is not None:
            verdicts[sid] = best.pattern
        findings.extend(f for f in reported if f.call_id is None)

    generic = max((f.confidence for f in findings if f.pattern in GENERIC), default=0.0)
    findings.sort(key=lambda f: _strength(f, generic), reverse=True)
    top = findings[0] if findings else None
    if top is None:
        if not summaries and media_packets < MIN_MEDIA_PACKETS and blocked is None:
            notes.append("no media stream long enough to diagnose")
        confidence = 1.0 - max(
            (f.confidence for fs in candidates.values() for f in fs), default=0.0
        )
        if not summaries:
            confidence = min(confidence, 0.3)
        return Diagnosis(tuple(findings), verdicts, "clean", round(float(np.clip(confidence, 0, 1)), 3), tuple(notes))
    return Diagnosis(tuple(findings), verdicts, top.pattern, top.confidence, tuple(notes))
