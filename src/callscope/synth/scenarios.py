"""The scenarios: one per diagnosis pattern, each a mechanism with drawn parameters.

A scenario is a frozen dataclass of its true parameters. ``draw`` picks
sensible random defaults from the seed's generator (so a corpus of many seeds
has varied parameters); ``impair`` runs the mechanism over the media packets
each direction offers to the network and says when each leaves the impairing
element, or why it was dropped. Signalling (SIP) is never impaired: a policer
or firewall acting on the media flow does not see it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

import numpy as np

from callscope.errors import CallscopeError
from callscope.synth import mechanisms
from callscope.synth.codecs import Codec

A_TO_B, B_TO_A = 0, 1
DIRECTIONS = ("a->b", "b->a")
BOTH = "both"
CROSS_PACKET_BYTES = 1500  # a full Ethernet MTU: bulk TCP transfers fill it


class DropReason(IntEnum):
    """Why the simulated network dropped a packet (0: it was delivered)."""

    DELIVERED = 0
    RANDOM = 1  # independent (Bernoulli) loss, or the good state of a Gilbert chain
    BURST = 2  # bad state of a Gilbert-Elliott chain
    QUEUE = 3  # tail drop at a full FIFO queue (shaper or congested bottleneck)
    POLICER = 4  # no tokens in the policer's bucket
    OUTAGE = 5  # inside an on/off blackhole window
    CUTOFF = 6  # after the flow was cut off
    BLOCKED = 7  # the direction (or the setup) is blocked by a firewall


@dataclass(frozen=True)
class CallContext:
    """What a scenario needs to know about the call to draw its parameters."""

    duration: float
    media_start: float
    packet_rate: float  # media packets per second, one direction
    mean_size: float  # mean UDP payload bytes of a media packet
    codec: Codec
    opaque: bool

    @property
    def payload_rate(self) -> float:
        """Mean UDP payload bytes per second of one direction's media."""
        return self.packet_rate * self.mean_size


@dataclass(frozen=True)
class Offered:
    """Media packets one direction offers to the network, in send order."""

    time: np.ndarray  # float64 send time, s
    size: np.ndarray  # int32 UDP payload bytes


@dataclass(frozen=True)
class Outcome:
    """What the impairing element did to one direction's packets.

    ``depart`` is when each packet leaves the element (its send time if the
    element adds no delay), NaN if dropped; ``fifo`` is False when the path
    may reorder packets.
    """

    depart: np.ndarray
    reason: np.ndarray
    fifo: bool = True

    @staticmethod
    def untouched(offered: Offered) -> Outcome:
        return Outcome(offered.time.copy(), np.zeros(len(offered.time), np.uint8))

    @staticmethod
    def dropping(offered: Offered, drop: np.ndarray, reason: DropReason) -> Outcome:
        depart = np.where(drop, np.nan, offered.time)
        return Outcome(depart, np.where(drop, np.uint8(reason), np.uint8(0)).astype(np.uint8))


@dataclass(frozen=True)
class Effect:
    """What a scenario did to a call.

    ``outcomes`` per direction (A->B, B->A); ``facts`` are measured numbers
    for the ground truth (actual cut time, loss expected...); ``windows`` the
    time spans (seconds since the capture start) during which the impairment
    acted.
    """

    outcomes: tuple[Outcome, Outcome]
    facts: dict[str, float] = dataclasses.field(default_factory=dict)
    windows: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Downshift:
    """A sender's codec adaptation: from ``time_s`` on, a new ptime and size factor."""

    direction: int
    time_s: float
    ptime_ms: int
    size_factor: float


@dataclass(frozen=True)
class Scenario:
    """Base of the scenario parameter sets."""

    label: ClassVar[str]
    #: False when media never starts (call setup is blocked).
    has_media: ClassVar[bool] = True

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        return cls()

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        """Run the mechanism over the media each direction offers."""
        return Effect((Outcome.untouched(offered[0]), Outcome.untouched(offered[1])))

    def impaired_directions(self) -> tuple[int, ...]:
        direction = getattr(self, "direction", None)
        if direction is None:
            return ()
        if direction == BOTH:
            return (A_TO_B, B_TO_A)
        return (DIRECTIONS.index(direction),)

    def downshift(self) -> Downshift | None:
        return None

    def accepts(self) -> tuple[str, ...]:
        """Every verdict that is a correct reading of the capture (the label first)."""
        return (self.label,)

    @classmethod
    def default_vantage(cls, opaque: bool) -> str:
        """Where the capture is taken unless the caller says: as each packet reaches
        its destination, or at the caller when there is no media to receive."""
        return "receivers" if cls.has_media else "a"

    def _per_direction(
        self, offered: tuple[Offered, Offered], one: Callable[[Offered], Outcome]
    ) -> tuple[Outcome, Outcome]:
        """``one`` applied to the impaired directions, the others untouched."""
        hit = self.impaired_directions()
        a, b = (one(o) if d in hit else Outcome.untouched(o) for d, o in enumerate(offered))
        return a, b


def _check_direction(direction: str, allowed: tuple[str, ...]) -> None:
    if direction not in allowed:
        raise CallscopeError(f"direction must be one of {', '.join(allowed)}, not {direction!r}")


@dataclass(frozen=True)
class Clean(Scenario):
    """No impairment beyond the base network (propagation delay and tiny jitter)."""

    label: ClassVar[str] = "clean"


@dataclass(frozen=True)
class RandomLoss(Scenario):
    """Independent (Bernoulli) loss with probability ``loss``."""

    label: ClassVar[str] = "random-loss"
    loss: float = 0.05
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        return cls(loss=round(float(rng.uniform(0.01, 0.10)), 4),
                   direction=str(rng.choice(["b->a", "b->a", BOTH])))

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        def one(o: Offered) -> Outcome:
            lost = mechanisms.bernoulli_loss(rng, len(o.time), self.loss)
            return Outcome.dropping(o, lost, DropReason.RANDOM)

        return Effect(self._per_direction(offered, one))


@dataclass(frozen=True)
class BurstyLoss(Scenario):
    """A Gilbert-Elliott channel: bursts of loss in the bad state, little in the good."""

    label: ClassVar[str] = "bursty-loss"
    p: float = 0.02
    r: float = 0.3
    loss_good: float = 0.0
    loss_bad: float = 0.9
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        # Mean bad-state sojourn 1/r of 2.5-10 packets, mostly lost: bursts, not scatter.
        r = float(rng.uniform(0.1, 0.4))
        loss_bad = float(rng.uniform(0.75, 1.0))
        loss_good = float(rng.uniform(0.0, 0.003))
        target = float(rng.uniform(0.02, 0.15))
        # Stationary loss = pi_bad * loss_bad + (1 - pi_bad) * loss_good, pi_bad = p / (p + r).
        pi_bad = (target - loss_good) / (loss_bad - loss_good)
        p = r * pi_bad / (1.0 - pi_bad)
        return cls(p=round(p, 5), r=round(r, 4), loss_good=round(loss_good, 5),
                   loss_bad=round(loss_bad, 4), direction=str(rng.choice(["b->a", "b->a", BOTH])))

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        observed = []
        chain = []

        def one(o: Offered) -> Outcome:
            lost, bad = mechanisms.gilbert_elliott(
                rng, len(o.time), self.p, self.r, self.loss_good, self.loss_bad
            )
            observed.append(mechanisms.gilbert_fit(lost))
            chain.append(mechanisms.gilbert_fit(bad))
            reason = np.where(bad, DropReason.BURST, DropReason.RANDOM).astype(np.uint8)
            return Outcome(np.where(lost, np.nan, o.time), np.where(lost, reason, 0).astype(np.uint8))

        pi_bad = self.p / (self.p + self.r)
        outcomes = self._per_direction(offered, one)
        p_seen, r_seen = observed[-1]
        facts = {
            "loss_expected": pi_bad * self.loss_bad + (1 - pi_bad) * self.loss_good,
            "burst_ratio": 1.0 / (self.p + self.r),  # BurstR for loss_bad=1, loss_good=0
            # The simple Gilbert model of the losses as they fell (last impaired direction):
            # what an estimator that sees only lost/received can recover.
            "p_observed": p_seen,
            "r_observed": r_seen,
        }
        # The transitions the hidden chain actually made, per impaired direction
        # (p_chain_b_to_a, ...): what the four-parameter channel fit estimates,
        # free of the sampling spread of a finite run around the nominal p, r.
        for d, (p_chain, r_chain) in zip(self.impaired_directions(), chain, strict=True):
            name = DIRECTIONS[d].replace("->", "_to_")
            facts[f"p_chain_{name}"] = p_chain
            facts[f"r_chain_{name}"] = r_chain
        return Effect(outcomes, facts)


@dataclass(frozen=True)
class Congestion(Scenario):
    """A bottleneck FIFO shared with TCP-like bulk transfers: delay rises, then tail drops.

    From ``start_s`` a transfer of the cross traffic begins every
    ``transfer_s`` seconds (see :func:`mechanisms.aimd_bottleneck`).
    """

    label: ClassVar[str] = "congestion"
    capacity_Bps: float = 125_000.0
    buffer_packets: int = 30
    start_s: float = 3.0
    ramp_s: float = 4.0
    rtt_s: float = 0.1
    transfer_s: float = 8.0
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        capacity = float(rng.uniform(60_000, 250_000))
        buffer_s = float(rng.uniform(0.15, 0.5))
        return cls(
            capacity_Bps=round(capacity, 1),
            buffer_packets=max(4, round(capacity * buffer_s / CROSS_PACKET_BYTES)),
            start_s=round(float(_between(rng, 1.0, min(8.0, 0.3 * ctx.duration))), 3),
            ramp_s=round(float(rng.uniform(2.0, 6.0)), 3),
            rtt_s=round(float(rng.uniform(0.05, 0.2)), 3),
            transfer_s=round(float(rng.uniform(6.0, 15.0)), 3),
            direction=str(rng.choice(["b->a", "b->a", BOTH])),
        )

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        counts = []

        def one(o: Offered) -> Outcome:
            # After halving, the bulk flow climbs back to the capacity in ramp_s.
            increase = 0.5 * self.capacity_Bps / self.ramp_s
            depart, sent, dropped = mechanisms.aimd_bottleneck(
                o.time, o.size, self.capacity_Bps, self.buffer_packets,
                ctx.media_start + self.start_s, increase, self.rtt_s, self.transfer_s,
            )
            counts.append((sent, dropped))
            lost = np.isnan(depart)
            return Outcome(depart, np.where(lost, DropReason.QUEUE, 0).astype(np.uint8))

        outcomes = self._per_direction(offered, one)
        facts = {
            "max_queue_delay_s": self.buffer_packets * CROSS_PACKET_BYTES / self.capacity_Bps,
            "cross_packets": float(sum(c[0] for c in counts)),
            "cross_dropped": float(sum(c[1] for c in counts)),
        }
        return Effect(outcomes, facts, ((ctx.media_start + self.start_s, ctx.duration),))


@dataclass(frozen=True)
class IntermittentOutage(Scenario):
    """On/off blackholing of the flow: periodic (with ``period_s``) or random."""

    label: ClassVar[str] = "intermittent-outage"
    mode: str = "periodic"
    period_s: float = 4.0
    off_s: float = 0.8
    first_s: float = 2.0
    direction: str = BOTH

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        # At least four outages fit in the call, so that the pattern is one.
        period = float(rng.uniform(2.0, max(2.0, min(6.0, (ctx.duration - 2.0) / 4.5))))
        off = float(rng.uniform(0.3, min(1.5, 0.5 * period)))
        return cls(
            mode=str(rng.choice(["periodic", "periodic", "random"])),
            period_s=round(period, 3),
            off_s=round(off, 3),
            first_s=round(float(rng.uniform(0.5, min(period, 3.0))), 3),
            direction=BOTH,
        )

    def windows(self, rng: np.random.Generator, ctx: CallContext) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of every off window, seconds since the capture start.

        Periodic: one every ``period_s`` from ``first_s`` after media start.
        Random: on-times uniform in [0.3, 1.7] x (``period_s - off_s``) (at
        least 0.5 s), off-times uniform in [0.5, 1.5] x ``off_s``: the mean
        cycle is still ``period_s``, but no two are alike.
        """
        t0 = ctx.media_start + self.first_s
        if self.mode == "periodic":
            starts = np.arange(t0, ctx.duration, self.period_s)
            return starts, starts + self.off_s
        if self.mode != "random":
            raise CallscopeError(f"outage mode must be periodic or random, not {self.mode!r}")
        k = int(ctx.duration / max(self.period_s, 0.5)) * 3 + 8
        off = rng.uniform(0.5, 1.5, k) * self.off_s
        on = np.maximum(0.5, rng.uniform(0.3, 1.7, k) * (self.period_s - self.off_s))
        on[0] = 0.0
        starts = t0 + np.cumsum(on) + np.concatenate([[0.0], np.cumsum(off)[:-1]])
        keep = starts < ctx.duration
        return starts[keep], (starts + off)[keep]

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        starts, ends = self.windows(rng, ctx)

        def one(o: Offered) -> Outcome:
            return Outcome.dropping(o, mechanisms.in_windows(o.time, starts, ends), DropReason.OUTAGE)

        facts = {"outages": float(len(starts))}
        if len(starts) > 1:
            facts["mean_period_s"] = float(np.mean(np.diff(starts)))
        spans = tuple(zip(starts.tolist(), np.minimum(ends, ctx.duration).tolist(), strict=True))
        return Effect(self._per_direction(offered, one), facts, spans)


@dataclass(frozen=True)
class Policing(Scenario):
    """A token-bucket policer on the media flow (counts UDP payload bytes)."""

    label: ClassVar[str] = "policing"
    rate_Bps: float = 5000.0
    burst_bytes: float = 800.0
    start_s: float = 0.0
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        fraction = float(rng.uniform(0.4, 0.8))
        packets = float(rng.uniform(1.0, 8.0))
        start = 0.0 if rng.random() < 0.4 else _between(rng, 1.0, min(6.0, 0.3 * ctx.duration))
        return cls(
            rate_Bps=round(fraction * ctx.payload_rate, 1),
            burst_bytes=round(packets * ctx.mean_size),
            start_s=round(start, 3),
            direction=_draw_direction(rng),
        )

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        def one(o: Offered) -> Outcome:
            passed = mechanisms.token_bucket(
                o.time, o.size, self.rate_Bps, self.burst_bytes, ctx.media_start + self.start_s
            )
            return Outcome.dropping(o, ~passed, DropReason.POLICER)

        facts = {"rate_fraction": self.rate_Bps / ctx.payload_rate}
        span = ((ctx.media_start + self.start_s, ctx.duration),)
        return Effect(self._per_direction(offered, one), facts, span)


@dataclass(frozen=True)
class Shaping(Scenario):
    """A FIFO shaper of ``rate_Bps`` with a ``buffer_bytes`` buffer (counts UDP payload bytes)."""

    label: ClassVar[str] = "shaping"
    rate_Bps: float = 6000.0
    buffer_bytes: float = 3000.0
    start_s: float = 0.0
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        rate = float(rng.uniform(0.5, 0.85)) * ctx.payload_rate
        max_delay = float(rng.uniform(0.15, 1.0))
        # The queue's fill-up must be in the capture: it is what tells a shaper from a policer.
        start = float(rng.uniform(1.0, max(1.0, min(6.0, 0.3 * ctx.duration))))
        return cls(
            rate_Bps=round(rate, 1),
            buffer_bytes=round(rate * max_delay),
            start_s=round(start, 3),
            direction=_draw_direction(rng),
        )

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        def one(o: Offered) -> Outcome:
            depart = mechanisms.fifo_queue(
                o.time, o.size, self.rate_Bps, self.buffer_bytes, ctx.media_start + self.start_s
            )
            lost = np.isnan(depart)
            return Outcome(depart, np.where(lost, DropReason.QUEUE, 0).astype(np.uint8))

        facts = {
            "max_queue_delay_s": self.buffer_bytes / self.rate_Bps,
            "rate_fraction": self.rate_Bps / ctx.payload_rate,
        }
        span = ((ctx.media_start + self.start_s, ctx.duration),)
        return Effect(self._per_direction(offered, one), facts, span)


@dataclass(frozen=True)
class Cutoff(Scenario):
    """Every packet of the flow dropped after ``after_s`` of service or ``after_bytes``.

    ``after_bytes`` counts UDP payload bytes of the media (RTP or opaque)
    packets of both directions together, as a middlebox counting the call's
    flow would; zero means the cut is by time.
    """

    label: ClassVar[str] = "cutoff"
    after_s: float = 10.0
    after_bytes: float = 0.0
    direction: str = BOTH

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        latest = min(20.0, ctx.duration - 5.0)
        after_s = float(rng.uniform(5.0, latest)) if latest > 5.0 else 0.5 * ctx.duration
        after_bytes = 0.0
        if rng.random() < 0.3:
            after_bytes = float(round(after_s * ctx.payload_rate * 2, -2))
            after_s = 0.0
        return cls(after_s=round(after_s, 3), after_bytes=after_bytes, direction=BOTH)

    @classmethod
    def default_vantage(cls, opaque: bool) -> str:
        # A messenger call has no signalling or RTCP to outlive its media: past
        # the cut, only an endpoint's own capture shows it still sending into
        # the void. (RTP calls keep their SIP, whose late BYE shows the cut.)
        return "a" if opaque else "receivers"

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        hit = self.impaired_directions()
        if self.after_bytes > 0:
            times = np.concatenate([offered[d].time for d in hit])
            sizes = np.concatenate([offered[d].size for d in hit])
            order = np.argsort(times, kind="stable")
            total = np.cumsum(sizes[order])
            k = int(np.searchsorted(total, self.after_bytes, side="right"))
            cut = float(times[order][k]) if k < len(order) else math.inf
        else:
            cut = ctx.media_start + self.after_s
        a_to_b, b_to_a = (
            Outcome.dropping(o, o.time >= cut, DropReason.CUTOFF) if d in hit else Outcome.untouched(o)
            for d, o in enumerate(offered)
        )
        passed = sum(int(offered[d].size[offered[d].time < cut].sum()) for d in hit)
        packets = sum(int(np.count_nonzero(offered[d].time < cut)) for d in hit)
        facts = {"time_s": cut - ctx.media_start, "bytes": float(passed), "packets": float(packets)}
        return Effect((a_to_b, b_to_a), facts, ((cut, ctx.duration),) if cut < ctx.duration else ())


@dataclass(frozen=True)
class OneWay(Scenario):
    """One direction's media blocked from ``start_s`` (0: from the start), the other fine."""

    label: ClassVar[str] = "one-way"
    start_s: float = 0.0
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        start = 0.0 if rng.random() < 0.3 else _between(rng, 2.0, min(10.0, 0.5 * ctx.duration))
        return cls(start_s=round(start, 3), direction="b->a")

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        _check_direction(self.direction, DIRECTIONS)
        t0 = ctx.media_start + self.start_s

        def one(o: Offered) -> Outcome:
            return Outcome.dropping(o, o.time >= t0, DropReason.BLOCKED)

        return Effect(self._per_direction(offered, one), {}, ((t0, ctx.duration),))

    def accepts(self) -> tuple[str, ...]:
        # Mid-call, everything of the blocked party stops (its RTCP shares the
        # media's fate) while the other keeps sending: from the capture alone
        # that is as much a cut-off seen from one end as a one-way block.
        return (self.label, "cutoff") if self.start_s > 0 else (self.label,)


@dataclass(frozen=True)
class SetupBlocked(Scenario):
    """ICE connectivity checks and TURN allocations never answered; media never starts.

    ``transactions`` STUN requests (Binding to the peer, Allocate to a TURN
    server, alternately) each retransmitted per RFC 5389 §7.2.1: after ``rto_s``,
    doubling each time, ``retransmissions`` times. They start ``gap_s`` apart.
    """

    label: ClassVar[str] = "setup-blocked"
    has_media: ClassVar[bool] = False
    transactions: int = 3
    rto_s: float = 0.5
    retransmissions: int = 6
    gap_s: float = 2.0
    direction: str = BOTH

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        return cls(
            transactions=int(rng.integers(2, 6)),
            # RFC 5389 §7.2.1: RTO SHOULD be > 500 ms; ICE paces checks faster (RFC 8445 §14).
            rto_s=float(rng.choice([0.1, 0.25, 0.5])),
            retransmissions=6,  # RFC 5389 §7.2.1: Rc = 7 sends in all
            gap_s=round(float(rng.uniform(0.05, 3.0)), 3),
            direction=BOTH,
        )

    def request_times(self, duration: float) -> tuple[np.ndarray, np.ndarray]:
        """Send times of every request and the transaction each belongs to."""
        offsets = np.concatenate([[0.0], self.rto_s * (2.0 ** np.arange(self.retransmissions + 1) - 1)[1:]])
        starts = np.arange(self.transactions) * self.gap_s + 0.05
        times = (starts[:, None] + offsets[None, :]).ravel()
        tx = np.repeat(np.arange(self.transactions), offsets.size)
        keep = times < duration
        return times[keep], tx[keep]


@dataclass(frozen=True)
class Jitter(Scenario):
    """Strongly varying delay that reorders packets, with little loss.

    Each packet's extra delay is gamma distributed (shape 1.5, mean
    ``jitter_ms``) and independent, as on a path that sprays packets over links
    of different queueing; on top, ``spikes_per_min`` delay spikes (a stalled
    radio link) hold packets for up to ``spike_ms`` and release them together.
    """

    label: ClassVar[str] = "jitter"
    jitter_ms: float = 25.0
    spikes_per_min: float = 2.0
    spike_ms: float = 200.0
    loss: float = 0.002
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        return cls(
            jitter_ms=round(float(rng.uniform(15.0, 50.0)), 2),
            spikes_per_min=round(float(rng.uniform(0.0, 6.0)), 2),
            spike_ms=round(float(rng.uniform(100.0, 400.0)), 1),
            loss=round(float(rng.uniform(0.0, 0.004)), 4),
            direction=str(rng.choice(["b->a", "b->a", BOTH])),
        )

    def impair(
        self, rng: np.random.Generator, ctx: CallContext, offered: tuple[Offered, Offered]
    ) -> Effect:
        reordered = []

        def one(o: Offered) -> Outcome:
            n = len(o.time)
            extra = rng.gamma(1.5, self.jitter_ms / 1.5, n) / 1e3
            spikes = rng.uniform(0.0, ctx.duration, rng.poisson(self.spikes_per_min * ctx.duration / 60))
            for s in spikes:
                # A stall at s lasting d: packets arriving during it leave when it ends.
                d = float(rng.uniform(0.3, 1.0)) * self.spike_ms / 1e3
                held = (o.time >= s) & (o.time < s + d)
                extra[held] = np.maximum(extra[held], s + d - o.time[held])
            depart = o.time + extra
            lost = mechanisms.bernoulli_loss(rng, n, self.loss)
            depart[lost] = np.nan
            ok = depart[~lost]
            reordered.append(np.count_nonzero(ok < np.maximum.accumulate(ok)) / max(1, ok.size))
            return Outcome(depart, np.where(lost, DropReason.RANDOM, 0).astype(np.uint8), fifo=False)

        outcomes = self._per_direction(offered, one)
        return Effect(outcomes, {"reordered_fraction": float(max(reordered, default=0.0))})


@dataclass(frozen=True)
class CodecDownshift(Scenario):
    """The sender adapts to a rate cap at ``time_s``: longer frames or smaller payloads.

    ``new_ptime_ms`` is the packetization interval from then on (a packet-rate
    drop); ``size_factor`` scales a variable-rate codec's payloads (a
    bit-rate drop). No sustained loss.
    """

    label: ClassVar[str] = "codec-downshift"
    time_s: float = 10.0
    new_ptime_ms: int = 40
    size_factor: float = 1.0
    direction: str = "b->a"

    @classmethod
    def draw(cls, rng: np.random.Generator, ctx: CallContext) -> Self:
        time_s = float(rng.uniform(0.2, 0.6)) * ctx.duration
        if ctx.codec.variable_rate and rng.random() < 0.5:
            ptime, factor = 20, float(rng.uniform(0.35, 0.6))
        else:
            ptime, factor = int(rng.choice([40, 60])), 1.0
        return cls(time_s=round(time_s, 3), new_ptime_ms=ptime, size_factor=round(factor, 3),
                   direction="b->a")

    def downshift(self) -> Downshift:
        _check_direction(self.direction, DIRECTIONS)
        return Downshift(DIRECTIONS.index(self.direction), self.time_s, self.new_ptime_ms, self.size_factor)


def _between(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform in [lo, hi]; in a call too short for that, in [hi / 2, hi]."""
    return float(rng.uniform(lo, hi) if hi > lo else rng.uniform(0.5 * hi, hi))


def _draw_direction(rng: np.random.Generator) -> str:
    """Throttling is usually applied to one direction; make it the one the capture receives."""
    return "b->a" if rng.random() < 0.8 else BOTH


SCENARIOS: dict[str, type[Scenario]] = {
    s.label: s
    for s in (
        Clean, RandomLoss, BurstyLoss, Congestion, IntermittentOutage, Policing, Shaping,
        Cutoff, OneWay, SetupBlocked, Jitter, CodecDownshift,
    )
}


def scenario_named(name: str) -> type[Scenario]:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise CallscopeError(
            f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}"
        ) from None


def with_overrides(params: Scenario, overrides: dict[str, Any]) -> Scenario:
    """``params`` with some fields replaced, values converted to the field's type."""
    fields = {f.name: f for f in dataclasses.fields(params)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise CallscopeError(
                f"scenario {params.label!r} has no parameter {key!r}; "
                f"it has: {', '.join(fields) or 'none'}"
            )
        kind = type(getattr(params, key))
        try:
            changes[key] = kind(value)
        except (TypeError, ValueError):
            raise CallscopeError(f"parameter {key}={value!r} is not a valid {kind.__name__}") from None
    if "direction" in changes:
        _check_direction(changes["direction"], (*DIRECTIONS, BOTH))
    return dataclasses.replace(params, **changes)
