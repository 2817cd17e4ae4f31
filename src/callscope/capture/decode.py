"""Vectorised decoding of link, IP and UDP headers for a batch of frames.

Every header field of every frame is read with numpy gathers from one byte
buffer: there is no Python object per packet. Reads past a frame's captured
end are guarded by a per-row validity mask, so a truncated or hostile frame
can make a row invalid but never makes the reader read another frame's bytes
as its own header.

Header layouts (offsets in bytes) follow:
Ethernet II / IEEE 802.1Q / 802.1ad; RFC 2516 §4 (PPPoE session, PPP
protocol 0x0021 IPv4, 0x0057 IPv6); Linux cooked capture v1/v2 (tcpdump
LINKTYPE_LINUX_SLL / SLL2); RFC 791 §3.1 (IPv4); RFC 8200 §3–4 (IPv6 and
extension headers); RFC 768 (UDP); RFC 9293 §3.1 (TCP data offset).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from callscope.capture import linktypes as lt
from callscope.capture.datagrams import Datagrams

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_PPPOE_SESSION = 0x8864
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ outer), legacy QinQ
MAX_VLAN_TAGS = 3
PPP_IPV4 = 0x0021  # RFC 1332
PPP_IPV6 = 0x0057  # RFC 5072

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPV4_MIN_HEADER = 20  # RFC 791 §3.1: IHL 5
IPV4_PLAIN = 0x45  # RFC 791 §3.1: version 4, IHL 5 (no options)
IPV4_MF = 0x2000  # RFC 791 §3.1: More Fragments flag
IPV4_OFFSET = 0x1FFF  # RFC 791 §3.1: Fragment Offset
IPV4_MAX_LENGTH = 0xFFFF  # RFC 791 §3.1: Total Length is 16 bits
INT32_MAX = np.iinfo(np.int32).max
IPV6_HEADER = 40  # RFC 8200 §3
UDP_HEADER = 8  # RFC 768
ETHER_HEADER = 14  # destination, source, EtherType (IEEE 802.3 §3.1.1)
IPV6_EXT_GENERIC = (0, 43, 60)  # hop-by-hop, routing, destination options (RFC 8200 §4.3-4.6)
IPV6_EXT_FRAGMENT = 44  # RFC 8200 §4.5
IPV6_EXT_AH = 51  # RFC 4302 §2.2: length in 4-octet units minus 2
MAX_IPV6_EXT = 8

#: The headers of nearly every frame of a voice capture as one record:
#: Ethernet II (IEEE 802.3 §3.1.1), IPv4 without options (RFC 791 §3.1) and
#: UDP (RFC 768), multi-byte fields in network byte order.
ETHER_IPV4_UDP = np.dtype([
    ("eth_dst", "V6"), ("eth_src", "V6"), ("ethertype", ">u2"),
    ("ip_vihl", "u1"), ("ip_tos", "u1"), ("ip_len", ">u2"), ("ip_id", ">u2"), ("ip_frag", ">u2"),
    ("ip_ttl", "u1"), ("ip_proto", "u1"), ("ip_checksum", ">u2"),
    ("ip_src", "u1", (4,)), ("ip_dst", "u1", (4,)),
    ("udp_sport", ">u2"), ("udp_dport", ">u2"), ("udp_len", ">u2"), ("udp_checksum", ">u2"),
])

#: address families seen in the 4-byte NULL/LOOP header (BSD AF_INET, the
#: various AF_INET6 values of BSDs, Linux AF_INET6)
NULL_AF_INET = (2,)
NULL_AF_INET6 = (10, 24, 28, 30)

#: first bytes of a TCP payload that can start a SIP message (RFC 3261 §7)
SIP_STARTS = (
    b"SIP", b"INV", b"ACK", b"BYE", b"CAN", b"REG", b"OPT", b"INF", b"UPD",
    b"PRA", b"SUB", b"NOT", b"REF", b"MES", b"PUB",
)

#: kinds of frames that are not UDP datagrams, as counted in CaptureInfo
OTHER_KINDS = (
    "tcp", "icmp", "icmpv6", "other-ip", "arp", "non-ip",
    "ipv4-fragment", "ipv6-fragment", "truncated-header",
)


@dataclass(frozen=True)
class Decoded:
    """Result of decoding one batch: the UDP table and what else was seen."""

    datagrams: Datagrams
    counts: dict[str, int]
    tcp_sip: list[tuple]  # (frame, time_ns, src, sport, dst, dport, payload)
    fragments: list[tuple]  # raw IP fragments of UDP, reassembled by the reader


def byte_fields(buf: np.ndarray, idx: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes of ``buf`` from each offset in ``idx``, shape ``idx.shape + (width,)``.

    One whole-field copy per offset through a view of ``buf`` with an element
    at every byte offset (fancy indexing of a void view copies whole fields;
    ``np.take`` of bytes would go byte by byte). A field that would run past
    the buffer's end is read from ``len(buf) - width`` instead: callers that
    care mask such rows.
    """
    if buf.size < width or not buf.flags.c_contiguous:
        cols = idx[..., None] + np.arange(width)
        if buf.size == 0:
            return np.zeros(cols.shape, np.uint8)
        return np.take(buf, cols, mode="clip")
    at = np.ndarray((buf.size - width + 1,), dtype=f"V{width}", buffer=buf, strides=(1,))
    return at[np.clip(idx, 0, buf.size - width)].view(np.uint8).reshape(*idx.shape, width)


class _Gather:
    """Bounds-clipped big-endian reads from one buffer (validity checked by callers).

    Multi-byte fields are read in one gather through an unaligned view of the
    buffer (one element per byte offset). A read running past the buffer's end
    is clipped to its last whole field: only rows whose header is cut short,
    and so invalid, read there.
    """

    def __init__(self, buf: np.ndarray):
        self.b = buf

    def u8(self, idx: np.ndarray) -> np.ndarray:
        if self.b.size == 0:
            return np.zeros(idx.shape, np.int64)
        # take(mode="clip") bounds the index in the same pass as the gather
        return np.take(self.b, idx, mode="clip").astype(np.int64)

    def _fields(self, idx: np.ndarray, width: int) -> np.ndarray:
        return byte_fields(self.b, idx, width)

    def u16(self, idx: np.ndarray) -> np.ndarray:
        return self._fields(idx, 2).view(">u2")[..., 0].astype(np.int64)

    def u32(self, idx: np.ndarray) -> np.ndarray:
        return self._fields(idx, 4).view(">u4")[..., 0].astype(np.int64)

    def u32le(self, idx: np.ndarray) -> np.ndarray:
        return self._fields(idx, 4).view("<u4")[..., 0].astype(np.int64)

    def block(self, idx: np.ndarray, width: int) -> np.ndarray:
        return self._fields(idx, width)


#: link types with an EtherType field: (type, offset of the EtherType, header length)
ETHERTYPE_LINKS = ((lt.ETHERNET, 12, 14), (lt.LINUX_SLL, 14, 16), (lt.LINUX_SLL2, 0, 20))


def _link_layer(g: _Gather, start: np.ndarray, end: np.ndarray, linktype: np.ndarray):
    """Network-layer offset and EtherType-like protocol of every frame.

    Only the branches of link types present in the batch read anything.
    """
    n = start.size
    l3 = start.copy()
    et = np.zeros(n, np.int64)
    header_ok = np.ones(n, bool)
    framed = np.zeros(n, bool)  # links with an EtherType, which VLAN tags may follow

    for kind, et_at, length in ETHERTYPE_LINKS:
        m = linktype == kind
        if m.all():
            et, l3, header_ok, framed = g.u16(start + et_at), start + length, end >= start + length, m
        elif m.any():
            et = np.where(m, g.u16(start + et_at), et)
            l3 = np.where(m, start + length, l3)
            header_ok &= np.where(m, end >= start + length, True)
            framed |= m

    # VLAN tags may follow Ethernet or a cooked header (802.1Q, QinQ).
    if framed.any():
        for _ in range(MAX_VLAN_TAGS):
            tagged = np.isin(et, VLAN_TPIDS) & framed
            if not tagged.any():
                break
            header_ok &= np.where(tagged, end >= l3 + 4, True)
            et = np.where(tagged, g.u16(l3 + 2), et)
            l3 = np.where(tagged, l3 + 4, l3)

        pppoe = et == ETH_PPPOE_SESSION
        if pppoe.any():
            ppp = g.u16(l3 + 6)
            header_ok &= np.where(pppoe, end >= l3 + 8, True)
            et = np.where(pppoe, np.select([ppp == PPP_IPV4, ppp == PPP_IPV6], [ETH_IPV4, ETH_IPV6], 0), et)
            l3 = np.where(pppoe, l3 + 8, l3)

    # Link types without an EtherType: the IP version nibble decides.
    raw = np.isin(linktype, (lt.RAW, lt.RAW_BSD, lt.RAW_OPENBSD))
    if raw.any():
        nibble = g.u8(l3) >> 4
        et = np.where(raw, np.select([nibble == 4, nibble == 6], [ETH_IPV4, ETH_IPV6], 0), et)
    for kind, family in ((lt.IPV4, ETH_IPV4), (lt.IPV6, ETH_IPV6)):
        m = linktype == kind
        if m.any():
            et = np.where(m, family, et)

    null = (linktype == lt.NULL) | (linktype == lt.LOOP)
    if null.any():
        # The family is in host byte order for NULL (either order) and network
        # order for LOOP: accept a known value read either way.
        be = g.u32(start)
        le = g.u32le(start)
        fam4 = np.isin(be, NULL_AF_INET) | np.isin(le, NULL_AF_INET)
        fam6 = np.isin(be, NULL_AF_INET6) | np.isin(le, NULL_AF_INET6)
        l3 = np.where(null, start + 4, l3)
        nib = g.u8(start + 4) >> 4
        et = np.where(null, np.select([fam4 & (nib == 4), fam6 & (nib == 6)], [ETH_IPV4, ETH_IPV6], 0), et)
        header_ok &= np.where(null, end >= start + 4, True)

    return l3, et, header_ok


def decode_frames(
    buf: np.ndarray,
    start: np.ndarray,
    caplen: np.ndarray,
    origlen: np.ndarray,
    linktype: np.ndarray,
    frame: np.ndarray,
    time_ns: np.ndarray,
) -> Decoded:
    """Decode a batch of frames held in ``buf`` into UDP datagrams.

    Frames that are Ethernet / IPv4 without options, not a fragment / UDP
    with the whole 42 header bytes captured (nearly every frame of a voice
    capture) are read from one record each (:data:`ETHER_IPV4_UDP`); every
    other frame goes through :func:`decode_general`. Both give the same row
    for such a frame.

    Parameters
    ----------
    buf : uint8 array
        Bytes holding the frames.
    start, caplen, origlen : int64 arrays
        Offset of each frame in ``buf``, captured length, original length.
    linktype, frame, time_ns : int64 arrays
        Link type, 1-based frame number and timestamp (ns) of each frame.

    Returns
    -------
    Decoded
        The UDP datagrams in frame order (their payloads still in ``buf``: no
        copy) and counts of every other kind of frame.
    """
    start = start.astype(np.int64)
    plain, hdr = _plain_udp_headers(buf, start, caplen, linktype)
    if plain.size == 0:
        return _decode_general(buf, start, caplen, origlen, linktype, frame, time_ns)[0]
    table = _plain_udp_table(buf, hdr, plain, start, caplen, origlen, frame, time_ns)
    if plain.size == start.size:
        return Decoded(datagrams=table, counts=dict.fromkeys(OTHER_KINDS, 0), tcp_sip=[], fragments=[])
    rest = np.ones(start.size, bool)
    rest[plain] = False
    rest = np.flatnonzero(rest)
    dec, rows = _decode_general(
        buf, start[rest], caplen[rest], origlen[rest], linktype[rest], frame[rest], time_ns[rest]
    )
    datagrams = _merge(table, plain, dec.datagrams, rest[rows], buf)
    return Decoded(datagrams=datagrams, counts=dec.counts, tcp_sip=dec.tcp_sip, fragments=dec.fragments)


def decode_general(
    buf: np.ndarray,
    start: np.ndarray,
    caplen: np.ndarray,
    origlen: np.ndarray,
    linktype: np.ndarray,
    frame: np.ndarray,
    time_ns: np.ndarray,
) -> Decoded:
    """:func:`decode_frames` with every frame through the general decoder.

    Every link type, VLAN tags, PPPoE, IPv4 options, IPv6 extension headers,
    fragments, TCP and truncated headers; the reference the fast path of
    :func:`decode_frames` is tested against. Same parameters and result.
    """
    return _decode_general(buf, start, caplen, origlen, linktype, frame, time_ns)[0]


def _decode_general(buf, start, caplen, origlen, linktype, frame, time_ns) -> tuple[Decoded, np.ndarray]:
    """The decoded batch and, for each datagram, the index of its frame in the batch."""
    g = _Gather(buf)
    start = start.astype(np.int64)
    end = start + caplen.astype(np.int64)
    n = start.size
    counts = dict.fromkeys(OTHER_KINDS, 0)

    l3, et, link_ok = _link_layer(g, start, end, linktype)
    counts["truncated-header"] += int(np.count_nonzero(~link_ok))
    counts["arp"] += int(np.count_nonzero(link_ok & (et == ETH_ARP)))

    b0 = g.u8(l3)
    v4 = link_ok & (et == ETH_IPV4) & ((b0 >> 4) == 4)
    v6 = link_ok & (et == ETH_IPV6) & ((b0 >> 4) == 6)
    counts["non-ip"] += int(np.count_nonzero(link_ok & ~v4 & ~v6 & (et != ETH_ARP)))

    # IPv4 (RFC 791 §3.1)
    ihl = (b0 & 0x0F) * 4
    v4_hdr_ok = v4 & (ihl >= IPV4_MIN_HEADER) & (end >= l3 + np.maximum(ihl, IPV4_MIN_HEADER))
    proto = np.full(n, -1, np.int64)
    l4 = l3 + IPV6_HEADER
    ip_end = np.zeros(n, np.int64)
    v4_frag = np.zeros(n, bool)
    if v4.any():
        frag_field = g.u16(l3 + 6)
        v4_frag = v4_hdr_ok & ((frag_field & (IPV4_MF | IPV4_OFFSET)) != 0)
        proto = np.where(v4, g.u8(l3 + 9), proto)
        l4 = np.where(v4, l3 + ihl, l4)
        ip_end = np.where(v4, l3 + _ipv4_length(g.u16(l3 + 2), ihl, start + origlen.astype(np.int64) - l3), 0)

    # IPv6 (RFC 8200 §3) and its extension headers (§4)
    v6_hdr_ok = v6 & (end >= l3 + IPV6_HEADER)
    v6_frag = np.zeros(n, bool)
    if v6.any():
        nh = np.where(v6, g.u8(l3 + 6), -1)
        ip_end = np.where(v6, l3 + IPV6_HEADER + g.u16(l3 + 4), ip_end)
        for _ in range(MAX_IPV6_EXT):
            # After the fragment header of a fragment, what follows is data.
            live = v6_hdr_ok & ~v6_frag
            generic = live & np.isin(nh, IPV6_EXT_GENERIC)
            fragh = live & (nh == IPV6_EXT_FRAGMENT)
            ah = live & (nh == IPV6_EXT_AH)
            walking = generic | fragh | ah
            if not walking.any():
                break
            ext_len = np.select(
                [generic, fragh, ah], [(g.u8(l4 + 1) + 1) * 8, 8, (g.u8(l4 + 1) + 2) * 4], 0
            )
            off_m = g.u16(l4 + 2)
            v6_frag |= fragh & (((off_m >> 3) != 0) | ((off_m & 1) != 0))
            v6_hdr_ok &= np.where(walking, end >= l4 + ext_len, True)
            nh = np.where(walking, g.u8(l4), nh)
            l4 = np.where(walking, l4 + ext_len, l4)
        proto = np.where(v6, nh, proto)

    hdr_ok = v4_hdr_ok | v6_hdr_ok
    counts["truncated-header"] += int(np.count_nonzero((v4 | v6) & ~hdr_ok))
    counts["ipv4-fragment"] += int(np.count_nonzero(v4_frag))
    counts["ipv6-fragment"] += int(np.count_nonzero(v6_frag & hdr_ok))
    frag = v4_frag | (v6_frag & hdr_ok)
    whole = hdr_ok & ~frag

    counts["tcp"] += int(np.count_nonzero(whole & (proto == IPPROTO_TCP)))
    counts["icmp"] += int(np.count_nonzero(whole & (proto == IPPROTO_ICMP)))
    counts["icmpv6"] += int(np.count_nonzero(whole & (proto == IPPROTO_ICMPV6)))
    counts["other-ip"] += int(
        np.count_nonzero(whole & ~np.isin(proto, (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6)))
    )

    udp_any = whole & (proto == IPPROTO_UDP)
    udp = udp_any & (end >= l4 + UDP_HEADER)
    counts["truncated-header"] += int(np.count_nonzero(udp_any & ~udp))

    fragments = _collect_fragments(g, frag & (proto == IPPROTO_UDP), l3, end, frame, time_ns)

    tcp_sip = _tcp_sip(g, whole & (proto == IPPROTO_TCP), v4, l3, l4, end, frame, time_ns)

    idx = np.flatnonzero(udp)
    datagrams = _udp_table(g, idx, v4, l3, l4, end, ip_end, caplen, origlen, frame, time_ns)
    return Decoded(datagrams=datagrams, counts=counts, tcp_sip=tcp_sip, fragments=fragments), idx


def _ipv4_length(total_len: np.ndarray, ihl: np.ndarray | int, rest_on_wire: np.ndarray) -> np.ndarray:
    """Length of IPv4 packets (RFC 791 §3.1 Total Length), at least their header.

    Total length 0: segmentation offload fills it in after capture; like
    Wireshark, take the IP packet to run to the end of the frame on the wire
    (``rest_on_wire`` bytes from the IP header on), but no further than the
    largest length the field can hold: a record's original length is
    whatever the file says (up to 2^32 - 1).
    """
    return np.where(total_len == 0, np.minimum(rest_on_wire, IPV4_MAX_LENGTH), np.maximum(total_len, ihl))


def _frame_len(origlen: np.ndarray) -> np.ndarray:
    """Original frame lengths as int32, a record's absurd ones (>= 2^31) held at the int32 maximum."""
    return np.minimum(origlen, INT32_MAX).astype(np.int32)


def _udp_payload_len(udp_len: np.ndarray, ip_payload: np.ndarray) -> np.ndarray:
    """UDP payload length from the UDP Length field (RFC 768) and the IP payload length.

    The UDP length is authoritative unless it is impossible (< 8, or longer
    than the IP payload, e.g. an IPv6 jumbogram's 0): then trust IP.
    """
    return np.where(
        (udp_len >= UDP_HEADER) & (udp_len <= ip_payload), udp_len - UDP_HEADER,
        np.maximum(ip_payload - UDP_HEADER, 0),
    )


def _v4_mapped(octets: np.ndarray) -> np.ndarray:
    """16-byte IPv4-mapped rows (RFC 4291 §2.5.5.2) of (n, 4) IPv4 addresses."""
    out = np.zeros((octets.shape[0], 16), np.uint8)
    out[:, 10:12] = 0xFF
    out[:, 12:] = octets
    return out


def _plain_udp_headers(buf: np.ndarray, start: np.ndarray, caplen: np.ndarray, linktype: np.ndarray):
    """Frames that are Ethernet / IPv4 (IHL 5, not a fragment) / UDP, and their headers.

    Returns the indices of those frames and their :data:`ETHER_IPV4_UDP`
    records, gathered whole (one copy of 42 bytes per frame). A frame whose
    42 bytes are not all captured and inside ``buf`` is left to the general
    decoder, as is every other kind of frame.
    """
    width = ETHER_IPV4_UDP.itemsize
    none = np.zeros(0, np.int64), None
    if buf.ndim != 1 or buf.dtype != np.uint8 or buf.size < width or not buf.flags.c_contiguous:
        return none
    cand = (linktype == lt.ETHERNET) & (caplen >= width) & (start >= 0) & (start <= buf.size - width)
    every = bool(cand.all())
    idx = None if every else np.flatnonzero(cand)
    if idx is not None and idx.size == 0:
        return none
    at = np.ndarray((buf.size - width + 1,), dtype=f"V{width}", buffer=buf, strides=(1,))
    hdr = at[start if idx is None else start[idx]].view(ETHER_IPV4_UDP)
    ok = (
        (hdr["ethertype"] == ETH_IPV4)
        & (hdr["ip_vihl"] == IPV4_PLAIN)
        & ((hdr["ip_frag"] & (IPV4_MF | IPV4_OFFSET)) == 0)
        & (hdr["ip_proto"] == IPPROTO_UDP)
    )
    if ok.all():
        return (np.arange(start.size) if idx is None else idx), hdr
    rows = np.flatnonzero(ok)
    return (rows if idx is None else idx[rows]), hdr[rows]


def _plain_udp_table(buf, hdr, rows, start, caplen, origlen, frame, time_ns) -> Datagrams:
    """The datagrams of Ethernet / IPv4 / UDP frames from their header records.

    The same arithmetic as :func:`_udp_table` with the offsets fixed: IP at
    14, UDP at 34, payload at 42.
    """
    head = ETHER_IPV4_UDP.itemsize
    ip_len = _ipv4_length(
        hdr["ip_len"].astype(np.int64), IPV4_MIN_HEADER, origlen[rows].astype(np.int64) - ETHER_HEADER
    )
    plen = _udp_payload_len(hdr["udp_len"].astype(np.int64), ip_len - IPV4_MIN_HEADER)
    pstart = start[rows] + head
    return Datagrams(
        frame=frame[rows].astype(np.int64),
        time_ns=time_ns[rows].astype(np.int64),
        ip_version=np.full(rows.size, 4, np.uint8),
        src=_v4_mapped(hdr["ip_src"]),
        dst=_v4_mapped(hdr["ip_dst"]),
        sport=hdr["udp_sport"].astype(np.uint16),
        dport=hdr["udp_dport"].astype(np.uint16),
        udp_payload_len=plen.astype(np.int32),
        payload_caplen=np.clip(caplen[rows].astype(np.int64) - head, 0, plen).astype(np.int32),
        frame_caplen=caplen[rows].astype(np.int32),
        frame_len=_frame_len(origlen[rows]),
        payload_start=pstart,
        data=buf,  # shared with the chunk, as in _udp_table
        ttl=hdr["ip_ttl"].astype(np.uint8),
    )


def _merge(a: Datagrams, a_rows: np.ndarray, b: Datagrams, b_rows: np.ndarray, buf: np.ndarray) -> Datagrams:
    """Rows of two tables over one buffer interleaved by the batch index of their frames."""
    if len(b) == 0:
        return a
    order = np.empty(len(a) + len(b), np.int64)
    order[np.arange(len(a)) + np.searchsorted(b_rows, a_rows)] = np.arange(len(a))
    order[np.arange(len(b)) + np.searchsorted(a_rows, b_rows)] = len(a) + np.arange(len(b))
    columns = {
        f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)])[order]
        for f in fields(Datagrams) if f.name != "data"
    }
    return Datagrams(**columns, data=buf)


def _addresses(g: _Gather, idx: np.ndarray, v4: np.ndarray, l3: np.ndarray, v4_off: int, v6_off: int):
    """16-byte address rows; IPv4 ones IPv4-mapped (gathers only the bytes each family has)."""
    is4 = v4[idx]
    if is4.all():  # the common case: plain slices instead of masked writes
        return _v4_mapped(g.block(l3[idx] + v4_off, 4))
    out = np.zeros((idx.size, 16), np.uint8)
    if is4.any():
        out[is4, 10:12] = 0xFF
        out[is4, 12:] = g.block(l3[idx[is4]] + v4_off, 4)
    out[~is4] = g.block(l3[idx[~is4]] + v6_off, 16)
    return out


def _udp_table(g, idx, v4, l3, l4, end, ip_end, caplen, origlen, frame, time_ns) -> Datagrams:
    if idx.size == 0:
        return Datagrams.empty()
    p = l4[idx]
    plen = _udp_payload_len(g.u16(p + 4), ip_end[idx] - p)  # ip_end - p: bytes the IP header says follow
    pstart = p + UDP_HEADER
    pcap = np.clip(end[idx] - pstart, 0, plen)

    return Datagrams(
        frame=frame[idx].astype(np.int64),
        time_ns=time_ns[idx].astype(np.int64),
        ip_version=np.where(v4[idx], 4, 6).astype(np.uint8),
        src=_addresses(g, idx, v4, l3, 12, 8),
        dst=_addresses(g, idx, v4, l3, 16, 24),
        sport=g.u16(p).astype(np.uint16),
        dport=g.u16(p + 2).astype(np.uint16),
        udp_payload_len=plen.astype(np.int32),
        payload_caplen=pcap.astype(np.int32),
        frame_caplen=caplen[idx].astype(np.int32),
        frame_len=_frame_len(origlen[idx]),
        payload_start=pstart,
        data=g.b,  # shared with the chunk: no copy on the hot path (see Datagrams.compact)
        # IPv4 TTL (byte 8, RFC 791 §3.1) or IPv6 hop limit (byte 7, RFC 8200 §3)
        ttl=g.u8(l3[idx] + np.where(v4[idx], 8, 7)).astype(np.uint8),
    )


def _tcp_sip(g, tcp, v4, l3, l4, end, frame, time_ns) -> list[tuple]:
    idx = np.flatnonzero(tcp & (end >= l4 + 20))
    if idx.size == 0:
        return []
    doff = (g.u8(l4[idx] + 12) >> 4) * 4
    pstart = l4[idx] + doff
    head = g.block(pstart, 3)
    starts = np.frombuffer(b"".join(SIP_STARTS), np.uint8).reshape(-1, 3)
    sip = (head[:, None, :] == starts[None, :, :]).all(axis=2).any(axis=1) & (end[idx] > pstart + 3)
    out = []
    src = _addresses(g, idx, v4, l3, 12, 8)
    dst = _addresses(g, idx, v4, l3, 16, 24)
    for k in np.flatnonzero(sip):  # rare: signalling only
        i = idx[k]
        out.append((
            int(frame[i]), int(time_ns[i]), bytes(src[k]), int(g.u16(l4[i:i + 1])[0]),
            bytes(dst[k]), int(g.u16(l4[i:i + 1] + 2)[0]),
            g.b[int(pstart[k]):int(end[i])].tobytes(),
        ))
    return out


def _collect_fragments(g, mask, l3, end, frame, time_ns) -> list[tuple]:
    """Raw IP packets that are fragments of UDP, for reassembly by the reader (rare)."""
    return [
        (int(frame[i]), int(time_ns[i]), g.b[int(l3[i]):int(end[i])].tobytes())
        for i in np.flatnonzero(mask)
    ]
