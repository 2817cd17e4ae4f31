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

This module runs the call; the parts live beside it: :mod:`.plan` (the
parameters every part shares, drawn once), :mod:`.sender` (when frames leave),
:mod:`.media` (media datagrams and the path), :mod:`.rtcp`,
:mod:`.signalling` (SIP, keepalives, STUN) and :mod:`.packets` (the merge into
per-packet columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from callscope.capture.writer import int_to_ipv4, ipv4_to_int
from callscope.errors import CallscopeError
from callscope.synth.codecs import DEFAULT_PTIME_MS, Codec, codec_named
from callscope.synth.media import MediaRun, downshift_facts, loss_facts, media_part, path_arrival
from callscope.synth.packets import Part, StreamInfo, assemble
from callscope.synth.plan import (
    EPOCH_NS,
    RTP_PORT_RANGE,
    CallPlan,
    MediaFlow,
    Network,
    draw_call_plan,
    header_bytes,
    mean_frame_bytes,
)
from callscope.synth.rtcp import rtcp_parts
from callscope.synth.scenarios import (
    A_TO_B,
    B_TO_A,
    DIRECTIONS,
    CallContext,
    Downshift,
    Effect,
    Offered,
    Scenario,
    SetupBlocked,
    scenario_named,
    with_overrides,
)
from callscope.synth.sender import Adaptation, Sender, media_schedule
from callscope.synth.signalling import keepalive_parts, sip_parts, stun_parts

VANTAGES = ("a", "b", "receivers")
#: The path and sender of every stream of :func:`simulate_many_streams`.
MANY_NOISE_S = 0.5e-3
MANY_CLOCK_JITTER_S = 0.3e-3
MANY_HICCUPS_PER_S = 0.1


@dataclass(frozen=True)
class SimulatedCall:
    """A simulated call with per-packet ground truth, in send order.

    ``scenario`` holds the true parameters of the impairment (drawn or set),
    ``network`` those of the path under it, ``facts`` numbers measured while
    simulating (an actual cut-off time, the loss a Gilbert chain should give),
    ``windows`` the spans during which the impairment acted, and ``streams``
    every flow with what was sent and delivered.

    Per-packet arrays (one row per datagram sent by anyone, lost or not):

    - ``kind`` (:class:`~callscope.synth.packets.Kind`), ``stream`` (index into ``streams``, -1 for
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


class _Generators(NamedTuple):
    """Independent random streams of one call, so that changing what one part
    draws leaves the others' draws alone."""

    setup: np.random.Generator
    scenario: np.random.Generator
    tx_a: np.random.Generator
    tx_b: np.random.Generator
    impair: np.random.Generator
    net: np.random.Generator
    bytes: np.random.Generator

    @classmethod
    def spawn(cls, seed: int) -> _Generators:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)))


def _adaptation(shift: Downshift | None, offset: float) -> Adaptation | None:
    """The sender-side change of a downshift scheduled ``offset`` s after the start."""
    if shift is None:
        return None
    return Adaptation(offset + shift.time_s, shift.ptime_ms, shift.size_factor)


def _media_stream(flow: MediaFlow, index: int, impaired: bool, run: MediaRun) -> StreamInfo:
    """The ground truth of one media flow."""
    return StreamInfo(
        index=index, kind="opaque" if flow.opaque else "rtp", direction=DIRECTIONS[flow.direction],
        src=int_to_ipv4(flow.src), src_port=flow.sport, dst=int_to_ipv4(flow.dst), dst_port=flow.dport,
        ssrc=None if flow.opaque else int(flow.ssrc),
        payload_type=None if flow.opaque else flow.codec.payload_type,
        clock_rate=None if flow.opaque else flow.codec.clock_rate,
        impaired=impaired, sent=len(run.sched), delivered=int(np.count_nonzero(~np.isnan(run.arrival))),
    )


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
    rngs = _Generators.spawn(seed)
    plan = draw_call_plan(rngs.setup, codec_named(codec), duration, opaque, ptime_ms, background_loss)
    ctx = plan.context()
    truth = with_overrides(kind_of.draw(rngs.scenario, ctx), dict(params))
    if not truth.has_media:
        assert isinstance(truth, SetupBlocked)
        return _setup_blocked(truth, plan, rngs, vantage, seed)

    shift = truth.downshift()
    effect, media = _run_media(truth, plan, ctx, rngs)
    impaired = truth.impaired_directions()
    parts = [m.part for m in media]
    streams = [
        _media_stream(plan.flows[d], d, d in impaired or (shift is not None and shift.direction == d), media[d])
        for d in (A_TO_B, B_TO_A)
    ]
    if opaque:
        parts += keepalive_parts(rngs.bytes, plan)
    else:
        parts += sip_parts(rngs.bytes, plan)
        parts_rtcp, streams_rtcp = rtcp_parts(rngs.net, plan, media, impaired)
        parts += parts_rtcp
        streams += streams_rtcp
    cols = assemble(parts, rngs.net, vantage)
    scheds = [m.sched for m in media]
    facts = {**effect.facts, **downshift_facts(shift, scheds, plan.header), **loss_facts([m.arrival for m in media])}
    return SimulatedCall(
        scenario=truth, network=plan.network, facts=facts, windows=effect.windows, seed=seed,
        duration=duration, codec=plan.codec, opaque=opaque, vantage=vantage, media_start=ctx.media_start,
        streams=tuple(streams), **cols,
    )


def _setup_blocked(
    truth: SetupBlocked, plan: CallPlan, rngs: _Generators, vantage: str, seed: int
) -> SimulatedCall:
    """A call whose setup never completes: A's STUN / TURN requests, nothing else."""
    if vantage != "a":
        raise CallscopeError("setup-blocked is only visible from the caller: use vantage 'a'")
    parts, streams = stun_parts(rngs.bytes, truth, plan)
    cols = assemble(parts, rngs.net, vantage)
    return SimulatedCall(
        scenario=truth, network=plan.network, facts={"requests": float(len(cols["kind"]))},
        windows=((0.0, plan.duration),), seed=seed, duration=plan.duration, codec=plan.codec,
        opaque=plan.opaque, vantage=vantage, media_start=math.nan, streams=tuple(streams), **cols,
    )


def _run_media(
    truth: Scenario, plan: CallPlan, ctx: CallContext, rngs: _Generators
) -> tuple[Effect, list[MediaRun]]:
    """Both directions' media: what each sender sends, what the scenario and
    the path do to it, and the datagrams."""
    shift = truth.downshift()
    scheds = []
    for d, rng in ((A_TO_B, rngs.tx_a), (B_TO_A, rngs.tx_b)):
        sender = Sender(plan.codec, plan.ptime_ms, plan.mean_bytes_20ms, plan.clock_jitter[d], plan.hiccups[d])
        change = _adaptation(shift if shift is not None and shift.direction == d else None, ctx.media_start)
        scheds.append(media_schedule(rng, sender, plan.media_starts[d], plan.duration, change))
    offered = (Offered(scheds[0].time, (scheds[0].payload + plan.header).astype(np.int32)),
               Offered(scheds[1].time, (scheds[1].payload + plan.header).astype(np.int32)))
    effect: Effect = truth.impair(rngs.impair, ctx, offered)
    arrivals = [
        path_arrival(rngs.net, effect.outcomes[d], plan.base_delay[d], plan.queue_noise[d], plan.background_loss)
        for d in (A_TO_B, B_TO_A)
    ]
    media = [
        MediaRun(
            scheds[d], effect.outcomes[d], arrivals[d],
            media_part(rngs.bytes, plan.flows[d], scheds[d], arrivals[d], effect.outcomes[d].reason),
        )
        for d in (A_TO_B, B_TO_A)
    ]
    return effect, media


@dataclass(frozen=True, eq=False)
class _StreamDraws:
    """Each stream's own draws in :func:`simulate_many_streams`."""

    starts: np.ndarray
    ports: np.ndarray  # (n, 2)
    ssrc: list[int]
    seq0: list[int]
    ts0: list[int]
    base_delay: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _StreamDraws:
        return cls(
            starts=rng.uniform(0.0, 1.0, n),
            ports=2 * rng.integers(RTP_PORT_RANGE[0] // 2, RTP_PORT_RANGE[1] // 2, (n, 2)),
            ssrc=rng.integers(0, 1 << 32, n, dtype=np.uint64).tolist(),
            seq0=rng.integers(0, 1 << 16, n).tolist(),
            ts0=rng.integers(0, 1 << 32, n, dtype=np.uint64).tolist(),
            base_delay=rng.uniform(0.010, 0.060, n),
        )

    def flow(self, i: int, codec: Codec, opaque: bool) -> MediaFlow:
        """Stream ``i``: from ``10.1.x.y`` to ``10.2.x.y``, in the B->A role."""
        host = f"{i // 250}.{i % 250 + 1}"
        return MediaFlow(
            direction=B_TO_A, src=ipv4_to_int(f"10.1.{host}"), dst=ipv4_to_int(f"10.2.{host}"),
            sport=int(self.ports[i, 0]), dport=int(self.ports[i, 1]),
            ssrc=self.ssrc[i], seq0=self.seq0[i], ts0=self.ts0[i], codec=codec, opaque=opaque,
        )


@dataclass(frozen=True, eq=False)
class _ManyStreams:
    """What the streams of :func:`simulate_many_streams` share, and each one's draws."""

    truth: Scenario
    ctx: CallContext
    sender: Sender
    packets_per_stream: int
    background_loss: float
    draws: _StreamDraws

    @property
    def network(self) -> Network:
        return Network(
            base_delay_s=(float(self.draws.base_delay.min()), float(self.draws.base_delay.max())),
            queue_noise_s=(MANY_NOISE_S, MANY_NOISE_S), clock_jitter_s=(MANY_CLOCK_JITTER_S,) * 2,
            hiccups_per_s=(MANY_HICCUPS_PER_S,) * 2, background_loss=self.background_loss,
        )


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
    setup, scen, tx, impair, net, data = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6))
    mean20 = mean_frame_bytes(setup, cdc)
    ctx = CallContext(
        duration=1.0 + packets_per_stream * ptime_ms / 1e3, media_start=0.0, packet_rate=1000.0 / ptime_ms,
        mean_size=mean20 * ptime_ms / DEFAULT_PTIME_MS + header_bytes(opaque), codec=cdc, opaque=opaque,
    )
    truth = with_overrides(kind_of.draw(scen, ctx), dict(params))
    many = _ManyStreams(
        truth, ctx, Sender(cdc, ptime_ms, mean20, MANY_CLOCK_JITTER_S, MANY_HICCUPS_PER_S),
        packets_per_stream, background_loss, _StreamDraws.draw(setup, n_streams),
    )
    parts, streams = [], []
    windows: tuple[tuple[float, float], ...] = ()
    facts: dict = {}
    for i in range(n_streams):
        part, info, effect = _one_of_many(many, i, tx, impair, net, data)
        windows, facts = effect.windows, effect.facts
        parts.append(part)
        streams.append(info)
    cols = assemble(parts, net, "receivers")
    return SimulatedCall(
        scenario=truth, network=many.network, facts=facts, windows=windows, seed=seed, duration=ctx.duration,
        codec=cdc, opaque=opaque, vantage="receivers", media_start=0.0, streams=tuple(streams), **cols,
    )


def _one_of_many(
    many: _ManyStreams, i: int, tx: np.random.Generator, impair: np.random.Generator,
    net: np.random.Generator, data: np.random.Generator,
) -> tuple[Part, StreamInfo, Effect]:
    """Stream ``i`` of :func:`simulate_many_streams` through its own copy of the scenario,
    drawing from the sender's, the impairment's, the path's and the payloads' generators."""
    flow = many.draws.flow(i, many.sender.codec, many.ctx.opaque)
    start = float(many.draws.starts[i])
    end = start + many.packets_per_stream * many.sender.ptime_ms / 1e3 - 1e-6
    sched = media_schedule(tx, many.sender, start, end, _adaptation(many.truth.downshift(), 0.0))
    offered = Offered(sched.time, (sched.payload + flow.header).astype(np.int32))
    empty = Offered(np.zeros(0), np.zeros(0, np.int32))
    effect = many.truth.impair(impair, many.ctx, (empty, offered))
    outcome = effect.outcomes[B_TO_A]
    arrival = path_arrival(net, outcome, float(many.draws.base_delay[i]), MANY_NOISE_S, many.background_loss)
    part = media_part(data, flow, sched, arrival, outcome.reason, voice=False)
    part.stream = i
    impaired = B_TO_A in many.truth.impaired_directions()
    return part, _media_stream(flow, i, impaired, MediaRun(sched, outcome, arrival, part)), effect
