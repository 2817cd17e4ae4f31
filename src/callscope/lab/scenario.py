"""Lab scenarios: what the endpoints send and what the router does to it.

A :class:`Scenario` is plain data. The router's part of it becomes exact
command lines through pure functions (:func:`nft_ruleset`,
:func:`tc_commands`, :func:`gate_schedule`), so what the kernel is told can
be read and tested without root. All impairments act in the router
namespace only: nftables in the ``forward`` hook, one chain per direction,
and tc qdiscs on the router's egress veth of each direction.

Ports (as in ``../shared/lab-v1``): the caller A sends RTP from 40002 to the
callee B's 40000 (direction ``a->b``), B from 40000 to 40002 (``b->a``);
RTCP on port + 1; SIP between A:5062 and B:5060; B's STUN/TURN server on
3478.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from callscope.lab.topology import DEV_RA, DEV_RB, NS_R, Command

A_RTP = 40002
B_RTP = 40000
A_SIP = 5062
B_SIP = 5060
STUN_PORT = 3478  # RFC 5389 §18.4: default STUN port
#: The ports of the second call of a hang-up scenario (new call, new ports).
A_RTP_2 = 40012
B_RTP_2 = 40010

DIRECTIONS = ("a->b", "b->a")
#: The router's veth a packet of a direction enters by (nft ``iifname``) and leaves by (tc).
INGRESS = {"a->b": DEV_RA, "b->a": DEV_RB}
EGRESS = {"a->b": DEV_RB, "b->a": DEV_RA}
NFT_TABLE = "callscope"
NFT_FAMILY = "inet"
#: Per-direction names usable in nft identifiers.
TAG = {"a->b": "ab", "b->a": "ba"}


def media_dports(direction: str) -> tuple[int, ...]:
    """Destination ports of a direction's RTP and RTCP (both calls)."""
    if direction == "a->b":
        return (B_RTP, B_RTP + 1, B_RTP_2, B_RTP_2 + 1)
    return (A_RTP, A_RTP + 1, A_RTP_2, A_RTP_2 + 1)


@dataclass(frozen=True)
class Media:
    """What the endpoints do.

    ``codec``: ``pcmu`` (G.711 µ-law, PT 0, 160 B / 20 ms), ``opus`` (PT 111,
    48 kHz clock, VBR sizes following a speech envelope) or ``opaque``
    (encrypted-messenger-like: no RTP header, random bytes, voice-like sizes).
    """

    codec: str = "pcmu"
    duration_s: float = 25.0
    two_way: bool = True
    sip: bool = True
    rtcp: bool = True
    #: ICE-style STUN connectivity checks before media and RFC 7675 consent checks during it.
    ice: bool = False
    dtx: bool = False
    #: A real capture whose inter-departure pattern the senders replay.
    replay: str | None = None
    #: Seconds the capture runs on after both ends hung up.
    tail_s: float = 0.6
    #: A second call after the first hung up: gap before it, its duration.
    second_call: tuple[float, float] | None = None
    #: Media goes through the relay in the router until this time, then direct.
    relay_until_s: float | None = None
    #: From this time on the senders use 40 ms frames and 0.6 x the payload.
    downshift_at_s: float | None = None
    #: No media at all: the caller's STUN transactions to B:3478 (setup-blocked).
    setup_only: bool = False


@dataclass(frozen=True)
class NftRule:
    """One drop rule in the router's chain of ``direction``: ``MATCH [EXPR] counter drop``."""

    direction: str
    match: str
    expr: str = ""
    #: Seconds after media start at which the rule is added (None: present from the start).
    start_s: float | None = None

    def text(self) -> str:
        return " ".join(p for p in (self.match, self.expr, "counter drop") if p)


@dataclass(frozen=True)
class Gate:
    """Drop rule switched on from ``start_s`` for ``length_s`` (None: to the end) on ``ports``.

    ``loss_per_mille`` < 1000 makes it a lossy (Gilbert–Elliott "bad") state
    rather than a blackhole.
    """

    direction: str
    start_s: float
    length_s: float | None
    ports: tuple[int, ...]
    loss_per_mille: int = 1000


@dataclass(frozen=True)
class Qdisc:
    """A root qdisc on the router's egress veth of ``direction``.

    ``tbf``: rate, burst, byte limit (queue). ``htb``: one class at ``rate``
    with a ``pfifo`` of ``limit_packets`` (a shaper with a standing queue).
    """

    direction: str
    kind: str
    rate_bit: int
    burst_bytes: int = 3000
    limit_bytes: int = 0
    limit_packets: int = 0


@dataclass(frozen=True)
class CrossTraffic:
    """UDP cross traffic from the router towards ``direction``'s receiver.

    A Poisson base of ``base_kbit`` plus on/off bursts at ``on_kbit`` with
    exponential on and off times; packets of ``size`` bytes (UDP payload),
    burst packets in clumps of ``clump`` sent back to back.
    """

    direction: str
    base_kbit: float
    on_kbit: float = 0.0
    on_mean_s: float = 0.5
    off_mean_s: float = 2.0
    size: int = 1200
    clump: int = 1


@dataclass(frozen=True)
class Scenario:
    """A labelled lab run."""

    name: str
    label: str
    media: Media
    accept: tuple[str, ...] = ()
    #: The endpoint whose capture is the single-point evaluation capture ``NAME.pcap``.
    vantage: str = "b"
    rules: tuple[NftRule, ...] = ()
    gates: tuple[Gate, ...] = ()
    qdiscs: tuple[Qdisc, ...] = ()
    cross: tuple[CrossTraffic, ...] = ()
    seed: int = 0
    params: dict[str, float | str] = field(default_factory=dict)
    description: str = ""

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.accept or (self.label,)

    def with_name(self, name: str) -> Scenario:
        return replace(self, name=name)


def nft_ruleset(s: Scenario) -> str:
    """The router's nftables ruleset (``nft -f`` input) for scenario ``s``.

    One table; a ``forward`` base chain jumps by ingress veth into a chain
    per direction; every drop rule carries a counter. Gates are sets of
    destination ports with timeouts that the router's controller fills on a
    schedule: a rule matching ``@gate_ab`` drops while the port is in the set.
    """
    lines = [f"table {NFT_FAMILY} {NFT_TABLE} {{"]
    gate_dirs = sorted({(g.direction, g.loss_per_mille) for g in s.gates})
    for d, per_mille in gate_dirs:
        lines.append(f"\tset {_gate_set(d, per_mille)} {{ type inet_service; flags timeout; }}")
    lines.append("\tchain forward {")
    lines.append("\t\ttype filter hook forward priority filter; policy accept;")
    for d in DIRECTIONS:
        lines.append(f'\t\tiifname "{INGRESS[d]}" jump {_chain(d)}')
    lines.append("\t}")
    for d in DIRECTIONS:
        lines.append(f"\tchain {_chain(d)} {{")
        for per_mille_dir, per_mille in gate_dirs:
            if per_mille_dir == d:
                lines.append(f"\t\t{_gate_rule(d, per_mille)}")
        for r in s.rules:
            if r.direction == d and r.start_s is None:
                lines.append(f"\t\t{r.text()}")
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(direction: str) -> str:
    return f"{TAG[direction]}"


def _gate_set(direction: str, per_mille: int) -> str:
    return f"gate_{TAG[direction]}" if per_mille >= 1000 else f"bad_{TAG[direction]}_{per_mille}"


def _gate_rule(direction: str, per_mille: int) -> str:
    name = _gate_set(direction, per_mille)
    if per_mille >= 1000:
        return f"udp dport @{name} counter drop"
    return f"udp dport @{name} numgen random mod 1000 < {per_mille} counter drop"


def late_rule_command(r: NftRule) -> list[str]:
    """The ``nft`` argv that adds a rule starting mid-call (run in the router namespace)."""
    return ["nft", "add", "rule", NFT_FAMILY, NFT_TABLE, _chain(r.direction), *r.text().split()]


def gate_command(g: Gate) -> list[str]:
    """The ``nft`` argv that switches a gate on (elements time out after ``length_s``)."""
    timeout = "" if g.length_s is None else f" timeout {max(1, round(g.length_s * 1000))}ms"
    elements = ", ".join(f"{p}{timeout}" for p in g.ports)
    return ["nft", "add", "element", NFT_FAMILY, NFT_TABLE, _gate_set(g.direction, g.loss_per_mille),
            f"{{ {elements} }}"]


def gate_schedule(s: Scenario) -> list[tuple[float, list[str]]]:
    """(seconds after media start, nft argv) the router's controller runs, in time order."""
    events = [(g.start_s, gate_command(g)) for g in s.gates]
    events += [(r.start_s, late_rule_command(r)) for r in s.rules if r.start_s is not None]
    return sorted(events, key=lambda e: e[0])


def tc_commands(s: Scenario) -> list[Command]:
    """``tc`` commands installing the scenario's qdiscs in the router namespace."""
    out: list[Command] = []
    for q in s.qdiscs:
        dev = EGRESS[q.direction]
        base = ("tc", "qdisc", "replace", "dev", dev, "root")
        if q.kind == "tbf":
            out.append(Command((*base, "handle", "1:", "tbf", "rate", f"{q.rate_bit}bit",
                                "burst", str(q.burst_bytes), "limit", str(q.limit_bytes)), NS_R))
        elif q.kind == "htb":
            out += [
                Command((*base, "handle", "1:", "htb", "default", "10"), NS_R),
                Command(("tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
                         "rate", f"{q.rate_bit}bit", "ceil", f"{q.rate_bit}bit",
                         "burst", str(q.burst_bytes)), NS_R),
                Command(("tc", "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:",
                         "pfifo", "limit", str(q.limit_packets)), NS_R),
            ]
        else:
            raise ValueError(f"unknown qdisc kind {q.kind!r}")
    return out


def nft_commands(s: Scenario) -> list[Command]:
    """The command that loads :func:`nft_ruleset` (its text goes to stdin)."""
    return [Command(("nft", "-f", "-"), NS_R)]
