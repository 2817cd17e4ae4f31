"""The capture reader against scapy, an independent decoder, on crafted files.

Every supported container (classic pcap in both byte orders with µs and ns
timestamps; pcapng with sections of either byte order, several interfaces
with their own link type, ``if_tsresol`` and ``if_tsoffset``, Enhanced,
Simple and obsolete Packet Blocks and unknown blocks; gzip around either) is
written here with :mod:`struct` around frames built by scapy, then read back
both by scapy and by :func:`callscope.capture.read_capture`: every UDP
datagram's frame number, timestamp, addresses, ports and payload must agree.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv46,
    fragment6,
)
from scapy.layers.l2 import (
    ARP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    Loopback,
    LoopbackOpenBSD,
)
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Raw
from scapy.utils import rdpcap

from callscope.capture import CaptureReader, Datagrams, address_to_str, read_capture

# -- writing captures with struct -------------------------------------------------

PCAP_US, PCAP_NS = 0xA1B2C3D4, 0xA1B23C4D
SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
NRB, ISB = 4, 5  # name resolution and interface statistics blocks: skipped by the reader
CUSTOM = 0x40000BAD  # a custom block type (draft-ietf-opsawg-pcapng §4.8)


def pcap_file(frames, linktype: int, endian: str = "<", nano: bool = False, snaplen: int = 65535) -> bytes:
    """Classic pcap; ``frames`` are ``(time_ns, data, original_length)``."""
    out = [struct.pack(endian + "IHHiIII", PCAP_NS if nano else PCAP_US, 2, 4, 0, 0, snaplen, linktype)]
    for t, data, orig in frames:
        sec, ns = divmod(t, 10**9)
        out.append(struct.pack(endian + "IIII", sec, ns if nano else ns // 1000, len(data), orig) + data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(endian: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def option(endian: str, code: int, value: bytes) -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad4(value)


def shb(endian: str) -> bytes:
    comment = option(endian, 1, b"crafted by test_capture_formats") + option(endian, 0, b"")
    return block(endian, SHB, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1) + comment)


def idb(endian: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None,
        snaplen: int = 262144) -> bytes:
    opts = option(endian, 2, b"eth0")
    if tsresol is not None:
        opts += option(endian, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(endian, 14, struct.pack(endian + "q", tsoffset))
    return block(endian, IDB, struct.pack(endian + "HHI", linktype, 0, snaplen) + opts + option(endian, 0, b""))


def epb(endian: str, iface: int, units: int, data: bytes, orig: int) -> bytes:
    head = struct.pack(endian + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), orig)
    return block(endian, EPB, head + data + option(endian, 1, b"epb comment") + option(endian, 0, b""))


def opb(endian: str, iface: int, units: int, data: bytes, orig: int) -> bytes:
    head = struct.pack(endian + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data), orig)
    return block(endian, OPB, head + data)


def spb(endian: str, data: bytes, orig: int | None = None) -> bytes:
    return block(endian, SPB, struct.pack(endian + "I", len(data) if orig is None else orig) + data)


def unknown_blocks(endian: str) -> bytes:
    return (
        block(endian, NRB, struct.pack(endian + "HH", 0, 0))
        + block(endian, ISB, struct.pack(endian + "IIII", 0, 0, 0, 0))
        + block(endian, CUSTOM, b"\x00\x00\x7e\x39" + b"opaque custom data")
    )


def units_of(t_ns: int, tsresol: int | None) -> int:
    """Raw pcapng timestamp of ``t_ns`` for an interface's ``if_tsresol`` (floor)."""
    code = 6 if tsresol is None else tsresol
    per_s = (2 if code & 0x80 else 10) ** (code & 0x7F)
    return t_ns * per_s // 10**9


# -- frames built with scapy ------------------------------------------------------

T0 = 1_700_000_000_123_456_789  # ns since the epoch, sub-µs digits on purpose


def l3_packets(v6: bool) -> list:
    """Five UDP datagrams of one IP version; every other one with IPv4 options / IPv6 extension headers."""
    out = []
    for k, size in enumerate((0, 5, 17, 160, 1200)):
        payload = bytes((k * 37 + i) & 0xFF for i in range(size))
        udp = UDP(sport=5000 + k, dport=40000 + 2 * k) / Raw(payload)
        if v6:
            ip = IPv6(src=f"2001:db8::{k + 1}", dst="2001:db8:ffff::9")
            if k % 2:
                ip = (ip / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["2001:db8::77"])
                      / IPv6ExtHdrDestOpt())
        else:
            ip = IP(src=f"10.0.{k}.1", dst="192.0.2.200", id=k + 1)
            if k % 2:
                ip.options = [IPOption_RR(routers=["198.51.100.1", "198.51.100.2"]), IPOption_NOP()]
        out.append(ip / udp)
    return out


def non_udp(v6: bool) -> list:
    """TCP and ICMP packets of one IP version (counted, not turned into datagrams)."""
    if v6:
        return [IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=5060, dport=5060, flags="S"),
                IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest()]
    return [IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=443, dport=1234) / Raw(b"x" * 30),
            IP(src="10.0.0.1", dst="10.0.0.2") / ICMP()]


ETH = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def framer(kind: str):
    """``(link type, wrap(l3 packet) -> bytes, carries ARP)`` for one kind of link header."""

    def ether(p):
        return bytes(Ether(**ETH) / p)

    def dot1q(p):
        return bytes(Ether(**ETH) / Dot1Q(vlan=42) / p)

    def qinq(p):
        return bytes(Ether(**ETH) / Dot1AD(vlan=100) / Dot1Q(vlan=42) / p)

    def pppoe(p):
        return bytes(Ether(**ETH) / PPPoE(sessionid=0x1234) / PPP() / p)

    def sll(p):
        return bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0") / p)

    def sll2(p):
        return bytes(CookedLinuxV2(ifindex=3, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0") / p)

    def raw(p):
        return bytes(p)

    def null(order, af6):
        def wrap(p):
            return struct.pack(order + "I", af6 if IPv6 in p else 2) + bytes(p)
        return wrap

    table = {
        "ethernet": (1, ether, True),
        "802.1q": (1, dot1q, True),
        "qinq": (1, qinq, True),
        "pppoe": (1, pppoe, False),
        "sll": (113, sll, True),
        "sll2": (276, sll2, True),
        "raw101": (101, raw, False),
        "raw12": (12, raw, False),
        "raw14": (14, raw, False),
        "ipv4": (228, raw, False),
        "ipv6": (229, raw, False),
        "null-le-24": (0, null("<", 24), False),
        "null-be-28": (0, null(">", 28), False),
        "null-le-30": (0, null("<", 30), False),
        "null-be-10": (0, null(">", 10), False),
        "loop": (108, null(">", 24), False),
    }
    return table[kind]


def frames_for(kind: str) -> tuple[int, list[bytes], dict[str, int]]:
    """Link type, frames (UDP of both IP versions where the link allows, then others), expected counts."""
    linktype, wrap, arp = framer(kind)
    versions = {228: (False,), 229: (True,)}.get(linktype, (False, True))
    frames, counts = [], {"tcp": 0, "icmp": 0, "icmpv6": 0, "arp": 0}
    for v6 in versions:
        frames += [wrap(p) for p in l3_packets(v6)]
        for p in non_udp(v6):
            frames.append(wrap(p))
            counts["tcp" if TCP in p else ("icmpv6" if v6 else "icmp")] += 1
    if arp:
        frames.append(wrap(ARP(psrc="10.0.0.1", pdst="10.0.0.2")))
        counts["arp"] += 1
    return linktype, frames, counts


# -- scapy as the reference decoder -----------------------------------------------


def scapy_udp(packet):
    """The UDP layer scapy finds, re-dissecting the link headers scapy does not know."""
    if isinstance(packet, (Loopback, LoopbackOpenBSD)):
        packet = IPv46(packet.original[4:])  # 4-byte address family, any byte order
    elif type(packet) is Raw:  # link type 14 (OpenBSD raw IP) has no scapy binding
        packet = IPv46(packet.original)
    if UDP not in packet or (IP in packet and packet[IP].frag) or IPv6ExtHdrFragment in packet:
        return None
    return packet


def reference(paths: list[Path], spb_frames=(), offset_s=None) -> list[tuple]:
    """(frame, time_ns, src, dst, sport, dport, payload) of every UDP datagram, per scapy.

    scapy ignores ``if_tsoffset``, keeps interface ids of an earlier pcapng
    section in the next one, and gives Simple Packet Blocks (which carry no
    timestamp) the time of reading. So sections are read as separate files
    (``paths``, in order), ``offset_s`` maps frame -> offset added, and a
    Simple Packet Block takes the time of the frame before it, as callscope
    documents.
    """
    packets = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            packets += rdpcap(str(path))
    out, last = [], 0
    for frame, p in enumerate(packets, 1):
        t = int(Fraction(p.time) * 10**9) + (offset_s or {}).get(frame, 0) * 10**9
        if frame in spb_frames:
            t = last
        last = t
        p = scapy_udp(p)
        if p is None:
            continue
        ip = p[IP] if IP in p else p[IPv6]
        udp = p[UDP]
        payload = bytes(udp)[8:udp.len]
        out.append((frame, t, ip.src, ip.dst, udp.sport, udp.dport, payload))
    return out


def rows(d: Datagrams) -> list[tuple]:
    return [
        (int(d.frame[i]), int(d.time_ns[i]), address_to_str(d.src[i]), address_to_str(d.dst[i]),
         int(d.sport[i]), int(d.dport[i]), d.payload(i))
        for i in range(len(d))
    ]


def check_against_scapy(path: Path, n_udp: int, scapy_paths=None, **kw):
    cap = read_capture(path)
    expected = reference(scapy_paths or [path], **kw)
    assert len(expected) == n_udp
    assert rows(cap.datagrams) == expected
    return cap


def times(n: int, step_ns: int = 20_000_123) -> list[int]:
    return [T0 + k * step_ns for k in range(n)]


# -- tests ------------------------------------------------------------------------

LINK_KINDS = ["ethernet", "802.1q", "qinq", "pppoe", "sll", "sll2", "raw101", "raw12", "raw14",
              "ipv4", "ipv6", "null-le-24", "null-be-28", "null-le-30", "null-be-10", "loop"]
CONTAINERS = [("<", False), (">", True)]  # (byte order, ns timestamps)


@pytest.mark.parametrize("kind", LINK_KINDS)
@pytest.mark.parametrize("endian,nano", CONTAINERS, ids=["le-us", "be-ns"])
def test_pcap_link_types_match_scapy(tmp_path, kind, endian, nano):
    linktype, frames, counts = frames_for(kind)
    stamps = times(len(frames))
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_file([(t, f, len(f)) for t, f in zip(stamps, frames, strict=True)],
                               linktype, endian, nano))
    n_udp = 5 * (1 if linktype in (228, 229) else 2)
    cap = check_against_scapy(path, n_udp)
    assert cap.info.format == ("pcap-ns" if nano else "pcap")
    assert cap.info.byte_order == ("little" if endian == "<" else "big")
    assert cap.info.packets == len(frames)
    assert cap.info.udp_datagrams == n_udp
    assert {k: cap.info.other[k] for k in counts} == counts
    assert cap.info.other["truncated-header"] == 0
    # µs files lose the sub-µs digits; ns files keep every one
    assert int(cap.datagrams.time_ns[0]) == (T0 if nano else T0 // 1000 * 1000)


def two_section_pcapng() -> tuple[list[bytes], int, set[int], dict[int, int], list[str]]:
    """A pcapng file of two sections (little- then big-endian), five interfaces.

    Returns the bytes of each section, the number of UDP datagrams, the frames held in Simple
    Packet Blocks, the ``if_tsoffset`` of every frame, and the link types.
    """
    out, spb_frames, offsets, n_udp = [], set(), {}, 0
    frame = 0

    def packets(endian, iface, kind, tsresol, tsoffset, block_writer=epb):
        nonlocal frame, n_udp
        _, frames, _ = frames_for(kind)
        udp_frames = 5 * (1 if kind in ("ipv4", "ipv6") else 2)
        for k, f in enumerate(frames):
            frame += 1
            t = T0 + frame * 7_777_777 + k
            offsets[frame] = tsoffset or 0
            out.append(block_writer(endian, iface, units_of(t - (tsoffset or 0) * 10**9, tsresol), f, len(f)))
        n_udp += udp_frames

    # Section 1, little-endian: Ethernet (µs), SLL2 (ns, offset), raw IP (2^-10 s, offset)
    out += [shb("<"), unknown_blocks("<"), idb("<", 1), idb("<", 276, 9, 100), idb("<", 101, 0x8A, -3)]
    packets("<", 0, "ethernet", None, None)
    out.append(unknown_blocks("<"))
    packets("<", 1, "sll2", 9, 100)
    packets("<", 2, "raw101", 0x8A, -3)
    packets("<", 1, "sll2", 9, 100, block_writer=opb)
    for f in frames_for("qinq")[1][:3]:  # Simple Packet Blocks belong to interface 0 (Ethernet)
        frame += 1
        spb_frames.add(frame)
        out.append(spb("<", f))
    n_udp += 3
    # Section 2, big-endian: interface numbers start again
    first = b"".join(out)
    out = [shb(">"), idb(">", 0, 9, 1), idb(">", 108, 3), unknown_blocks(">")]
    packets(">", 1, "loop", 3, None)
    packets(">", 0, "null-be-10", 9, 1)
    links = ["Ethernet (1)", "Linux cooked v2 (SLL2) (276)", "Raw IP (101)",
             "NULL (BSD loopback) (0)", "OpenBSD loopback (108)"]
    return [first, b"".join(out)], n_udp, spb_frames, offsets, links


def section_files(tmp_path: Path, sections: list[bytes]) -> list[Path]:
    paths = [tmp_path / f"section{k}.pcapng" for k in range(len(sections))]
    for p, data in zip(paths, sections, strict=True):
        p.write_bytes(data)
    return paths


def test_pcapng_sections_interfaces_and_block_types_match_scapy(tmp_path):
    sections, n_udp, spb_frames, offsets, links = two_section_pcapng()
    path = tmp_path / "c.pcapng"
    path.write_bytes(b"".join(sections))
    cap = check_against_scapy(path, n_udp, section_files(tmp_path, sections), spb_frames=spb_frames,
                              offset_s=offsets)
    assert cap.info.format == "pcapng"
    assert cap.info.byte_order == "little"
    assert cap.info.link_types == links
    assert cap.info.packets == len(offsets) + len(spb_frames)
    # Frame 31 is the raw-IP interface's first: 2^-10 s units, if_tsoffset -3 s
    units = (T0 + 31 * 7_777_777 + 3 * 10**9) * 1024 // 10**9
    first_raw = cap.datagrams.time_ns[cap.datagrams.frame == 31]
    assert first_raw.tolist() == [units * 10**9 // 1024 - 3 * 10**9]


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_gzip_compressed_captures_read_like_plain_ones(tmp_path, container):
    if container == "pcap":
        _, frames, _ = frames_for("ethernet")
        data = pcap_file([(t, f, len(f)) for t, f in zip(times(len(frames)), frames, strict=True)], 1, ">", True)
        n_udp, kw = 10, {}
    else:
        sections, n_udp, spb_frames, offsets, _ = two_section_pcapng()
        data = b"".join(sections)
        kw = {"spb_frames": spb_frames, "offset_s": offsets,
              "scapy_paths": section_files(tmp_path, sections)}
    plain, packed = tmp_path / f"c.{container}", tmp_path / f"c.{container}.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    cap = check_against_scapy(packed, n_udp, **kw)
    assert cap.info.compressed
    assert rows(cap.datagrams) == rows(read_capture(plain).datagrams)


# -- IP fragments -----------------------------------------------------------------


def test_ipv4_fragments_become_one_datagram_at_the_completing_frame(tmp_path):
    payload = bytes(range(256)) * 12
    whole = IP(src="10.1.1.1", dst="10.2.2.2", id=777) / UDP(sport=5060, dport=5062) / Raw(payload)
    frags = fragment(whole, fragsize=1200)
    assert len(frags) == 3
    plain = IP(src="10.9.9.9", dst="10.2.2.2") / UDP(sport=1000, dport=2000) / Raw(b"rtp")
    # frames: 1 plain, 2 first fragment (carries the UDP header), 3 plain, 4 last, 5 middle
    packets = [plain, frags[0], plain, frags[2], frags[1]]
    stamps = times(len(packets))
    path = tmp_path / "frag.pcap"
    path.write_bytes(pcap_file([(t, bytes(Ether(**ETH) / p), len(Ether(**ETH) / p))
                                for t, p in zip(stamps, packets, strict=True)], 1))
    cap = read_capture(path)
    d = cap.datagrams
    assert d.frame.tolist() == [1, 3, 5]
    assert d.time_ns[2] == stamps[4] // 1000 * 1000
    assert (int(d.sport[2]), int(d.dport[2])) == (5060, 5062)
    assert (address_to_str(d.src[2]), address_to_str(d.dst[2])) == ("10.1.1.1", "10.2.2.2")
    assert d.payload(2) == payload
    assert int(d.udp_payload_len[2]) == int(d.payload_caplen[2]) == len(payload)
    assert cap.info.other["ipv4-fragment"] == 3
    assert cap.info.reassembled == 1
    assert cap.info.udp_datagrams == 3


def test_ipv6_fragments_become_one_datagram(tmp_path):
    payload = bytes((7 * i) & 0xFF for i in range(3000))
    whole = (IPv6(src="2001:db8::a", dst="2001:db8::b") / IPv6ExtHdrFragment(id=0xABCDEF)
             / UDP(sport=3478, dport=50000) / Raw(payload))
    frags = fragment6(whole, 1280)
    assert len(frags) == 3
    path = tmp_path / "frag6.pcap"
    path.write_bytes(pcap_file([(t, bytes(p), len(p)) for t, p in zip(times(3), frags, strict=True)], 229))
    cap = read_capture(path)
    d = cap.datagrams
    assert d.frame.tolist() == [3]
    assert d.ip_version.tolist() == [6]
    assert (int(d.sport[0]), int(d.dport[0])) == (3478, 50000)
    assert address_to_str(d.src[0]) == "2001:db8::a"
    assert d.payload(0) == payload
    assert cap.info.other["ipv6-fragment"] == 3
    assert cap.info.reassembled == 1


def test_fragments_of_a_datagram_never_complete_without_all_pieces(tmp_path):
    whole = IP(src="10.1.1.1", dst="10.2.2.2", id=9) / UDP(sport=5060, dport=5062) / Raw(b"s" * 3000)
    frags = fragment(whole, fragsize=1200)
    path = tmp_path / "lost.pcap"
    path.write_bytes(pcap_file([(t, bytes(p), len(p)) for t, p in zip(times(2), [frags[0], frags[2]], strict=True)],
                               228))
    cap = read_capture(path)
    assert len(cap.datagrams) == 0
    assert cap.info.other["ipv4-fragment"] == 2
    assert cap.info.reassembled == 0


# -- snaplen ----------------------------------------------------------------------


def test_snaplen_cut_payloads_keep_their_wire_length(tmp_path):
    _, frames, _ = frames_for("ethernet")
    snaplen = 96
    path = tmp_path / "snap.pcap"
    path.write_bytes(pcap_file([(t, f[:snaplen], len(f)) for t, f in zip(times(len(frames)), frames, strict=True)],
                               1, snaplen=snaplen))
    # The IPv6 datagrams with extension headers (56 bytes of them) lose their UDP header
    cap = check_against_scapy(path, 8)
    assert cap.info.other["truncated-header"] == 2
    d = cap.datagrams
    v4_160 = (d.ip_version == 4) & (d.udp_payload_len == 160)
    assert int(d.payload_caplen[v4_160][0]) == snaplen - 14 - 32 - 8  # 12 bytes of IPv4 options
    assert int(d.frame_caplen[v4_160][0]) == snaplen
    assert int(d.frame_len[v4_160][0]) == 14 + 32 + 8 + 160
    cut = d.payload_caplen < d.udp_payload_len
    assert int(cut.sum()) == cap.info.snaplen_truncated == 3
    assert d.udp_payload_len[cut].tolist() == [160, 1200, 1200]
    assert d.payload_caplen[cut].tolist() == [96 - 14 - 32 - 8, 96 - 14 - 20 - 8, 96 - 14 - 40 - 8]


def test_frames_cut_inside_the_udp_header_are_not_datagrams(tmp_path):
    _, frames, _ = frames_for("ethernet")
    path = tmp_path / "snap.pcap"
    path.write_bytes(pcap_file([(t, f[:38], len(f)) for t, f in zip(times(len(frames)), frames, strict=True)],
                               1, snaplen=38))
    cap = read_capture(path)
    assert len(cap.datagrams) == 0
    # every IPv4 UDP frame lacks its UDP header; every IPv6 frame its IPv6 header
    assert cap.info.other["truncated-header"] == 5 + 7


# -- chunked reading --------------------------------------------------------------


def assert_same_table(a: Datagrams, b: Datagrams) -> None:
    for name in ("frame", "time_ns", "ip_version", "src", "dst", "sport", "dport", "udp_payload_len",
                 "payload_caplen", "frame_caplen", "frame_len"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert [a.payload(i) for i in range(len(a))] == [b.payload(i) for i in range(len(b))]


def many_frames() -> list[tuple[int, bytes, int]]:
    """~1.1 MB of frames of varied size, fragments spread far apart, one 70 kB non-IP frame."""
    _, v4, _ = frames_for("qinq")
    _, v6, _ = frames_for("pppoe")
    frags = fragment(IP(src="10.1.1.1", dst="10.2.2.2", id=5) / UDP(sport=5060, dport=5060)
                     / Raw(b"INVITE" * 600), fragsize=1400)
    assert len(frags) == 3
    out = []
    for k in range(120):
        out += v4 + v6
        if k in (3, 60, 119):
            out.append(bytes(Ether(**ETH) / frags[(3, 60, 119).index(k)]))
        if k == 10:
            out.append(bytes(Ether(**ETH, type=0x88B5)) + bytes(70_000))
    return [(T0 + 1000 * k, f, len(f)) for k, f in enumerate(out)]


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_tiny_chunks_give_the_same_table_as_the_default(tmp_path, container):
    frames = many_frames()
    path = tmp_path / f"many.{container}"
    if container == "pcap":
        path.write_bytes(pcap_file(frames, 1, nano=True, snaplen=262144))
    else:
        path.write_bytes(shb("<") + idb("<", 1, 9)
                         + b"".join(epb("<", 0, t, f, n) for t, f, n in frames))
    assert path.stat().st_size > 10 * 65536
    reader = CaptureReader(path, chunk_bytes=1)
    assert reader.chunk_bytes == 65536
    chunks = list(reader)
    assert len([c for c in chunks if len(c)]) > 10
    small = Datagrams.concat(chunks)
    default = read_capture(path)
    assert_same_table(small, default.datagrams)
    assert reader.info.reassembled == default.info.reassembled == 1
    assert reader.info.packets == default.info.packets == len(frames)
    assert len(small) == 120 * 20 + 1
    assert np.all(np.diff(small.frame) > 0)


@pytest.mark.parametrize("tsresol", [0, 3, 6, 9, 12, 19, 0x80, 0x8A, 0x9D, 0xA0, 0xA8, 0xBF])
def test_pcapng_resolutions_convert_to_the_floor_nanosecond(tmp_path, tsresol):
    per_s = (2 if tsresol & 0x80 else 10) ** (tsresol & 0x7F)
    _, frames, _ = frames_for("ipv4")
    units = [min(units_of(t, tsresol) + k * 12345, 2**64 - 1) for k, t in enumerate(times(5))]
    data = shb("<") + idb("<", 228, tsresol) + b"".join(
        epb("<", 0, u, f, len(f)) for u, f in zip(units, frames, strict=False))
    path = tmp_path / "r.pcapng"
    path.write_bytes(data)
    got = read_capture(path).datagrams.time_ns.tolist()
    exact = [int(Fraction(u * 10**9, per_s)) for u in units]
    tolerance = 1 if tsresol & 0x80 and (tsresol & 0x7F) > 34 else 0
    assert all(0 <= e - g <= tolerance for g, e in zip(got, exact, strict=True)), (got, exact)


# -- odd headers, with tshark as the reference ---------------------------------------


def _patched(packet, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(bytes(packet))
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def odd_frames() -> list[bytes]:
    v4 = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / Raw(b"x" * 20)
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1000, dport=2000) / Raw(b"y" * 20)
    eth4, eth6 = bytes(Ether(type=0x0800)), bytes(Ether(type=0x86DD))
    return [
        eth4 + bytes(v4),
        eth4 + _patched(v4, 2, "!H", 0),  # total length 0: segmentation offload
        eth4 + _patched(v4, 2, "!H", 1000),  # total length beyond the frame
        eth4 + _patched(v4, 0, "!B", 0x44),  # IHL 4: not a valid IPv4 header
        eth4 + _patched(v4, 0, "!B", 0x4F),  # IHL 15: options run past the frame
        eth6 + _patched(v6, 4, "!H", 900),  # payload length beyond the frame
        bytes(Ether() / IPv6(nh=51) / Raw(bytes([17, 1, 0, 0]) + bytes(8)) / UDP(sport=5, dport=6) / b"ah"),
        bytes(Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP() / UDP(sport=7, dport=8) / b"3tags"),
        bytes(Ether() / IP(proto=136) / UDP() / b"udp-lite is not udp"),
        bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3) / v4),  # error quoting UDP
        bytes(Ether() / IPv6() / ICMPv6EchoRequest() / Raw(bytes(v6))),
    ]


def test_odd_ip_headers_are_read_as_tshark_reads_them(tmp_path, tshark):
    frames = odd_frames()
    path = tmp_path / "odd.pcap"
    path.write_bytes(pcap_file([(t, f, len(f)) for t, f in zip(times(len(frames)), frames, strict=True)], 1))
    run = subprocess.run([tshark, "-r", str(path), "-Y", "udp && !icmp && !icmpv6", "-T", "fields",
                          "-e", "frame.number", "-e", "udp.length"], capture_output=True, text=True, check=True)
    ref = [tuple(map(int, line.split("\t"))) for line in run.stdout.splitlines()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = read_capture(path).datagrams
    assert list(zip(d.frame.tolist(), (d.udp_payload_len + 8).tolist(), strict=True)) == ref
    assert [f for f, _ in ref] == [1, 2, 3, 6, 7, 8]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_captures_stream_through_a_pipe(tmp_path, compressed):
    _, frames, _ = frames_for("sll2")
    data = pcap_file([(t, f, len(f)) for t, f in zip(times(len(frames)), frames, strict=True)], 276)
    plain = tmp_path / "c.pcap"
    plain.write_bytes(data)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(gzip.compress(data) if compressed else data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        cap = read_capture(fifo)
    finally:
        writer.join(timeout=10)
    assert cap.info.compressed == compressed
    assert rows(cap.datagrams) == rows(read_capture(plain).datagrams)
    assert len(cap.datagrams) == 10


def test_simple_packet_blocks_cut_by_snaplen_hold_no_padding(tmp_path):
    _, frames, _ = frames_for("ethernet")
    snaplen = 62  # the block pads 62 bytes to 64: the last two are not packet data
    data = shb("<") + idb("<", 1, snaplen=snaplen) + b"".join(spb("<", f[:snaplen], len(f)) for f in frames)
    path = tmp_path / "spb.pcapng"
    path.write_bytes(data)
    cap = check_against_scapy(path, 8, spb_frames=set(range(1, len(frames) + 1)))  # 2 lose the UDP header
    d = cap.datagrams
    assert d.frame_caplen.max() == snaplen
    assert int(d.payload_caplen[d.udp_payload_len == 1200][0]) == snaplen - 14 - 20 - 8
