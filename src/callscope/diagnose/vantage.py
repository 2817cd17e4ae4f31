"""Where the capture was taken, and what else the call's endpoints did.

The same silence means different things from different places. At an
endpoint, its own outgoing media is captured before the network touches it,
so that stream stopping is the application's choice (hang-up, hold, mute,
transfer), never an impairment; a cut-off shows there as the peer's traffic
stopping while the local side keeps sending. Mid-path, either direction can
be hit. Whether a party was still alive after its media stopped (its RTCP
reports go on, its signalling goes on, its STUN consent checks go on) is what
separates blocking from an ordinary end of the call.

This module gathers those facts from the media inventory: the capture's
local host when the capture shows one, and every control packet (RTCP, STUN)
each endpoint sent, with its time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from callscope.media.discover import MediaInventory

#: An endpoint: (address, port).
Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Vantage:
    """Where the capture was taken, as far as the capture shows it.

    Attributes
    ----------
    local : frozenset of str
        Hosts the capture was taken on (their outgoing media is seen before
        any network): empty when the capture does not say.
    reason : str
        Why, in words, for the evidence.
    """

    local: frozenset[str] = frozenset()
    reason: str = "the capture does not show where it was taken"
    #: What the local host's outgoing media had crossed when captured:
    #: "nothing" (the capture was taken on the host) or "its own LAN" (on
    #: the host's side of a NAT, possibly after a Wi-Fi hop).
    crossed: str = "nothing"

    @property
    def seen_before_network(self) -> bool:
        """Whether the local host's own media was captured before any link at all."""
        return self.crossed == "nothing"


@dataclass(frozen=True)
class Activity:
    """Control traffic each endpoint sent, and RTCP BYEs, with their times.

    ``sent`` maps an endpoint to the sorted times (seconds since the capture's
    first frame) of RTCP packets it sent and of its STUN transactions' last
    packets; ``byes`` maps an RTCP BYE's SSRC to its time (RFC 3550 §6.6).
    """

    sent: dict[Endpoint, np.ndarray] = field(default_factory=dict)
    byes: dict[int, float] = field(default_factory=dict)

    def after(self, endpoints: Iterable[Endpoint], t: float) -> float | None:
        """The last control packet any of ``endpoints`` sent after ``t``, or None."""
        last = None
        for e in endpoints:
            times = self.sent.get(e)
            if times is not None and times.size and times[-1] > t:
                last = float(times[-1]) if last is None else max(last, float(times[-1]))
        return last


def control_endpoints(address: str, port: int) -> tuple[Endpoint, Endpoint]:
    """Where a media sender's control traffic comes from: its media port
    (RTCP multiplexed, RFC 5761; ICE consent checks, RFC 7675) and the next
    one up (RTCP on port + 1, RFC 3550 §11)."""
    return ((address, port), (address, port + 1))


def activity_of(inventory: MediaInventory) -> Activity:
    """Every endpoint's RTCP and STUN sending times, and the RTCP BYEs."""
    times: dict[Endpoint, list[float]] = {}
    rtcp = inventory.rtcp
    for r in rtcp.sender_reports:
        times.setdefault((r.src, r.src_port), []).append(r.time)
    for b in rtcp.report_blocks:
        times.setdefault((b.src, b.src_port), []).append(b.time)
    for x in inventory.stun.exchanges:
        # The client's requests and, when it answered, the server's responses.
        times.setdefault((x.client, x.client_port), []).append(x.last_time)
        if x.answered:
            times.setdefault((x.server, x.server_port), []).append(x.last_time)
    sent = {e: np.sort(np.asarray(v, dtype=np.float64)) for e, v in times.items()}
    byes: dict[int, float] = {}
    for bye in rtcp.byes:
        for ssrc in bye.ssrcs:
            byes.setdefault(ssrc, bye.time)
    return Activity(sent, byes)


def infer_vantage(inventory: MediaInventory) -> Vantage:
    """The host the capture was taken on, when the capture shows it.

    A host that takes part in every one of several calls with different peers
    is where the capture was made (a softphone's, an SBC's or a test client's
    own capture): no other place sees all of those calls. Failing that, the
    one host whose packets still carry an initial TTL while everyone else's
    arrive lowered (:func:`_initial_ttl`) sent them from the capture's own
    link. Failing that, a single host with a non-public address (RFC 1918, RFC 6598 shared, ULA,
    link-local) talking to public peers was captured on its side of the NAT
    (:func:`_behind_nat`): its address never crosses the NAT, so the capture
    saw its packets before the network did.
    """
    by_id = {s.id: s for s in inventory.streams}
    hosts_per_call = []
    for call in inventory.calls:
        hosts: set[str] = set()
        for sid in call.stream_ids:
            s = by_id.get(sid)
            if s is not None:
                hosts.update((s.src, s.dst))
        if hosts:
            hosts_per_call.append(hosts)
    if len(hosts_per_call) >= 2:
        common = set.intersection(*hosts_per_call)
        peers = set.union(*hosts_per_call) - common
        if len(common) == 1 and len(peers) >= 2:
            (host,) = common
            return Vantage(
                frozenset(common),
                f"captured on {host}: it takes part in all {len(hosts_per_call)} calls, with "
                f"{len(peers)} different peers",
            )
    found = _initial_ttl(inventory)
    return found if found.local else _behind_nat(inventory)


#: Initial IP TTL / hop limit of common stacks: 64 (Linux, macOS, iOS,
#: Android; RFC 1700's default), 128 (Windows), 255 (many routers, some
#: Unix stacks). Every router on the path lowers it by one (RFC 791 §3.2,
#: RFC 8200 §3).
INITIAL_TTLS = frozenset({64, 128, 255})


def _initial_ttl(inventory: MediaInventory) -> Vantage:
    """The one party whose every datagram carries an initial TTL, when every
    other party's arrive lowered by at least one router: it sent from the
    capture's link (the capture host itself, or its segment). Parties are the
    hosts of the media streams; what each sent counts whole (media, RTCP,
    SIP, STUN), so a party that only listens is placed too."""
    parties = {h for s in inventory.streams for h in (s.src, s.dst)}
    sent = {h: inventory.sender_ttl[h] for h in parties if h in inventory.sender_ttl}
    if len(parties) < 2 or len(sent) != len(parties):
        return Vantage()
    near = [h for h, (lo, hi) in sent.items() if lo == hi and lo in INITIAL_TTLS]
    far = [h for h, (lo, hi) in sent.items() if lo not in INITIAL_TTLS and hi not in INITIAL_TTLS]
    if len(near) != 1 or len(near) + len(far) != len(parties):
        return Vantage()
    (host,) = near
    ttl = sent[host][0]
    others = sorted({t for h in far for t in sent[h]})
    return Vantage(
        frozenset(near),
        f"captured on {host}'s own link: its packets carry the initial TTL {ttl}, every other "
        f"party's arrive lowered by routers (TTL {', '.join(str(t) for t in others[:4])})",
        crossed="its own link",
    )


def _behind_nat(inventory: MediaInventory) -> Vantage:
    """The one non-public host among public peers, or an empty vantage."""
    hosts = {h for s in inventory.streams for h in (s.src, s.dst)}
    inside = []
    for h in hosts:
        try:
            if not ipaddress.ip_address(h).is_global:
                inside.append(h)
        except ValueError:
            return Vantage()
    if len(inside) != 1 or len(hosts) < 2:
        return Vantage()
    (host,) = inside
    return Vantage(
        frozenset(inside),
        f"captured on {host}'s side of a NAT: it is the only non-public address, talking to "
        f"{len(hosts) - 1} public one{'s' if len(hosts) > 2 else ''}, and such an address never crosses the NAT",
        crossed="its own LAN",
    )
