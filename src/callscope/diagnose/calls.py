"""Call-level patterns: one-way blocking and blocked setup.

These need more than one stream: one-way blocking shows as one direction
stopping (or never starting) while the other carries on; a blocked setup as
ICE / TURN requests that are never answered and no media at all. (A cut-off,
every direction stopping at once, is :mod:`callscope.diagnose.cutoff`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from callscope.diagnose.cutoff import MIN_MEDIA_PACKETS, MIN_SILENCE_S, SILENCE_RAMP
from callscope.diagnose.evidence import opaque_confidence, ramp
from callscope.diagnose.findings import AUDIBLE, Evidence, Finding
from callscope.diagnose.trace import TraceSummary
from callscope.media.rtcp import ReportBlock
from callscope.media.sip import SdpMedia
from callscope.media.stream import MediaStream
from callscope.media.stun import StunSummary

#: Loss fraction of the worse direction, and ratio to the better one, that make
#: a call one-way without either direction stopping.
ONE_WAY_LOSS = 0.5
ONE_WAY_RATIO = 10.0
#: Loss of the worse direction at which one-way blocking is certain.
ONE_WAY_FULL_LOSS = 0.9
#: Most confidence a lone direction of opaque media gets: under 0.5, since a
#: capture may have seen one side of an asymmetric route (a hint, never a
#: confident throttling verdict on an ordinary call).
LONE_OPAQUE_CONFIDENCE = 0.45
#: Reported fraction lost (RFC 3550 §6.4.1, per report interval) from which
#: the receiver is getting next to nothing.
STARVED_FRACTION = 0.9
#: Fewest unanswered STUN requests that show connectivity checks being blocked
#: (RFC 5389 §7.2.1: a client retransmits a request up to Rc = 7 times).
MIN_UNANSWERED = 3


def detect_one_way(call_id: str, traces: Sequence[TraceSummary]) -> Finding | None:
    """One direction loses far more than the other while both keep flowing.

    (A direction that stops is :func:`~callscope.diagnose.cutoff.judge_ending`'s
    case; one that never started, :func:`detect_never_started`'s.)
    """
    live = [t for t in traces if t.received_count >= MIN_MEDIA_PACKETS]
    if len(live) < 2:
        return None
    worst = max(live, key=lambda t: t.loss_fraction)
    best = min(live, key=lambda t: t.loss_fraction)
    if worst.loss_fraction < ONE_WAY_LOSS or worst.loss_fraction < ONE_WAY_RATIO * max(
        best.loss_fraction, 0.005
    ):
        return None
    confidence = ramp(worst.loss_fraction, ONE_WAY_LOSS, ONE_WAY_FULL_LOSS)
    if confidence < 0.2:
        return None
    return Finding(
        pattern="one-way",
        confidence=opaque_confidence(confidence, worst.opaque),
        summary=(
            f"stream {worst.stream_id} loses {100 * worst.loss_fraction:.0f} % while "
            f"{best.stream_id} loses {100 * best.loss_fraction:.1f} %: one direction blocked"
        ),
        stream_id=worst.stream_id,
        call_id=call_id,
        evidence=(
            Evidence("loss_fraction_worse", round(worst.loss_fraction, 4)),
            Evidence("loss_fraction_better", round(best.loss_fraction, 4)),
        ),
        audible=AUDIBLE["one-way"],
        spans=((round(worst.start, 3), round(worst.end, 3)),),
        params=(Evidence("onset_s", round(worst.start, 3), "s"),),
    )


#: A receiver's reports must show nothing new of a stream for at least this
#: long (two RTCP intervals, RFC 3550 §6.2) while the stream kept being sent.
FROZEN_REPORTS_S = MIN_SILENCE_S


def detect_unreceived(
    call_id: str, traces: Sequence[TraceSummary], streams: Sequence[MediaStream], blocks: Sequence[ReportBlock]
) -> Finding | None:
    """A stream still being sent that its receiver reports it no longer gets.

    Seen from the sender's end (or anywhere before the block), a direction
    blocked further on looks healthy: its packets go by. The receiver's RTCP
    reception reports (RFC 3550 §6.4.1) say otherwise: the extended highest
    sequence number it received stops advancing, or the fraction lost
    reaches nearly all, while the capture shows the sender going on.
    """
    by_ssrc: dict[int, list[ReportBlock]] = {}
    for b in blocks:
        by_ssrc.setdefault(b.source_ssrc, []).append(b)
    for t, s in zip(traces, streams, strict=True):
        reports = sorted(by_ssrc.get(s.ssrc, ()), key=lambda b: b.time) if s.ssrc is not None else []
        reports = [b for b in reports if t.start <= b.time <= t.end + FROZEN_REPORTS_S]
        if len(reports) < 2 or t.received_count < MIN_MEDIA_PACKETS:
            continue
        last = reports[-1]
        frozen = [b for b in reports if b.highest_seq == last.highest_seq]
        since = frozen[0].time
        starved = [b for b in reports if b.fraction_lost >= STARVED_FRACTION]
        if last.time - since >= FROZEN_REPORTS_S and t.end - since >= FROZEN_REPORTS_S:
            # The block fell just after the last packet the receiver got: the
            # one carrying its frozen highest sequence number, when seen here.
            seq = s.packets.seq
            hit = np.flatnonzero(seq == (last.highest_seq & 0xFFFF)) if seq is not None else np.zeros(0, int)
            if hit.size and float(s.packets.time[hit[-1]]) <= since:
                since = float(s.packets.time[hit[-1]])
            onset, why = since, (
                f"{s.dst}'s reception reports show its highest sequence number frozen at "
                f"{last.highest_seq & 0xFFFF} from {since:.1f} s to {last.time:.1f} s"
            )
        elif len(starved) >= 2 and starved[-1] is last:
            onset, why = starved[0].time, (
                f"{s.dst}'s reception reports give {100 * last.fraction_lost:.0f} % lost "
                f"in each interval from {starved[0].time:.1f} s"
            )
        else:
            continue
        sent_after = t.end - onset
        confidence = ramp(sent_after, *SILENCE_RAMP)
        if confidence < 0.2:
            continue
        return Finding(
            pattern="one-way",
            confidence=round(confidence, 3),
            summary=(
                f"stream {t.stream_id} from {s.src}:{s.src_port} goes on being sent until {t.end:.1f} s, "
                f"but {why}: it no longer reaches {s.dst}, one direction is blocked"
            ),
            stream_id=t.stream_id,
            call_id=call_id,
            evidence=(
                Evidence("reports_frozen_or_starved_from", round(onset, 3), "s"),
                Evidence("sent_for_after", round(sent_after, 3), "s"),
                Evidence("reported_fraction_lost", round(last.fraction_lost, 4)),
                Evidence("reports", len(reports)),
            ),
            audible=AUDIBLE["one-way"],
            spans=((round(onset, 3), round(t.end, 3)),),
            params=(Evidence("onset_s", round(onset, 3), "s"),),
        )
    return None


def detect_never_started(
    call_id: str, offers: Sequence[SdpMedia], streams: Sequence[MediaStream], traces: Sequence[TraceSummary],
    local: frozenset[str] = frozenset(),
) -> Finding | None:
    """A party that said in SDP it would send media, is sent media, but never sends any.

    The SDP direction attribute (RFC 4566 §6: ``sendrecv`` by default,
    ``sendonly``) says who means to send; a party that is receiving media at
    the address it announced but never sends from it has its direction
    blocked (or is one-way by fault). ``recvonly`` parties are one-way by design.
    A party on the capture's own link (``local``, :mod:`~callscope.diagnose.vantage`)
    would be seen sending before any network could block it: its silence is its own.
    """
    for m in offers:
        if m.media != "audio" or m.port == 0 or m.direction not in ("sendrecv", "sendonly"):
            continue
        if m.address in local:
            continue
        sends = [s for s in streams if s.src == m.address and len(s.packets) >= MIN_MEDIA_PACKETS]
        fed = [t for s, t in zip(streams, traces, strict=True) if s.dst == m.address]
        if sends or not fed:
            continue
        other = max(fed, key=lambda t: t.end - t.start)
        span = other.end - other.start
        confidence = ramp(span, *SILENCE_RAMP)
        if confidence < 0.2:
            continue
        return Finding(
            pattern="one-way",
            confidence=opaque_confidence(0.9 * confidence, other.opaque),
            summary=(
                f"{m.address} announced {m.direction} audio on port {m.port} and was sent "
                f"{span:.1f} s of media ({other.stream_id}), but never sent any itself: "
                f"its direction is blocked"
            ),
            stream_id=other.stream_id,
            call_id=call_id,
            evidence=(
                Evidence("silent_party_packets", 0, "packets"),
                Evidence("other_direction_for", round(span, 3), "s"),
            ),
            audible=AUDIBLE["one-way"],
            spans=((round(other.start, 3), round(other.end, 3)),),
            params=(Evidence("onset_s", round(other.start, 3), "s"),),
        )
    return None


def detect_lone_opaque(
    call_id: str, traces: Sequence[TraceSummary], streams: Sequence[MediaStream], local: frozenset[str] = frozenset()
) -> Finding | None:
    """Encrypted messenger media flowing one way only, for the whole call.

    A messenger voice call always carries media both ways (there is no
    ``recvonly`` for it as in SDP), so a lone direction of opaque voice lasting
    :data:`MIN_SILENCE_S` or more means the other one is blocked. RTP without
    signalling is not judged this way: recordings of one direction are common.
    When the missing direction's sender is on the capture's own link
    (``local``), nothing could block it before the capture: it sent nothing.
    """
    if not streams or any(s.kind != "opaque" for s in streams):
        return None
    if len({(s.src, s.dst) for s in streams}) != 1 or streams[0].dst in local:
        return None
    only = max(traces, key=lambda t: t.end - t.start)
    span = only.end - only.start
    # Below 0.5: a lone direction may as well be a capture that saw one
    # side of an asymmetric route; it stays a hint, not a confident verdict.
    confidence = LONE_OPAQUE_CONFIDENCE * ramp(span, *SILENCE_RAMP)
    if confidence < 0.2:
        return None
    s = streams[0]
    return Finding(
        pattern="one-way",
        confidence=opaque_confidence(confidence, only.opaque),
        summary=(
            f"encrypted voice flows only from {s.src}:{s.src_port} to {s.dst}:{s.dst_port} "
            f"({span:.1f} s) and never back: the other direction of the call is blocked "
            f"(a messenger call always carries media both ways)"
        ),
        stream_id=only.stream_id,
        call_id=call_id,
        evidence=(
            Evidence("return_packets", 0, "packets"),
            Evidence("one_way_for", round(span, 3), "s"),
        ),
        audible=AUDIBLE["one-way"],
        spans=((round(only.start, 3), round(only.end, 3)),),
        params=(Evidence("onset_s", round(only.start, 3), "s"),),
    )


def detect_setup_blocked(stun: StunSummary, media_packets: int) -> Finding | None:
    """STUN/TURN requests repeated without a success response, and no media.

    References
    ----------
    RFC 5389 §7.2.1 (request retransmission), RFC 8445 §7.2 (ICE connectivity
    checks), RFC 5766 §6 (TURN Allocate).
    """
    if media_packets >= MIN_MEDIA_PACKETS or not stun.exchanges:
        return None
    requests = stun.requests
    answered = stun.success_responses
    unanswered = stun.unanswered
    # Seen from the answering side, blocked responses go out and the client
    # keeps retransmitting transactions that were answered.
    unheard = tuple(e for e in stun.exchanges if e.retried_after_answer >= MIN_UNANSWERED - 1)
    responses_lost = bool(unheard) and not unanswered
    if requests < MIN_UNANSWERED or (answered > 0 and not responses_lost) or not (unanswered or unheard):
        return None
    if responses_lost:
        unanswered = unheard
    servers = {(e.server, e.server_port) for e in unanswered}
    first = min(e.first_time for e in unanswered)
    last = max(e.last_time for e in unanswered)
    retrans = sum(e.retransmissions for e in unanswered)
    transactions = sum(e.transactions for e in unanswered)
    confidence = ramp(requests, MIN_UNANSWERED - 1, 2 * MIN_UNANSWERED) * (
        1.0 if media_packets == 0 else 0.7
    )
    if confidence < 0.2:
        return None
    evidence = (
        Evidence("stun_requests", requests),
        Evidence("stun_transactions", transactions),
        Evidence("retransmissions", retrans),
        Evidence("success_responses", answered),
        Evidence("retried_after_answer", sum(e.retried_after_answer for e in unanswered)),
        Evidence("servers", len(servers)),
        Evidence("media_packets", media_packets, "packets"),
    )
    if responses_lost:
        retried = sum(e.retried_after_answer for e in unanswered)
        summary = (
            f"{requests} STUN/TURN requests ({transactions} transactions) to {len(servers)} address(es) "
            f"over {last - first:.1f} s were answered, yet {retried} were sent again after their answer: "
            f"the responses never reached the client, and no media followed: call setup blocked "
            f"(responses dropped on the way back)"
        )
    else:
        summary = (
            f"{requests} STUN/TURN requests ({transactions} transactions, {retrans} retransmissions) "
            f"to {len(servers)} address(es) over {last - first:.1f} s, not one success response, "
            f"and no media: call setup blocked"
        )
    return Finding(
        pattern="setup-blocked",
        confidence=round(confidence, 3),
        summary=summary,
        evidence=evidence,
        audible=AUDIBLE["setup-blocked"],
        spans=((round(first, 3), round(last, 3)),),
        params=(Evidence("requests", requests), Evidence("transactions", transactions)),
    )
