"""The call's signalling: SIP for RTP calls, keepalives for messenger calls,
and the unanswered STUN / TURN requests of a call whose setup is blocked.

Signalling is never impaired by the scenario (except a blocked setup, which
is all signalling): it is what tells a reader the call went on while the
media suffered.
"""

from __future__ import annotations

import numpy as np

from callscope.capture.writer import int_to_ipv4, ipv4_to_int
from callscope.synth import wire
from callscope.synth.packets import Kind, Part, StreamInfo, random_bytes
from callscope.synth.plan import CallPlan
from callscope.synth.scenarios import A_TO_B, B_TO_A, DIRECTIONS, DropReason, SetupBlocked

SIP_PORT = 5060  # RFC 3261 §18.1.1
TURN_SERVER = ("198.51.100.10", wire.STUN_PORT)  # RFC 5737 documentation range
#: Where an opaque (messenger) call's client keeps its signalling session alive.
SIGNAL_SERVER = ("203.0.113.7", 443)  # RFC 5737 documentation range
KEEPALIVE_INTERVAL_S = 5.0
#: RFC 8445 §5.1.2.1 / §7.1.1: priority a check carries, as a peer-reflexive candidate
#: (type preference 110), local preference 65535, component 1 (RTP).
ICE_CHECK_PRIORITY = (110 << 24) | (65535 << 8) | (256 - 1)


def sip_timeline(plan: CallPlan) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Send and arrival times of INVITE, 200 OK, ACK, BYE and the BYE's 200 OK."""
    delay = plan.base_delay
    t_ok = plan.answer_s
    t_ok_at_a = t_ok + delay[1]
    # The call is hung up (BYE) as media ends; its 200 OK comes back a round trip later.
    t_bye = plan.duration + 0.005
    t_bye_ok = t_bye + delay[0] + 0.005
    times = (0.0, t_ok, t_ok_at_a + 0.002, t_bye, t_bye_ok)
    arrivals = (delay[0], t_ok_at_a, t_ok_at_a + 0.002 + delay[0], t_bye + delay[0], t_bye_ok + delay[1])
    return times, arrivals


def _sip_messages(rng: np.random.Generator, plan: CallPlan) -> list[tuple[int, bytes]]:
    """INVITE (A->B) with the SDP offer, 200 OK (B->A) with the answer, ACK (A->B);
    at the end BYE (A->B) and its 200 OK (RFC 3261 §15.1.1). Each with its direction."""
    ips, ports, codec, ptime_ms = plan.ips, plan.ports, plan.codec, plan.ptime_ms
    a = wire.SipParty("alice", int_to_ipv4(ips[0]), SIP_PORT, ports[0], rng.bytes(4).hex())
    b = wire.SipParty("bob", int_to_ipv4(ips[1]), SIP_PORT, ports[1], rng.bytes(4).hex())
    dialog = wire.SipDialog(a, b, f"{rng.bytes(8).hex()}@{a.ip}")
    branch = "z9hG4bK" + rng.bytes(6).hex()  # RFC 3261 §8.1.1.7 magic cookie
    session = int(rng.integers(1, 2**31))
    ruri = f"sip:{b.user}@{b.ip}"
    msgs = [
        (0, wire.sip_message(dialog, f"INVITE {ruri} SIP/2.0", "1 INVITE", branch, False,
                             wire.sdp(a, codec, session, ptime_ms))),
        (1, wire.sip_message(dialog, "SIP/2.0 200 OK", "1 INVITE", branch, True,
                             wire.sdp(b, codec, session + 1, ptime_ms))),
        (0, wire.sip_message(dialog, f"ACK {ruri} SIP/2.0", "1 ACK", "z9hG4bK" + rng.bytes(6).hex(), True)),
    ]
    bye_branch = "z9hG4bK" + rng.bytes(6).hex()
    msgs += [
        (0, wire.sip_message(dialog, f"BYE {ruri} SIP/2.0", "2 BYE", bye_branch, True)),
        (1, wire.sip_message(dialog, "SIP/2.0 200 OK", "2 BYE", bye_branch, True)),
    ]
    return msgs


def sip_parts(rng: np.random.Generator, plan: CallPlan) -> list[Part]:
    """The call's SIP dialog (:func:`_sip_messages`), one datagram each, never lost."""
    ips = plan.ips
    times, arrivals = sip_timeline(plan)
    parts = []
    for (d, msg), t, arr in zip(_sip_messages(rng, plan), times, arrivals, strict=True):
        parts.append(Part(
            kind=Kind.SIP, stream=-1, direction=d, send_time=np.array([t]),
            arrival_time=np.array([arr]), size=np.array([len(msg)], np.int32),
            drop=np.zeros(1, np.uint8), src=ips[d], dst=ips[1 - d], sport=SIP_PORT,
            dport=SIP_PORT, data=np.frombuffer(msg, np.uint8).copy(),
        ))
    return parts


def keepalive_parts(rng: np.random.Generator, plan: CallPlan) -> list[Part]:
    """A messenger client's keepalives to its signalling server, and the replies.

    Encrypted, small, every ~5 s until the call ends: a flow separate from the
    media, never impaired, which is why the capture runs to the end of the call
    even when the media flow is cut.
    """
    duration, ips, base_delay = plan.duration, plan.ips, plan.base_delay
    gaps = KEEPALIVE_INTERVAL_S * rng.uniform(0.8, 1.2, int(duration / (0.8 * KEEPALIVE_INTERVAL_S)) + 1)
    sent = np.concatenate([[0.0], np.cumsum(gaps)])
    sent = np.append(sent[sent < duration], duration + 0.005)
    replied = sent + base_delay[0] + 0.02
    server = ipv4_to_int(SIGNAL_SERVER[0])
    port = int(rng.integers(49152, 65535))
    parts = []
    for d, times, arrival in ((A_TO_B, sent, sent + base_delay[0]), (B_TO_A, replied, replied + base_delay[1])):
        size = rng.integers(40, 90, times.size).astype(np.int32)
        src, dst = (ips[0], server) if d == A_TO_B else (server, ips[0])
        sport, dport = (port, SIGNAL_SERVER[1]) if d == A_TO_B else (SIGNAL_SERVER[1], port)
        parts.append(Part(
            kind=Kind.KEEPALIVE, stream=-1, direction=d, send_time=times, arrival_time=arrival,
            size=size, drop=np.zeros(times.size, np.uint8), src=src, dst=dst, sport=sport,
            dport=dport, data=random_bytes(rng, int(size.sum())),
        ))
    return parts


def stun_parts(
    rng: np.random.Generator, params: SetupBlocked, plan: CallPlan
) -> tuple[list[Part], list[StreamInfo]]:
    """A's unanswered ICE Binding requests (to B) and TURN Allocate requests (to the server)."""
    ips, ports = plan.ips, plan.ports
    times, tx = params.request_times(plan.duration)
    turn_ip = ipv4_to_int(TURN_SERVER[0])
    targets = ((ips[1], ports[1]), (turn_ip, TURN_SERVER[1]))
    ids = [rng.bytes(12) for _ in range(params.transactions)]  # RFC 5389 §6: 96-bit id
    parts: list[Part] = []
    streams: list[StreamInfo] = []
    for which, (dst, dport) in enumerate(targets):
        sel = tx % 2 == which
        if not sel.any():
            continue
        method = wire.STUN_BINDING_REQUEST if which == 0 else wire.STUN_ALLOCATE_REQUEST
        msgs = [wire.stun_request(method, ids[j], ICE_CHECK_PRIORITY if which == 0 else None) for j in tx[sel]]
        size = np.array([len(m) for m in msgs], np.int32)
        n = int(sel.sum())
        parts.append(Part(
            kind=Kind.STUN, stream=which, direction=A_TO_B, send_time=times[sel],
            arrival_time=np.full(n, np.nan), size=size,
            drop=np.full(n, DropReason.BLOCKED, np.uint8), src=ips[0], dst=dst,
            sport=ports[0], dport=dport, data=np.frombuffer(b"".join(msgs), np.uint8).copy(),
        ))
        streams.append(StreamInfo(
            index=which, kind="stun", direction=DIRECTIONS[A_TO_B], src=int_to_ipv4(ips[0]),
            src_port=ports[0], dst=int_to_ipv4(dst), dst_port=dport, ssrc=None,
            payload_type=None, clock_rate=None, impaired=True, sent=n, delivered=0,
        ))
    return parts, streams
