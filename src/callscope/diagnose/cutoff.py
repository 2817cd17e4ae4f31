"""Cut-off and one-way blocking: how a call's media stopped, and whether anyone was still there.

Media stopping is not evidence of anything by itself: every call ends. What
tells a cut from a hang-up is what the capture shows after the media stopped:

- an ordinary **hang-up**: every direction stops together and the call is
  ended there (a SIP BYE or RTCP BYE at the stop), or simply nothing more is
  heard from either side — silence alone proves no cut;
- a **cut-off**: the media stops while something shows the call was still
  up — its signalling goes on (a BYE long after the media died), an endpoint's
  RTCP or STUN goes on, or one side keeps sending its media into the void
  while nothing at all comes back from the other (how a cut looks from an
  endpoint, whose own media is captured before the network drops it);
- **one-way** blocking: one direction's media stops while its sender is
  demonstrably alive (its RTCP reports go on) and the other direction carries on.

A direction that stops where the capture was taken (its sender is the
capture's own host, :mod:`~callscope.diagnose.vantage`) is the application's
own choice, never an impairment.

References
----------
RFC 3261 §15 (BYE ends a SIP dialog); RFC 3550 §6.6 (RTCP BYE), §6.2 (RTCP
report interval, 5 s); RFC 7675 (ICE consent freshness checks every 5 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callscope.diagnose.evidence import opaque_confidence, ramp
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import TraceSummary
from callscope.diagnose.vantage import Activity, Endpoint, Vantage, control_endpoints
from callscope.media.sip import SipCall
from callscope.media.stream import MediaStream

#: A direction stopped this long before the other, or the whole call this long
#: before the capture's end, is a stop worth explaining (docs/architecture.md, pattern table).
MIN_SILENCE_S = 5.0
#: Confidence ramp of a silence's length (s) around :data:`MIN_SILENCE_S`:
#: none half a second short of it, full two seconds past it.
SILENCE_RAMP = (MIN_SILENCE_S - 0.5, MIN_SILENCE_S + 2.0)
#: Confidence ramp of the share of packets delivered before a stop: a stream
#: that was mostly lost before it was not cut from working service. Lab cuts:
#: 99-100 % delivered before; lab outages and policers that end a call: less.
DELIVERED_BEFORE = (0.5, 0.8)
#: Shortest stretch of service before a cut of the whole call for the change
#: point to be credible.
MIN_SERVICE_S = 1.0
#: Directions of a call stopping within this of each other stopped together (s).
TOGETHER_S = 1.0
#: A party's control traffic or the call's signalling this long after the
#: media stopped shows the call was still up: more than an RTCP report
#: interval's jitter around the stop (RFC 3550 §6.2), far less than the 5 s
#: interval itself, so a report or consent check due after a cut is seen.
ALIVE_AFTER_S = 2.0
#: A BYE (SIP or RTCP) this close to the media's end is the call being hung up.
HANGUP_WINDOW_S = 2.0
#: Fewest packets a direction needs to count as having carried media.
MIN_MEDIA_PACKETS = 10


@dataclass(frozen=True)
class Direction:
    """The media one party sent the other in a call (all its streams)."""

    sender: Endpoint
    receiver: Endpoint
    traces: tuple[TraceSummary, ...]
    ssrcs: tuple[int, ...]

    @property
    def end(self) -> float:
        return max(t.end for t in self.traces)

    @property
    def start(self) -> float:
        return min(t.start for t in self.traces)

    @property
    def last(self) -> TraceSummary:
        return max(self.traces, key=lambda t: t.end)

    @property
    def opaque(self) -> bool:
        return all(t.opaque for t in self.traces)

    @property
    def delivered(self) -> float:
        slots = sum(t.slots for t in self.traces)
        return sum(t.received_count for t in self.traces) / slots if slots else float("nan")

    @property
    def packets(self) -> int:
        return sum(t.received_count for t in self.traces)

    @property
    def bytes(self) -> float:
        return sum(t.received_bytes for t in self.traces)

    @property
    def ptime(self) -> float:
        return min(t.ptime for t in self.traces)

    @property
    def ip_bytes(self) -> float:
        """Bytes as IP packets (what a byte quota meters: nftables `quota` counts the IP length)."""
        return sum(t.received_bytes + t.header_bytes * t.received_count for t in self.traces)


def directions(traces: Sequence[TraceSummary], streams: Sequence[MediaStream]) -> list[Direction]:
    """The call's media directions: streams grouped by sending and receiving host.

    A stream that moves to a new port or SSRC (re-INVITE, transfer) continues
    its direction. Where both parties share one address (a loopback test),
    the ports tell them apart.
    """
    groups: dict[tuple, list[tuple[TraceSummary, MediaStream]]] = {}
    for t, s in zip(traces, streams, strict=True):
        if t.received_count < MIN_MEDIA_PACKETS:
            continue
        key = (s.src, s.dst) if s.src != s.dst else ((s.src, s.src_port), (s.dst, s.dst_port))
        groups.setdefault(key, []).append((t, s))
    out = []
    for members in groups.values():
        latest = max(members, key=lambda m: m[0].end)[1]
        out.append(
            Direction(
                sender=(latest.src, latest.src_port),
                receiver=(latest.dst, latest.dst_port),
                traces=tuple(t for t, _ in members),
                ssrcs=tuple(s.ssrc for _, s in members if s.ssrc is not None),
            )
        )
    return out


@dataclass(frozen=True)
class Ending:
    """How a call's media stopped: a finding (cut-off or one-way) or a note saying why none."""

    finding: Finding | None = None
    note: str | None = None


def _alive_after(activity: Activity, d: Direction, t: float) -> float | None:
    """The last control packet from ``d``'s sender later than ``t`` + :data:`ALIVE_AFTER_S`."""
    return activity.after(control_endpoints(*d.sender), t + ALIVE_AFTER_S)


def _bye_near(activity: Activity, dirs: Sequence[Direction], t: float) -> float | None:
    """An RTCP BYE of the call's sources within :data:`HANGUP_WINDOW_S` of ``t``."""
    times = [activity.byes[s] for d in dirs for s in d.ssrcs if s in activity.byes]
    near = [b for b in times if abs(b - t) <= HANGUP_WINDOW_S]
    return min(near) if near else None


def judge_ending(
    call_id: str,
    traces: Sequence[TraceSummary],
    streams: Sequence[MediaStream],
    reference_end: float,
    activity: Activity | None = None,
    vantage: Vantage | None = None,
    sip: SipCall | None = None,
) -> Ending:
    """Whether the call's media stopped, and if so whether it was cut, blocked one way, or ended.

    Parameters
    ----------
    call_id : str
    traces, streams : sequences of the same length
        The call's streams and their summaries.
    reference_end : float
        Until when the capture shows this call could have gone on (its last
        frame, unless another call's media is what keeps it running).
    activity : Activity, optional
        The capture's control traffic per endpoint (RTCP, STUN) and RTCP BYEs.
    vantage : Vantage, optional
        Where the capture was taken.
    sip : SipCall, optional
        The call's signalling, when the capture has it.
    """
    activity = activity if activity is not None else Activity()
    vantage = vantage if vantage is not None else Vantage()
    dirs = directions(traces, streams)
    if not dirs:
        return Ending()
    # The call's media may have moved between paths (a relay leg, then the
    # direct one; a re-INVITE to another host): only the leg that carried it
    # last can show how the call stopped.
    legs: dict[frozenset, list[Direction]] = {}
    for d in dirs:
        legs.setdefault(_leg(d), []).append(d)
    latest = max(legs.values(), key=lambda ds: max(d.end for d in ds))
    latest.sort(key=lambda d: d.end)
    stopped, running = latest[0], latest[-1]
    if len(latest) >= 2 and running.end - stopped.end >= MIN_SILENCE_S:
        return _one_direction_stopped(call_id, stopped, running, dirs, activity, vantage)
    return _all_stopped(call_id, latest, reference_end, activity, sip)


def _leg(d: Direction) -> frozenset:
    """The pair of parties a direction runs between (both directions share it)."""
    if d.sender[0] != d.receiver[0]:
        return frozenset((d.sender[0], d.receiver[0]))
    return frozenset((d.sender, d.receiver))


def _one_direction_stopped(
    call_id: str,
    stopped: Direction,
    running: Direction,
    dirs: Sequence[Direction],
    activity: Activity,
    vantage: Vantage,
) -> Ending:
    t = stopped.end
    gap = running.end - t
    sender = f"{stopped.sender[0]}:{stopped.sender[1]}"
    if stopped.sender[0] in vantage.local:
        if vantage.seen_before_network:
            why = ("so its own media never met the network: the application stopped it (hold, transfer "
                   "or hang-up), not an impairment")
        else:
            why = (f"so its own media was seen having crossed only {vantage.crossed}: the application or "
                   f"that link stopped it, not a middlebox beyond")
        return Ending(note=(
            f"call {call_id}: {sender} stopped sending at {t:.2f} s while the other side went on for "
            f"{gap:.1f} s; {vantage.reason}, {why}"
        ))
    bye = _bye_near(activity, [stopped], t)
    if bye is not None:
        return Ending(note=(
            f"call {call_id}: {sender} ended its media at {t:.2f} s with an RTCP BYE while the other "
            f"side went on: it left the call"
        ))
    alive = _alive_after(activity, stopped, t)
    c = ramp(gap, *SILENCE_RAMP) * ramp(running.delivered, *DELIVERED_BEFORE)
    victim = stopped.last
    common = (
        Evidence("stopped_at", round(t, 3), "s"),
        Evidence("other_direction_until", round(running.end, 3), "s"),
        Evidence("one_way_for", round(gap, 3), "s"),
        Evidence("loss_fraction_stopped", round(victim.loss_fraction, 4)),
        Evidence("loss_fraction_other", round(running.last.loss_fraction, 4)),
    )
    if alive is not None:
        finding = Finding(
            pattern="one-way",
            confidence=opaque_confidence(c, stopped.opaque),
            summary=(
                f"media from {sender} stops at {t:.2f} s while its RTCP/STUN goes on until {alive:.1f} s "
                f"and the other direction carries on for another {gap:.1f} s: that party is still in the "
                f"call, its media is blocked one way"
            ),
            stream_id=victim.stream_id,
            call_id=call_id,
            evidence=common + (Evidence("sender_alive_until", round(alive, 3), "s"),),
            audible=AUDIBLE["one-way"],
            spans=((round(t, 3), round(running.end, 3)),),
            params=(Evidence("onset_s", round(t, 3), "s"),),
        )
        return Ending(finding)
    cut_at = t + 0.5 * stopped.ptime
    media_start = min(d.start for d in dirs)
    # B counts the call's flow both ways up to the cut, as a middlebox
    # metering the call would; the other side's share is what it sent by then.
    b = stopped.bytes + sum(tr.bytes_before(cut_at) for tr in running.traces)
    finding = Finding(
        pattern="cutoff",
        confidence=opaque_confidence(0.9 * c, stopped.opaque),
        summary=(
            f"everything from {sender} stops at {cut_at:.2f} s (no media, RTCP or STUN after it) while "
            f"the other side keeps sending for another {gap:.1f} s into the silence: the call was cut "
            f"after T = {cut_at - media_start:.2f} s, B = {stopped.bytes:.0f} bytes from {sender} "
            f"({b:.0f} both ways), N = {stopped.packets} packets from {sender} "
            f"(seen from one end, a cut of both directions and a block of this one look alike)"
        ),
        stream_id=victim.stream_id,
        call_id=call_id,
        evidence=common,
        audible=AUDIBLE["cutoff"],
        spans=((round(cut_at, 3), round(running.end, 3)),),
        params=(
            Evidence("time_s", round(cut_at - media_start, 3), "s"),
            Evidence("at_s", round(cut_at, 3), "s"),
            # What was seen cut: the silent direction's media (UDP payload,
            # and as IP packets, what an nftables quota meters).
            Evidence("bytes", stopped.bytes, "B"),
            Evidence("ip_bytes", stopped.ip_bytes, "B"),
            Evidence("bytes_both_ways", round(b, 1), "B"),
            Evidence("packets", stopped.packets, "packets"),
        ),
    )
    return Ending(finding)


def _all_stopped(
    call_id: str,
    dirs: Sequence[Direction],
    reference_end: float,
    activity: Activity,
    sip: SipCall | None,
) -> Ending:
    last = max(d.end for d in dirs)
    media_start = min(d.start for d in dirs)
    silence = reference_end - last
    service = last - media_start
    if silence < MIN_SILENCE_S or service < MIN_SERVICE_S:
        return Ending()
    spread = last - min(d.end for d in dirs)
    hangup = None
    if sip is not None and sip.bye_time is not None and sip.bye_time <= last + HANGUP_WINDOW_S:
        hangup = f"a SIP BYE at {sip.bye_time:.2f} s"
    rtcp_bye = _bye_near(activity, dirs, last)
    if hangup is None and rtcp_bye is not None:
        hangup = f"an RTCP BYE at {rtcp_bye:.2f} s"
    if hangup is not None:
        return Ending(note=f"call {call_id}: media ended at {last:.2f} s with {hangup}: hung up")

    signs = []
    if sip is not None and sip.last_time > last + ALIVE_AFTER_S:
        what = "a BYE" if sip.bye_time is not None and sip.bye_time > last else "signalling"
        signs.append((f"{what} {sip.last_time - last:.1f} s after the media stopped", sip.last_time))
    for d in dirs:
        for who in (d.sender, d.receiver):
            alive = activity.after(control_endpoints(*who), last + ALIVE_AFTER_S)
            if alive is not None:
                signs.append((f"{who[0]}:{who[1]} still sending RTCP/STUN until {alive:.1f} s", alive))
    if not signs:
        return Ending(note=(
            f"call {call_id}: all media ended together at {last:.2f} s and the capture ran on "
            f"{silence:.1f} s with no sign that either side was still there (no signalling, RTCP or "
            f"STUN after it): an ordinary end of the call as far as the capture shows; a cut-off "
            f"would need such a sign"
        ))
    together = spread <= TOGETHER_S
    delivered = min(d.delivered for d in dirs)
    n = sum(d.packets for d in dirs)
    b = float(sum(d.bytes for d in dirs))
    cut_at = last + 0.5 * min(d.ptime for d in dirs)
    confidence = (
        ramp(silence, *SILENCE_RAMP)
        * ramp(service, MIN_SERVICE_S, 3 * MIN_SERVICE_S)
        * ramp(delivered, *DELIVERED_BEFORE)
        * (1.0 if together else 0.6)
    )
    if confidence < 0.2:
        return Ending()
    why = "; ".join(s for s, _ in signs[:3])
    evidence = (
        Evidence("last_packet", round(last, 3), "s"),
        Evidence("silence_to_end", round(silence, 3), "s"),
        Evidence("directions", len(dirs)),
        Evidence("stop_spread", round(spread, 3), "s"),
        Evidence("delivered_before_cut", round(delivered, 4)),
        Evidence("alive_after_stop", round(max(t for _, t in signs) - last, 3), "s"),
    )
    params = (
        Evidence("time_s", round(cut_at - media_start, 3), "s"),
        Evidence("at_s", round(cut_at, 3), "s"),
        Evidence("bytes", b, "B"),
        Evidence("ip_bytes", float(sum(d.ip_bytes for d in dirs)), "B"),
        Evidence("packets", n, "packets"),
    )
    summary = (
        f"{'all ' + str(len(dirs)) + ' directions' if len(dirs) > 1 else 'the stream'} delivered normally "
        f"({100 * delivered:.1f} % or better) for {cut_at - media_start:.2f} s, then stopped "
        f"{'together' if together else f'within {spread:.1f} s of each other'} at {cut_at:.2f} s "
        f"while the call was still up ({why}): cut off after T = {cut_at - media_start:.2f} s, "
        f"B = {b:.0f} bytes, N = {n} packets"
    )
    opaque = all(d.opaque for d in dirs)
    if opaque:
        summary += " (encrypted media without sequence numbers)"
    return Ending(Finding(
        pattern="cutoff",
        confidence=opaque_confidence(confidence, opaque),
        summary=summary,
        call_id=call_id,
        evidence=evidence,
        audible=AUDIBLE["cutoff"],
        spans=((round(cut_at, 3), round(reference_end, 3)),),
        params=params,
    ))
