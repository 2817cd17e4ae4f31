"""The lab's network: three namespaces joined by two veth pairs, nothing else.

::

    cs-lab-a (caller)            cs-lab-r (router)                cs-lab-b (callee)
    cs-a 198.18.1.2/24 ===== cs-ra 198.18.1.1  cs-rb 198.18.2.1 ===== cs-b 198.18.2.2/24
                                 relay 198.18.3.1/32 on lo

Every address lies in the benchmarking block 198.18.0.0/15 (RFC 2544 §C.2.2,
RFC 5735 §3) and exists only on the lab's own veths: the endpoints have one
route, to the other side via the router, and no default route; the router
has only its connected networks. Nothing is bridged, routed or NATed to the
host, whose interfaces, rules and qdiscs the lab never touches. Every veth
is created directly inside its namespace, so none ever appears on the host,
and deleting the three namespaces deletes everything the lab made (links,
nft tables, qdiscs). Neighbours are static (no ARP on the wire) and IPv6 is
off inside the namespaces (no router solicitations or MLD reports in the
captures).

The functions here only *build* command lines (pure, testable anywhere);
:mod:`callscope.lab.run` executes them.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "cs-lab"
NS_A = f"{PREFIX}-a"
NS_R = f"{PREFIX}-r"
NS_B = f"{PREFIX}-b"
NAMESPACES = (NS_A, NS_R, NS_B)

DEV_A = "cs-a"  # caller's veth (in NS_A)
DEV_RA = "cs-ra"  # router's veth towards the caller: egress of direction b->a
DEV_RB = "cs-rb"  # router's veth towards the callee: egress of direction a->b
DEV_B = "cs-b"  # callee's veth (in NS_B)

# Locally administered unicast MACs (IEEE 802: first octet 0x02).
MAC = {DEV_A: "02:c5:00:01:00:02", DEV_RA: "02:c5:00:01:00:01",
       DEV_RB: "02:c5:00:02:00:01", DEV_B: "02:c5:00:02:00:02"}

ADDR_A = "198.18.1.2"
ADDR_RA = "198.18.1.1"
ADDR_RB = "198.18.2.1"
ADDR_B = "198.18.2.2"
ADDR_RELAY = "198.18.3.1"
NET_A = "198.18.1.0/24"
NET_B = "198.18.2.0/24"
LAB_NET = "198.18.0.0/15"  # RFC 2544 §C.2.2 benchmarking block

#: Where the router's cross traffic goes: a port each endpoint binds only to
#: count and discard it (tcpdump's filter keeps it out of the captures).
SINK_PORT = 9
#: Capture filter: the call's traffic, not the router's cross traffic.
CAPTURE_FILTER = f"udp and not port {SINK_PORT}"


@dataclass(frozen=True)
class Command:
    """One command line, and the namespace it runs in (None: the lab's own, host-side)."""

    argv: tuple[str, ...]
    netns: str | None = None

    def full(self) -> list[str]:
        """The argv to execute (``ip netns exec NS ...`` when inside a namespace)."""
        if self.netns is None:
            return list(self.argv)
        return ["ip", "netns", "exec", self.netns, *self.argv]

    def __str__(self) -> str:
        return " ".join(self.full())


def _c(netns: str | None, *argv: str) -> Command:
    return Command(tuple(argv), netns)


def setup_commands() -> list[Command]:
    """Create the namespaces, veths, addresses, static neighbours and routes."""
    cmds = [_c(None, "ip", "netns", "add", ns) for ns in NAMESPACES]
    cmds += [
        _c(None, "ip", "link", "add", DEV_A, "netns", NS_A, "address", MAC[DEV_A], "type", "veth",
           "peer", "name", DEV_RA, "netns", NS_R, "address", MAC[DEV_RA]),
        _c(None, "ip", "link", "add", DEV_B, "netns", NS_B, "address", MAC[DEV_B], "type", "veth",
           "peer", "name", DEV_RB, "netns", NS_R, "address", MAC[DEV_RB]),
    ]
    for ns in NAMESPACES:
        cmds += [
            _c(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"),
            _c(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"),
            _c(None, "ip", "-n", ns, "link", "set", "lo", "up"),
        ]
    cmds += [
        _c(NS_R, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
        # No ICMP errors from the router: a dropped packet must not make traffic of its own.
        _c(NS_R, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"),
        _c(None, "ip", "-n", NS_A, "addr", "add", f"{ADDR_A}/24", "dev", DEV_A),
        _c(None, "ip", "-n", NS_R, "addr", "add", f"{ADDR_RA}/24", "dev", DEV_RA),
        _c(None, "ip", "-n", NS_R, "addr", "add", f"{ADDR_RB}/24", "dev", DEV_RB),
        _c(None, "ip", "-n", NS_R, "addr", "add", f"{ADDR_RELAY}/32", "dev", "lo"),
        _c(None, "ip", "-n", NS_B, "addr", "add", f"{ADDR_B}/24", "dev", DEV_B),
    ]
    for ns, dev in ((NS_A, DEV_A), (NS_R, DEV_RA), (NS_R, DEV_RB), (NS_B, DEV_B)):
        cmds.append(_c(None, "ip", "-n", ns, "link", "set", dev, "up"))
    cmds += [
        _c(None, "ip", "-n", NS_A, "neigh", "replace", ADDR_RA, "lladdr", MAC[DEV_RA], "dev", DEV_A,
           "nud", "permanent"),
        _c(None, "ip", "-n", NS_R, "neigh", "replace", ADDR_A, "lladdr", MAC[DEV_A], "dev", DEV_RA,
           "nud", "permanent"),
        _c(None, "ip", "-n", NS_R, "neigh", "replace", ADDR_B, "lladdr", MAC[DEV_B], "dev", DEV_RB,
           "nud", "permanent"),
        _c(None, "ip", "-n", NS_B, "neigh", "replace", ADDR_RB, "lladdr", MAC[DEV_RB], "dev", DEV_B,
           "nud", "permanent"),
        # One route each, to the rest of the lab block via the router; no default route.
        _c(None, "ip", "-n", NS_A, "route", "add", LAB_NET, "via", ADDR_RA, "dev", DEV_A),
        _c(None, "ip", "-n", NS_B, "route", "add", LAB_NET, "via", ADDR_RB, "dev", DEV_B),
    ]
    return cmds


def teardown_commands() -> list[Command]:
    """Delete the namespaces: their veths, nft tables and qdiscs go with them."""
    return [_c(None, "ip", "netns", "del", ns) for ns in NAMESPACES]
