"""Simulate one voice call (or many concurrent streams) through an impaired network.

The call runs between endpoint A (the caller, ``10.0.0.1``) and endpoint B
(``10.0.0.2``): a SIP INVITE / 200 OK / ACK exchange with SDP, then RTP both
ways (or opaque encrypted media with the same cadence) and RTCP sender reports
every ~5 s. Each direction's media goes through the scenario's mechanism,
then a path with a base propagation delay and a little random queueing.

Where the capture is taken (``vantage``) decides which time each packet is
recorded at. ``"receivers"`` (the default) records every packet as it reaches
its destination, lost ones never: a merged view of both ends' receive sides,
in which an impairment in either direction is visible — what a labelled
corpus needs, since from one endpoint a cut-off of both directions and a
block of the incoming one look alike. ``"a"`` (or ``"b"``) is a capture on
that endpoint, as on a user's own device: its own packets are recorded when
sent, whatever the network then does to them, the peer's when they arrive.
Setup-blocked calls are always seen from ``"a"``: the unanswered requests
never arrive anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
from scipy.signal import lfilter

from callscope.capture.writer import int_to_ipv4, ipv4_to_int
from callscope.errors import CallscopeError
from callscope.synth import wire
from callscope.synth.codecs import DEFAULT_PTIME_MS, OPAQUE_OVERHEAD_BYTES, Codec, codec_named
from callscope.synth.scenarios import (
    A_TO_B,
    B_TO_A,
    DIRECTIONS,
    CallContext,
    Downshift,
    DropReason,
    Effect,
    Offered,
    Outcome,
    Scenario,
    SetupBlocked,
    scenario_named,
    with_overrides,
)
from callscope.synth.sender import MediaSchedule, media_schedule
from callscope.synth.voice import linear_to_alaw, linear_to_ulaw, speech_like

#: Capture start, Unix time in ns (2023-11-14 22:13:20 UTC); packets are relative to it.
EPOCH_NS = 1_700_000_000 * 1_000_000_000
ADDRESS_A = "10.0.0.1"
ADDRESS_B = "10.0.0.2"
TURN_SERVER = ("198.51.100.10", wire.STUN_PORT)  # RFC 5737 documentation range
#: Where an opaque (messenger) call's client keeps its signalling session alive.
SIGNAL_SERVER = ("203.0.113.7", 443)  # RFC 5737 documentation range
KEEPALIVE_INTERVAL_S = 5.0
SIP_PORT = 5060  # RFC 3261 §18.1.1
#: RFC 8445 §5.1.2.1 / §7.1.1: priority a check carries, as a peer-reflexive candidate
#: (type preference 110), local preference 65535, component 1 (RTP).
ICE_CHECK_PRIORITY = (110 << 24) | (65535 << 8) | (256 - 1)
RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2: recommended minimum interval
RTP_PORT_RANGE = (16384, 32767)  # the range most softphones pick RTP ports from
VANTAGES = ("a", "b", "receivers")
G711_ENCODERS = {"pcmu": linear_to_ulaw, "pcma": linear_to_alaw}
#: RFC 6716 §3.1 Table 2: TOC configuration numbers of SILK wideband frames by duration (ms).
OPUS_SILK_WB_CONFIG = {10: 8, 20: 9, 40: 10, 60: 11}
#: Voice pitch of A's and B's speech-like signal (a low and a higher voice), Hz.
VOICE_PITCH_HZ = (120.0, 210.0)
#: The path and sender of every stream of :func:`simulate_many_streams`.
MANY_NOISE_S = 0.5e-3
MANY_CLOCK_JITTER_S = 0.3e-3
MANY_HICCUPS_PER_S = 0.1


class Kind(IntEnum):
    """What a simulated datagram carries."""

    RTP = 0
    RTCP = 1
    SIP = 2
    STUN = 3
    OPAQUE = 4
    KEEPALIVE = 5


@dataclass(frozen=True)
class StreamInfo:
    """Ground truth about one flow of the call (one direction of media, or its RTCP)."""

    index: int
    kind: str  # "rtp", "rtcp", "opaque", "stun"
    direction: str  # "a->b" or "b->a"
    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int | None
    payload_type: int | None
    clock_rate: int | None
    impaired: bool
    sent: int
    delivered: int


@dataclass(frozen=True)
class Network:
    """The path under the scenario, per direction (A->B, B->A): true values."""

    base_delay_s: tuple[float, float]  # propagation + fixed processing
    queue_noise_s: tuple[float, float]  # mean of the exponential random queueing delay
    clock_jitter_s: tuple[float, float]  # sender's send-time error, standard deviation
    hiccups_per_s: tuple[float, float]  # sender scheduling stalls (5-40 ms each)
    background_loss: float  # independent loss on both paths, under the scenario


@dataclass(frozen=True)
class SimulatedCall:
    """A simulated call with per-packet ground truth, in send order.

    ``scenario`` holds the true parameters of the impairment (drawn or set),
    ``network`` those of the path under it, ``facts`` numbers measured while
    simulating (an actual cut-off time, the loss a Gilbert chain should give),
    ``windows`` the spans during which the impairment acted, and ``streams``
    every flow with what was sent and delivered.

    Per-packet arrays (one row per datagram sent by anyone, lost or not):

    - ``kind`` (:class:`Kind`), ``stream`` (index into ``streams``, -1 for
      SIP), ``direction`` (0 A->B, 1 B->A)
    - ``send_time``, ``arrival_time`` (NaN if lost) and ``capture_time`` (NaN
      if not in the capture), seconds since the capture start
    - ``seq`` extended RTP sequence number (first seq + index; -1 if not RTP),
      ``rtp_ts`` unwrapped RTP timestamp (-1 if not RTP)
    - ``size`` UDP payload bytes, ``drop`` (:class:`DropReason`)
    - ``src``, ``dst`` (IPv4 as uint32), ``sport``, ``dport``, ``ip_id``
    - ``payload_start`` into ``data``, the buffer of every UDP payload
    """

    scenario: Scenario
    network: Network
    facts: dict[str, float]
    windows: tuple[tuple[float, float], ...]
    seed: int
    duration: float
    codec: Codec
    opaque: bool
    vantage: str
    media_start: float
    streams: tuple[StreamInfo, ...]
    kind: np.ndarray
    stream: np.ndarray
    direction: np.ndarray
    send_time: np.ndarray
    arrival_time: np.ndarray
    capture_time: np.ndarray
    seq: np.ndarray
    rtp_ts: np.ndarray
    size: np.ndarray
    drop: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    ip_id: np.ndarray
    payload_start: np.ndarray
    data: np.ndarray = field(repr=False)
    epoch_ns: int = EPOCH_NS

    @property
    def label(self) -> str:
        return self.scenario.label

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def lost(self) -> np.ndarray:
        return np.isnan(self.arrival_time)

    def captured(self) -> np.ndarray:
        """Indices of the packets in the capture, in capture (time) order."""
        idx = np.flatnonzero(~np.isnan(self.capture_time))
        return idx[np.argsort(self.capture_time[idx], kind="stable")]

    def payload(self, i: int) -> bytes:
        s = int(self.payload_start[i])
        return self.data[s : s + int(self.size[i])].tobytes()


@dataclass
class _Part:
    """Rows of one kind of datagram, assembled before they are merged and sorted."""

    kind: int
    stream: int
    direction: int
    send_time: np.ndarray
    arrival_time: np.ndarray
    size: np.ndarray
    drop: np.ndarray
    src: int
    dst: int
    sport: int
    dport: int
    data: np.ndarray
    seq: np.ndarray | None = None
    rtp_ts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.send_time.shape[0])


def _path(
    rng: np.random.Generator, outcome: Outcome, base: float, noise: float, loss: float = 0.0
) -> np.ndarray:
    """Arrival at the far end: impairment exit + propagation + queueing noise.

    On a FIFO path a packet cannot overtake the one before it. ``loss`` is the
    path's own background loss (independent), recorded in ``outcome.reason``.
    """
    arrival = outcome.depart + base + rng.exponential(noise, outcome.depart.size)
    if loss > 0:
        background = (rng.random(arrival.size) < loss) & ~np.isnan(arrival)
        arrival[background] = np.nan
        outcome.reason[background] = DropReason.RANDOM
    if outcome.fifo:
        ok = ~np.isnan(arrival)
        arrival[ok] = np.maximum.accumulate(arrival[ok])
    return arrival


def _random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.frombuffer(rng.bytes(int(n)), np.uint8).copy()


def _stamp(body: np.ndarray, sizes: np.ndarray, headers: np.ndarray) -> np.ndarray:
    """Write fixed-length ``headers`` (n, h) at the start of each payload in ``body``."""
    starts = np.cumsum(sizes) - sizes
    h = headers.shape[1]
    body[(starts[:, None] + np.arange(h)[None, :]).ravel()] = headers.ravel()
    return body


def _media_part(
    rng: np.random.Generator,
    d: int,
    sched: MediaSchedule,
    arrival: np.ndarray,
    outcome: Outcome,
    codec: Codec,
    opaque: bool,
    ssrc: int,
    seq0: int,
    ts0: int,
    ips: tuple[int, int],
    ports: tuple[int, int],
    voice: bool = True,
) -> _Part:
    """One direction's media datagrams.

    RTP headers per RFC 3550 §5.1; G.711 payloads carry a speech-like signal
    (:mod:`callscope.synth.voice`) when ``voice``, every other payload is
    random bytes (what an encrypted or unsimulated codec looks like).
    """
    n = len(sched)
    header = OPAQUE_OVERHEAD_BYTES if opaque else wire.RTP_HEADER_LEN
    size = (sched.payload + header).astype(np.int32)
    body = _random_bytes(rng, int(size.sum()))
    encode = G711_ENCODERS.get(codec.name)
    if voice and encode is not None and not opaque and n:
        # One G.711 octet per sample: the frames tile the signal back to back.
        samples = encode(speech_like(rng, int(sched.payload.sum()), VOICE_PITCH_HZ[d]))
        starts = np.cumsum(size) - size + header
        first = np.cumsum(sched.payload) - sched.payload
        body[np.repeat(starts - first, sched.payload) + np.arange(samples.size)] = samples
    if codec.name == "opus" and not opaque and n:
        # RFC 6716 §3.1: a TOC byte (code 0, one frame, mono) naming the SILK wideband
        # configuration of the frame's duration; the frame itself stays random bytes.
        toc = np.array([OPUS_SILK_WB_CONFIG[int(p)] << 3 for p in sched.ptime_ms], np.uint8)
        body[np.cumsum(size) - size + header] = toc
    seq = seq0 + np.arange(n, dtype=np.int64)
    ts = ts0 + sched.ts_offset
    if not opaque:
        marker = np.zeros(n, bool)
        marker[:1] = True  # RFC 3551 §4.1: first packet of a talkspurt
        pt = np.full(n, codec.payload_type, np.uint8)
        _stamp(body, size, wire.rtp_headers(seq, ts, np.full(n, ssrc, np.uint32), pt, marker))
    return _Part(
        kind=Kind.OPAQUE if opaque else Kind.RTP, stream=d, direction=d,
        send_time=sched.time, arrival_time=arrival, size=size, drop=outcome.reason,
        src=ips[d], dst=ips[1 - d], sport=ports[d], dport=ports[1 - d], data=body,
        seq=None if opaque else seq, rtp_ts=None if opaque else ts,
    )


@dataclass(frozen=True)
class _Receiver:
    """What one endpoint has received of its peer's RTP, in arrival order."""

    arrival: np.ndarray
    ext_seq: np.ndarray
    highest: np.ndarray  # running maximum of ext_seq
    jitter: np.ndarray  # RFC 3550 A.8 estimate after each arrival, timestamp units

    @classmethod
    def of(cls, arrival: np.ndarray, ext_seq: np.ndarray, rtp_ts: np.ndarray, clock: int) -> _Receiver:
        ok = ~np.isnan(arrival)
        order = np.argsort(arrival[ok], kind="stable")
        arr = arrival[ok][order]
        seq = ext_seq[ok][order]
        # RFC 3550 §6.4.1 / A.8: D(i-1,i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in
        # timestamp units, J_i = J_{i-1} + (|D| - J_{i-1}) / 16 — a first-order IIR.
        transit = arr * clock - rtp_ts[ok][order]
        d = np.abs(np.diff(transit))
        jitter = np.concatenate([[0.0], lfilter([1 / 16], [1, -15 / 16], d)]) if arr.size else arr
        highest = np.maximum.accumulate(seq) if seq.size else seq
        return cls(arr, seq, highest, jitter)


def _rtcp_part(
    d: int,
    times: np.ndarray,
    arrival: np.ndarray,
    drop: np.ndarray,
    own: MediaSchedule,
    own_ssrc: int,
    own_ts0: int,
    own_start: float,
    peer: _Receiver | None,
    peer_ssrc: int,
    peer_sr: tuple[np.ndarray, np.ndarray] | None,
    codec: Codec,
    ips: tuple[int, int],
    ports: tuple[int, int],
    epoch_s: float,
) -> _Part:
    """One endpoint's RTCP compound packets (SR + SDES) with its reception report.

    ``peer_sr`` is the arrival time and NTP timestamp of each of the peer's
    SRs, for LSR/DLSR (RFC 3550 §6.4.1).
    """
    cname = f"user@{int_to_ipv4(ips[d])}"
    payload_cum = np.cumsum(own.payload)
    expected_prior = received_prior = 0
    packets = []
    for t in times.tolist():
        ntp = wire.ntp_timestamp(epoch_s + t)
        count = int(np.searchsorted(own.time, t, side="right"))
        octets = int(payload_cum[count - 1]) if count else 0
        rtp_ts = own_ts0 + int(round((t - own_start) * codec.clock_rate))
        blocks: tuple[wire.ReportBlock, ...] = ()
        m = 0 if peer is None else int(np.searchsorted(peer.arrival, t, side="right"))
        if peer is not None and m:
            # RFC 3550 A.3: expected from the extended highest and the base sequence numbers.
            highest = int(peer.highest[m - 1])
            expected = highest - int(peer.ext_seq[0]) + 1
            exp_int = expected - expected_prior
            lost_int = exp_int - (m - received_prior)
            fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
            expected_prior, received_prior = expected, m
            lsr = dlsr = 0
            if peer_sr is not None:
                sr_arrival, sr_ntp = peer_sr
                heard = np.flatnonzero(sr_arrival <= t)
                if heard.size:
                    j = heard[np.argmax(sr_arrival[heard])]
                    lsr = (int(sr_ntp[j]) >> 16) & 0xFFFFFFFF  # RFC 3550 §6.4.1: middle 32 bits
                    dlsr = int((t - sr_arrival[j]) * 65536)
            blocks = (
                wire.ReportBlock(
                    ssrc=peer_ssrc, fraction_lost=min(fraction, 255), cumulative_lost=expected - m,
                    highest_seq=highest, jitter=int(peer.jitter[m - 1]), lsr=lsr, dlsr=dlsr,
                ),
            )
        packets.append(wire.rtcp_sender_report(own_ssrc, ntp, rtp_ts, count, octets, blocks, cname))
    size = np.array([len(p) for p in packets], np.int32)
    data = np.frombuffer(b"".join(packets), np.uint8).copy()
    return _Part(
        kind=Kind.RTCP, stream=2 + d, direction=d, send_time=times, arrival_time=arrival,
        size=size, drop=drop, src=ips[d], dst=ips[1 - d], sport=ports[d] + 1,
        dport=ports[1 - d] + 1, data=data,
    )


def _fate_shared(
    times: np.ndarray, sched: MediaSchedule, outcome: Outcome, rng: np.random.Generator, base: float, noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival and drop reason of RTCP packets sent at ``times``.

    RTCP shares the fate of the RTP packet sent next on the same path: dropped
    if it was (the same blackhole, empty bucket or full queue), otherwise
    delayed as much by the impairing element.
    """
    if len(sched) == 0:
        return np.full(times.size, np.nan), np.full(times.size, DropReason.BLOCKED, np.uint8)
    k = np.minimum(np.searchsorted(sched.time, times), len(sched) - 1)
    held = outcome.depart[k] - sched.time[k]
    arrival = times + held + base + rng.exponential(noise, times.size)
    return arrival, outcome.reason[k].copy()


def _sip_parts(
    rng: np.random.Generator, codec: Codec, ips: tuple[int, int], ports: tuple[int, int],
    times: tuple[float, ...], arrivals: tuple[float, ...], ptime_ms: int,
) -> list[_Part]:
    """INVITE (A->B) with the SDP offer, 200 OK (B->A) with the answer, ACK (A->B);
    at the end BYE (A->B) and its 200 OK (RFC 3261 §15.1.1)."""
    a = wire.SipParty("alice", int_to_ipv4(ips[0]), SIP_PORT, ports[0], rng.bytes(4).hex())
    b = wire.SipParty("bob", int_to_ipv4(ips[1]), SIP_PORT, ports[1], rng.bytes(4).hex())
    call_id = f"{rng.bytes(8).hex()}@{a.ip}"
    branch = "z9hG4bK" + rng.bytes(6).hex()  # RFC 3261 §8.1.1.7 magic cookie
    session = int(rng.integers(1, 2**31))
    ruri = f"sip:{b.user}@{b.ip}"
    msgs = [
        (0, wire.sip_message(f"INVITE {ruri} SIP/2.0", a, b, call_id, "1 INVITE", branch, False,
                             wire.sdp(a, codec, session, ptime_ms))),
        (1, wire.sip_message("SIP/2.0 200 OK", a, b, call_id, "1 INVITE", branch, True,
                             wire.sdp(b, codec, session + 1, ptime_ms))),
        (0, wire.sip_message(f"ACK {ruri} SIP/2.0", a, b, call_id, "1 ACK",
                             "z9hG4bK" + rng.bytes(6).hex(), True)),
    ]
    bye_branch = "z9hG4bK" + rng.bytes(6).hex()
    msgs += [
        (0, wire.sip_message(f"BYE {ruri} SIP/2.0", a, b, call_id, "2 BYE", bye_branch, True)),
        (1, wire.sip_message("SIP/2.0 200 OK", a, b, call_id, "2 BYE", bye_branch, True)),
    ]
    parts = []
    for (d, msg), t, arr in zip(msgs, times, arrivals, strict=True):
        parts.append(_Part(
            kind=Kind.SIP, stream=-1, direction=d, send_time=np.array([t]),
            arrival_time=np.array([arr]), size=np.array([len(msg)], np.int32),
            drop=np.zeros(1, np.uint8), src=ips[d], dst=ips[1 - d], sport=SIP_PORT,
            dport=SIP_PORT, data=np.frombuffer(msg, np.uint8).copy(),
        ))
    return parts


def _loss_facts(arrivals: list[np.ndarray]) -> dict[str, float]:
    """Fraction of each direction's media lost, whatever the cause."""
    return {
        f"loss_fraction_{name.replace('->', '_to_')}": float(np.isnan(arr).mean()) if arr.size else 0.0
        for name, arr in zip(DIRECTIONS, arrivals, strict=True)
    }


def _downshift_facts(shift: Downshift | None, scheds: list[MediaSchedule], header: int) -> dict[str, float]:
    """Packet rate and payload byte rate before and after a codec downshift, as sent."""
    if shift is None:
        return {}
    sched = scheds[shift.direction]
    after = sched.adapted
    facts = {}
    for name, part in (("before", ~after), ("after", after)):
        if np.count_nonzero(part) < 2:
            continue
        span = np.ptp(sched.time[part]) + sched.ptime_ms[part][-1] / 1e3
        facts[f"pps_{name}"] = float(np.count_nonzero(part) / span)
        facts[f"rate_Bps_{name}"] = float((sched.payload[part] + header).sum() / span)
    return facts


def _keepalive_parts(
    rng: np.random.Generator, duration: float, ips: tuple[int, int], base_delay: np.ndarray
) -> list[_Part]:
    """A messenger client's keepalives to its signalling server, and the replies.

    Encrypted, small, every ~5 s until the call ends: a flow separate from the
    media, never impaired, which is why the capture runs to the end of the call
    even when the media flow is cut.
    """
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
        parts.append(_Part(
            kind=Kind.KEEPALIVE, stream=-1, direction=d, send_time=times, arrival_time=arrival,
            size=size, drop=np.zeros(times.size, np.uint8), src=src, dst=dst, sport=sport,
            dport=dport, data=_random_bytes(rng, int(size.sum())),
        ))
    return parts


def _stun_parts(
    rng: np.random.Generator, params: SetupBlocked, duration: float, ips: tuple[int, int],
    ports: tuple[int, int],
) -> tuple[list[_Part], list[StreamInfo]]:
    """A's unanswered ICE Binding requests (to B) and TURN Allocate requests (to the server)."""
    times, tx = params.request_times(duration)
    turn_ip = ipv4_to_int(TURN_SERVER[0])
    targets = ((ips[1], ports[1]), (turn_ip, TURN_SERVER[1]))
    ids = [rng.bytes(12) for _ in range(params.transactions)]  # RFC 5389 §6: 96-bit id
    parts: list[_Part] = []
    streams: list[StreamInfo] = []
    for which, (dst, dport) in enumerate(targets):
        sel = tx % 2 == which
        if not sel.any():
            continue
        method = wire.STUN_BINDING_REQUEST if which == 0 else wire.STUN_ALLOCATE_REQUEST
        msgs = [wire.stun_request(method, ids[j], ICE_CHECK_PRIORITY if which == 0 else None) for j in tx[sel]]
        size = np.array([len(m) for m in msgs], np.int32)
        n = int(sel.sum())
        parts.append(_Part(
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


def _capture_time(send: np.ndarray, arrival: np.ndarray, direction: np.ndarray, vantage: str) -> np.ndarray:
    if vantage == "receivers":
        return arrival.copy()
    own = A_TO_B if vantage == "a" else B_TO_A
    return np.where(direction == own, send, arrival)


def _ip_ids(rng: np.random.Generator, src: np.ndarray) -> np.ndarray:
    """RFC 791 §3.1 Identification: a per-host counter, in send order, from a random start."""
    hosts, inverse = np.unique(src, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[order], np.arange(hosts.size))
    rank = np.empty(src.size, np.int64)
    rank[order] = np.arange(src.size) - first[inverse[order]]
    offset = rng.integers(0, 1 << 16, hosts.size)
    return ((offset[inverse] + rank) & 0xFFFF).astype(np.uint16)


def _assemble(
    parts: list[_Part], rng: np.random.Generator, vantage: str
) -> dict[str, Any]:
    """Merge the parts into per-packet columns sorted by send time (name -> array,
    the per-packet fields of :class:`SimulatedCall`)."""
    parts = [p for p in parts if len(p)]
    cols: dict[str, np.ndarray] = {}
    n_each = [len(p) for p in parts]
    cols["kind"] = np.repeat(np.array([p.kind for p in parts], np.uint8), n_each)
    cols["stream"] = np.repeat(np.array([p.stream for p in parts], np.int16), n_each)
    cols["direction"] = np.repeat(np.array([p.direction for p in parts], np.int8), n_each)
    for name in ("src", "dst"):
        cols[name] = np.repeat(np.array([getattr(p, name) for p in parts], np.uint32), n_each)
    for name in ("sport", "dport"):
        cols[name] = np.repeat(np.array([getattr(p, name) for p in parts], np.uint16), n_each)
    cols["send_time"] = np.concatenate([p.send_time for p in parts]).astype(np.float64)
    cols["arrival_time"] = np.concatenate([p.arrival_time for p in parts]).astype(np.float64)
    cols["size"] = np.concatenate([p.size for p in parts]).astype(np.int32)
    cols["drop"] = np.concatenate([p.drop for p in parts]).astype(np.uint8)
    none = [np.full(len(p), -1, np.int64) for p in parts]
    cols["seq"] = np.concatenate([none[i] if p.seq is None else p.seq for i, p in enumerate(parts)])
    cols["rtp_ts"] = np.concatenate([none[i] if p.rtp_ts is None else p.rtp_ts for i, p in enumerate(parts)])
    data = np.concatenate([p.data for p in parts])
    start = np.cumsum(cols["size"].astype(np.int64)) - cols["size"]
    order = np.argsort(cols["send_time"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cols["payload_start"] = start[order]
    cols["data"] = data
    cols["ip_id"] = _ip_ids(rng, cols["src"])
    cols["capture_time"] = _capture_time(cols["send_time"], cols["arrival_time"], cols["direction"], vantage)
    return cols


def simulate(
    scenario: str,
    *,
    seed: int = 0,
    duration: float = 30.0,
    codec: str = "pcmu",
    opaque: bool = False,
    vantage: str | None = None,
    ptime_ms: int = DEFAULT_PTIME_MS,
    background_loss: float = 0.0,
    **params: object,
) -> SimulatedCall:
    """Simulate a two-way voice call degraded by ``scenario``.

    Parameters
    ----------
    scenario : str
        A pattern name (``clean``, ``policing``, ... see
        :data:`callscope.synth.scenarios.SCENARIOS`).
    seed : int
        Seeds everything: addresses' ports, SSRCs, timing noise, the
        scenario's drawn parameters, the losses.
    duration : float
        Seconds from the first SIP message to the end of media.
    codec : str
        ``pcmu``, ``pcma``, ``g729`` or ``opus``.
    opaque : bool
        Messenger-style media: the same cadence, but encrypted payloads with no
        RTP header, and no SIP or RTCP.
    vantage : str, optional
        Where the capture is taken: ``"receivers"`` (each packet as it reaches
        its destination; the default), ``"a"`` or ``"b"`` (on that endpoint).
        Setup-blocked defaults to and needs ``"a"``.
    ptime_ms : int
        Packetization interval.
    background_loss : float
        Independent loss of the path under the scenario (a real network's
        residual loss; 0 keeps the mechanisms' effect exact).
    **params
        Scenario parameters to set instead of drawing them (e.g.
        ``rate_Bps=4000``); unknown names raise :class:`CallscopeError`.

    Returns
    -------
    SimulatedCall
    """
    kind_of = scenario_named(scenario)
    if vantage is None:
        vantage = kind_of.default_vantage(opaque)
    if vantage not in VANTAGES:
        raise CallscopeError(f"vantage must be one of {', '.join(VANTAGES)}, not {vantage!r}")
    if duration <= 1.0:
        raise CallscopeError(f"duration must be more than 1 s, not {duration}")
    cdc = codec_named(codec)
    seeds = np.random.SeedSequence(seed).spawn(7)
    setup_rng, scen_rng, tx_a, tx_b, impair_rng, net_rng, bytes_rng = (np.random.default_rng(s) for s in seeds)

    ips = (ipv4_to_int(ADDRESS_A), ipv4_to_int(ADDRESS_B))
    port_a, port_b = (int(p) for p in 2 * setup_rng.integers(RTP_PORT_RANGE[0] // 2, RTP_PORT_RANGE[1] // 2, 2))
    ports = (port_a, port_b)
    base_delay = setup_rng.uniform(0.010, 0.060, 2)
    net_noise = setup_rng.uniform(0.1e-3, 1.0e-3, 2)
    clock_jitter = setup_rng.uniform(0.1e-3, 0.5e-3, 2)
    hiccups = setup_rng.uniform(0.02, 0.2, 2)
    mean20 = float(setup_rng.uniform(*cdc.vbr_mean_bytes)) if cdc.variable_rate else cdc.bytes_per_ms * 20
    ssrc = setup_rng.integers(0, 1 << 32, 2, dtype=np.uint64).tolist()
    seq0 = setup_rng.integers(0, 1 << 16, 2).tolist()
    ts0 = setup_rng.integers(0, 1 << 32, 2, dtype=np.uint64).tolist()
    network = Network(
        base_delay_s=tuple(base_delay.tolist()), queue_noise_s=tuple(net_noise.tolist()),
        clock_jitter_s=tuple(clock_jitter.tolist()), hiccups_per_s=tuple(hiccups.tolist()),
        background_loss=background_loss,
    )

    if opaque:
        starts = (0.05, 0.05 + base_delay[0] + float(setup_rng.uniform(0.0, 0.05)))
    else:
        t_ok = base_delay[0] + float(setup_rng.uniform(0.05, 0.2))
        t_ok_at_a = t_ok + base_delay[1]
        # The call is hung up (BYE) as media ends; its 200 OK comes back a round trip later.
        t_bye = duration + 0.005
        t_bye_ok = t_bye + base_delay[0] + 0.005
        sip_times = (0.0, t_ok, t_ok_at_a + 0.002, t_bye, t_bye_ok)
        sip_arrivals = (base_delay[0], t_ok_at_a, t_ok_at_a + 0.002 + base_delay[0],
                        t_bye + base_delay[0], t_bye_ok + base_delay[1])
        starts = (t_ok_at_a + 0.01, t_ok + 0.01)
    header = OPAQUE_OVERHEAD_BYTES if opaque else wire.RTP_HEADER_LEN
    ctx = CallContext(
        duration=duration, media_start=min(starts), packet_rate=1000.0 / ptime_ms,
        mean_size=mean20 * ptime_ms / DEFAULT_PTIME_MS + header, codec=cdc, opaque=opaque,
    )
    truth = with_overrides(kind_of.draw(scen_rng, ctx), dict(params))

    if not truth.has_media:
        assert isinstance(truth, SetupBlocked)
        if vantage != "a":
            raise CallscopeError("setup-blocked is only visible from the caller: use vantage 'a'")
        parts, streams = _stun_parts(bytes_rng, truth, duration, ips, ports)
        cols = _assemble(parts, net_rng, vantage)
        return SimulatedCall(
            scenario=truth, network=network, facts={"requests": float(len(cols["kind"]))},
            windows=((0.0, duration),), seed=seed, duration=duration, codec=cdc, opaque=opaque,
            vantage=vantage, media_start=math.nan, streams=tuple(streams), **cols,
        )

    shift = truth.downshift()
    scheds = []
    for d, rng in ((A_TO_B, tx_a), (B_TO_A, tx_b)):
        change = shift if shift is not None and shift.direction == d else None
        scheds.append(media_schedule(
            rng, cdc, starts[d], duration, ptime_ms, mean20, clock_jitter[d], hiccups[d],
            change_at=None if change is None else ctx.media_start + change.time_s,
            ptime_after_ms=None if change is None else change.ptime_ms,
            size_factor_after=1.0 if change is None else change.size_factor,
        ))
    offered_ab, offered_ba = (Offered(s.time, (s.payload + header).astype(np.int32)) for s in scheds)
    offered = (offered_ab, offered_ba)
    effect: Effect = truth.impair(impair_rng, ctx, offered)
    arrivals = [
        _path(net_rng, effect.outcomes[d], base_delay[d], net_noise[d], background_loss) for d in (0, 1)
    ]

    parts = [
        _media_part(bytes_rng, d, scheds[d], arrivals[d], effect.outcomes[d], cdc, opaque,
                    ssrc[d], seq0[d], ts0[d], ips, ports)
        for d in (A_TO_B, B_TO_A)
    ]
    impaired = truth.impaired_directions()
    kind_name = "opaque" if opaque else "rtp"
    streams = [
        StreamInfo(
            index=d, kind=kind_name, direction=DIRECTIONS[d], src=int_to_ipv4(ips[d]),
            src_port=ports[d], dst=int_to_ipv4(ips[1 - d]), dst_port=ports[1 - d],
            ssrc=None if opaque else int(ssrc[d]), payload_type=None if opaque else cdc.payload_type,
            clock_rate=None if opaque else cdc.clock_rate,
            impaired=d in impaired or (shift is not None and shift.direction == d),
            sent=len(scheds[d]), delivered=int(np.count_nonzero(~np.isnan(arrivals[d]))),
        )
        for d in (A_TO_B, B_TO_A)
    ]
    if opaque:
        parts += _keepalive_parts(bytes_rng, duration, ips, base_delay)
    else:
        parts += _sip_parts(bytes_rng, cdc, ips, ports, sip_times, sip_arrivals, ptime_ms)
        parts_rtcp, streams_rtcp = _rtcp(
            net_rng, scheds, effect, arrivals, parts, starts, duration, cdc, ssrc, ts0,
            ips, ports, base_delay, net_noise, impaired,
        )
        parts += parts_rtcp
        streams += streams_rtcp

    cols = _assemble(parts, net_rng, vantage)
    return SimulatedCall(
        scenario=truth, network=network,
        facts={**effect.facts, **_downshift_facts(shift, scheds, header), **_loss_facts(arrivals)},
        windows=effect.windows, seed=seed,
        duration=duration,
        codec=cdc, opaque=opaque, vantage=vantage, media_start=ctx.media_start,
        streams=tuple(streams), **cols,
    )


def _rtcp(
    rng: np.random.Generator,
    scheds: list[MediaSchedule],
    effect: Effect,
    arrivals: list[np.ndarray],
    media_parts: list[_Part],
    starts: tuple[float, float],
    duration: float,
    codec: Codec,
    ssrc: list[int],
    ts0: list[int],
    ips: tuple[int, int],
    ports: tuple[int, int],
    base_delay: np.ndarray,
    net_noise: np.ndarray,
    impaired: tuple[int, ...],
) -> tuple[list[_Part], list[StreamInfo]]:
    """Both endpoints' RTCP: times, fate, then contents from what each received."""
    times, fate = [], []
    for d in (A_TO_B, B_TO_A):
        # RFC 3550 §6.3.5 / §6.3.6: the interval is randomised over [0.5, 1.5] x the
        # deterministic one, and the first report comes after half an interval.
        gaps = RTCP_INTERVAL_S * rng.uniform(0.5, 1.5, int(duration / (0.5 * RTCP_INTERVAL_S)) + 2)
        gaps[0] *= 0.5
        t = starts[d] + np.cumsum(gaps)
        t = t[t < duration]
        times.append(t)
        fate.append(_fate_shared(t, scheds[d], effect.outcomes[d], rng, base_delay[d], net_noise[d]))
    receivers = []
    for d in (A_TO_B, B_TO_A):
        seq, rtp_ts = media_parts[d].seq, media_parts[d].rtp_ts
        assert seq is not None and rtp_ts is not None  # RTCP goes with RTP media, which has both
        receivers.append(_Receiver.of(arrivals[d], seq, rtp_ts, codec.clock_rate))
    epoch_s = EPOCH_NS / 1e9
    ntp = [
        np.array([wire.ntp_timestamp(epoch_s + x) for x in times[d].tolist()], np.uint64)
        for d in (A_TO_B, B_TO_A)
    ]
    parts, streams = [], []
    for d in (A_TO_B, B_TO_A):
        peer = 1 - d
        part = _rtcp_part(
            d, times[d], fate[d][0], fate[d][1], scheds[d], int(ssrc[d]), int(ts0[d]), starts[d],
            receivers[peer], int(ssrc[peer]), (fate[peer][0], ntp[peer]), codec, ips,
            ports, epoch_s,
        )
        parts.append(part)
        streams.append(StreamInfo(
            index=2 + d, kind="rtcp", direction=DIRECTIONS[d], src=int_to_ipv4(ips[d]),
            src_port=ports[d] + 1, dst=int_to_ipv4(ips[peer]), dst_port=ports[peer] + 1,
            ssrc=int(ssrc[d]), payload_type=None, clock_rate=None, impaired=d in impaired,
            sent=len(part), delivered=int(np.count_nonzero(~np.isnan(fate[d][0]))),
        ))
    return parts, streams


def simulate_many_streams(
    n_streams: int,
    packets_per_stream: int,
    *,
    seed: int = 0,
    scenario: str = "clean",
    codec: str = "pcmu",
    opaque: bool = False,
    ptime_ms: int = DEFAULT_PTIME_MS,
    background_loss: float = 0.0,
    **params: object,
) -> SimulatedCall:
    """Many concurrent one-way media streams, each through its own copy of ``scenario``.

    For big captures (benchmarks, batch tests): stream ``i`` runs from host
    ``10.1.x.y`` to host ``10.2.x.y`` on its own ports, starting within the
    first second; there is no signalling and no RTCP, and the capture is taken
    at the receivers. Every stream plays the B->A role of a call (the direction
    one-directional scenarios impair by default), with the scenario's
    parameters drawn once for all streams.

    Parameters
    ----------
    n_streams : int
        Concurrent streams (at most 62500).
    packets_per_stream : int
        Packets each stream sends.
    seed, scenario, codec, opaque, ptime_ms, background_loss, **params
        As for :func:`simulate`.
    """
    if not 1 <= n_streams <= 250 * 250:
        raise CallscopeError(f"n_streams must be in 1..62500, not {n_streams}")
    kind_of = scenario_named(scenario)
    if not kind_of.has_media:
        raise CallscopeError(f"scenario {scenario!r} has no media to multiply")
    cdc = codec_named(codec)
    setup_rng, scen_rng, tx_rng, impair_rng, net_rng, bytes_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    duration = 1.0 + packets_per_stream * ptime_ms / 1e3
    header = OPAQUE_OVERHEAD_BYTES if opaque else wire.RTP_HEADER_LEN
    mean20 = float(setup_rng.uniform(*cdc.vbr_mean_bytes)) if cdc.variable_rate else cdc.bytes_per_ms * 20
    ctx = CallContext(
        duration=duration, media_start=0.0, packet_rate=1000.0 / ptime_ms,
        mean_size=mean20 * ptime_ms / DEFAULT_PTIME_MS + header, codec=cdc, opaque=opaque,
    )
    truth = with_overrides(kind_of.draw(scen_rng, ctx), dict(params))
    shift = truth.downshift()
    starts = setup_rng.uniform(0.0, 1.0, n_streams)
    ports = 2 * setup_rng.integers(RTP_PORT_RANGE[0] // 2, RTP_PORT_RANGE[1] // 2, (n_streams, 2))
    ssrc = setup_rng.integers(0, 1 << 32, n_streams, dtype=np.uint64).tolist()
    seq0 = setup_rng.integers(0, 1 << 16, n_streams).tolist()
    ts0 = setup_rng.integers(0, 1 << 32, n_streams, dtype=np.uint64).tolist()
    base_delay = setup_rng.uniform(0.010, 0.060, n_streams)
    empty = Offered(np.zeros(0), np.zeros(0, np.int32))
    parts: list[_Part] = []
    streams: list[StreamInfo] = []
    windows: tuple[tuple[float, float], ...] = ()
    facts: dict[str, float] = {}
    for i in range(n_streams):
        sched = media_schedule(
            tx_rng, cdc, float(starts[i]), float(starts[i]) + packets_per_stream * ptime_ms / 1e3 - 1e-6,
            ptime_ms, mean20, MANY_CLOCK_JITTER_S, MANY_HICCUPS_PER_S,
            change_at=None if shift is None else shift.time_s,
            ptime_after_ms=None if shift is None else shift.ptime_ms,
            size_factor_after=1.0 if shift is None else shift.size_factor,
        )
        offered = Offered(sched.time, (sched.payload + header).astype(np.int32))
        effect = truth.impair(impair_rng, ctx, (empty, offered))
        windows, facts = effect.windows, effect.facts
        arrival = _path(net_rng, effect.outcomes[B_TO_A], float(base_delay[i]), MANY_NOISE_S,
                        background_loss)
        ips = (ipv4_to_int(f"10.2.{i // 250}.{i % 250 + 1}"), ipv4_to_int(f"10.1.{i // 250}.{i % 250 + 1}"))
        pair = (int(ports[i, 1]), int(ports[i, 0]))
        part = _media_part(bytes_rng, B_TO_A, sched, arrival, effect.outcomes[B_TO_A], cdc, opaque,
                           ssrc[i], seq0[i], ts0[i], ips, pair, voice=False)
        part.stream = i
        parts.append(part)
        streams.append(StreamInfo(
            index=i, kind="opaque" if opaque else "rtp", direction=DIRECTIONS[B_TO_A],
            src=int_to_ipv4(ips[1]), src_port=pair[1], dst=int_to_ipv4(ips[0]), dst_port=pair[0],
            ssrc=None if opaque else int(ssrc[i]), payload_type=None if opaque else cdc.payload_type,
            clock_rate=None if opaque else cdc.clock_rate, impaired=B_TO_A in truth.impaired_directions(),
            sent=len(sched), delivered=int(np.count_nonzero(~np.isnan(arrival))),
        ))
    cols = _assemble(parts, net_rng, "receivers")
    network = Network(
        base_delay_s=(float(base_delay.min()), float(base_delay.max())),
        queue_noise_s=(MANY_NOISE_S, MANY_NOISE_S), clock_jitter_s=(MANY_CLOCK_JITTER_S,) * 2,
        hiccups_per_s=(MANY_HICCUPS_PER_S,) * 2, background_loss=background_loss,
    )
    return SimulatedCall(
        scenario=truth, network=network, facts=facts, windows=windows, seed=seed, duration=duration, codec=cdc,
        opaque=opaque, vantage="receivers", media_start=0.0, streams=tuple(streams), **cols,
    )
