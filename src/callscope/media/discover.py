"""Media discovery: from reduced datagram columns to streams, calls, RTCP, STUN and SIP.

RTP is found two ways (docs/architecture.md, "media"):

* signalled: a flow to or from an address:port announced in SDP (``c=`` /
  ``m=``), or on a port the user names (``decode_as``), is RTP; every valid
  RTP header on it counts;
* heuristic: a flow's packets with one SSRC form a stream when their RTP
  headers are valid (RFC 3550 §5.1) and consecutive packets agree: the
  sequence number advances by a small step and the timestamp advances, not
  faster than any audio/video clock, consistently with arrival time.
  Random bytes pass the single-packet test one time in four but almost never
  repeat an SSRC, so one-packet "streams" of encrypted traffic never confirm.

The confirmation rule is :mod:`callscope.media.confirm`; the bookkeeping that
keeps peak memory low on large captures is :mod:`callscope.media.memory`.

As Wireshark does, a stream is one SSRC on one 5-tuple and holds every
valid RTP header with that SSRC on it, whatever the payload type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from callscope.capture.datagrams import Datagrams, address_to_str, str_to_address
from callscope.media import demux, rtp
from callscope.media.columns import (
    MSG_RTCP,
    MSG_SIP,
    MSG_STUN,
    TRANSPORT_NAMES,
    TRANSPORT_TURN_CHANNEL,
    TRANSPORT_TURN_DATA,
    TRANSPORT_TURN_SEND,
    TRANSPORT_ZOOM,
    MediaColumns,
    extract,
)
from callscope.media.confirm import confirmed_groups, plausible_pairs, rtp_candidates
from callscope.media.memory import group_by_path, keep_groups, release_free_memory, seconds_since
from callscope.media.opaque import find_opaque
from callscope.media.rtcp import RtcpDatagram, RtcpSummary, parse_compound
from callscope.media.rtcp import summarise as summarise_rtcp
from callscope.media.sip import SdpMedia, SipMessage, SipSummary, parse_sip
from callscope.media.sip import summarise as summarise_sip
from callscope.media.stream import MediaStream, PacketSeries
from callscope.media.stun import (
    CLASS_ERROR,
    CLASS_INDICATION,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    METHOD_ALLOCATE,
    METHOD_BINDING,
    METHOD_CHANNEL_BIND,
    ChannelBinding,
    StunExchange,
    StunMessage,
    StunSummary,
    parse_stun,
)

RFC3550_MAX_DROPOUT = 3000  # RFC 3550 Appendix A.1: larger forward jumps are not loss
#: Slots a stream's sequence numbers may span: 2^20 (5.8 hours of 20 ms
#: frames), or this many per packet received if more (87.5 % loss).
MAX_SEQ_SLOTS = 1 << 20
SEQ_SLOTS_PER_PACKET = 8
MAX_DROPOUT = 3000  # RFC 3550 §A.1: a larger sequence jump is a restart, not loss
NS = 1_000_000_000
MIN_CLOCK_PAIRS = 10  # adjacent packet pairs needed to infer a clock rate
MIN_CLOCK_SPAN_S = 1.0  # and the arrival time they must span
TURN_TRANSPORTS = (TRANSPORT_TURN_CHANNEL, TRANSPORT_TURN_SEND, TRANSPORT_TURN_DATA)


@dataclass(frozen=True)
class Call:
    """The streams of one call: both directions between the same endpoints,
    or everything signalled under one SIP Call-ID."""

    id: str
    stream_ids: tuple[str, ...]
    call_id: str | None = None
    from_uri: str | None = None
    to_uri: str | None = None
    session_name: str | None = None


@dataclass(frozen=True)
class MediaInventory:
    """Everything the media stage found in a capture."""

    streams: tuple[MediaStream, ...]
    calls: tuple[Call, ...]
    rtcp: RtcpSummary
    stun: StunSummary
    sip: SipSummary
    #: Per sending address, the lowest and highest IP TTL / hop limit it used
    #: over its media and its signalling and control datagrams; unknown absent.
    sender_ttl: dict[str, tuple[int, int]] = field(default_factory=dict)

    def stream(self, stream_id: str) -> MediaStream:
        """The stream with id ``stream_id`` (KeyError if there is none)."""
        for s in self.streams:
            if s.id == stream_id:
                return s
        raise KeyError(stream_id)


def discover(
    datagrams: Datagrams,
    *,
    capture_start_ns: int,
    tcp_signalling=(),
    decode_as: Sequence[int] = (),
) -> MediaInventory:
    """Find every voice stream, call, RTCP report, STUN exchange and SIP call.

    Parameters
    ----------
    datagrams : Datagrams
        The capture's UDP datagrams, in capture order.
    capture_start_ns : int
        Timestamp of the capture's first frame; stream times are seconds since it.
    tcp_signalling : iterable of (frame, time_ns, src, sport, dst, dport, payload)
        TCP segments that start with a SIP token (as the reader collects them).
    decode_as : sequence of int
        UDP ports whose traffic is RTP whatever the heuristic says
        (``tshark -d udp.port==P,rtp``).

    Returns
    -------
    MediaInventory
    """
    return discover_columns(
        extract(datagrams),
        capture_start_ns=capture_start_ns,
        tcp_signalling=tcp_signalling,
        decode_as=decode_as,
    )


class _Flows:
    """Text endpoints of the flow table and each flow's reverse, built on demand."""

    def __init__(self, cols: MediaColumns):
        self.keys = cols.flow_keys
        self.sport = cols.flow_sport.astype(int)
        self.dport = cols.flow_dport.astype(int)
        self._addr: dict[bytes, str] = {}
        index = {bytes(k): i for i, k in enumerate(self.keys)}
        rev = np.concatenate([self.keys[:, 16:32], self.keys[:, 0:16], self.keys[:, 34:36], self.keys[:, 32:34]], axis=1)
        self.reverse = np.array([index.get(bytes(k), -1) for k in rev], dtype=np.int64)
        # a conversation is a flow and its reverse: name it by the smaller index
        idx = np.arange(len(self.keys))
        self.conversation = np.where(self.reverse >= 0, np.minimum(idx, self.reverse), idx)

    def addr(self, raw: np.ndarray) -> str:
        b = bytes(raw)
        if b not in self._addr:
            self._addr[b] = address_to_str(raw)
        return self._addr[b]

    def endpoints(self, f: int) -> tuple[str, int, str, int]:
        k = self.keys[f]
        return self.addr(k[0:16]), int(self.sport[f]), self.addr(k[16:32]), int(self.dport[f])


def _endpoint_key(addr: str | bytes, port: int) -> bytes:
    raw = bytes(str_to_address(addr)) if isinstance(addr, str) else bytes(addr)
    return raw + int(port).to_bytes(2, "big")


def _sip_messages(cols: MediaColumns, tcp_signalling) -> list[SipMessage]:
    out = []
    for j in np.flatnonzero(cols.msg_kind == MSG_SIP):
        row = int(cols.msg_row[j])
        m = parse_sip(cols.message(int(j)), int(cols.frame[row]), int(cols.time_ns[row]))
        if m is not None:
            out.append(m)
    for frame, time_ns, _src, _sport, _dst, _dport, payload in tcp_signalling:
        m = parse_sip(bytes(payload), int(frame), int(time_ns))
        if m is not None:
            out.append(m)
    return out


def _stun(cols: MediaColumns, flows: _Flows, start_ns: int):
    """STUN summary per client/server pair and the channel -> peer map per conversation."""
    rows = []
    for j in np.flatnonzero(cols.msg_kind == MSG_STUN):
        msg = parse_stun(cols.message(int(j)))
        if msg is not None:
            rows.append((int(cols.msg_row[j]), msg))
    tunnel = np.flatnonzero(np.isin(cols.transport, TURN_TRANSPORTS))
    flow_of = cols.flow
    # The client of a 5-tuple is whoever sends requests on it (RFC 5389 §7).
    client_flow: dict[int, int] = {}
    for row, msg in rows:
        f = int(flow_of[row])
        conv = int(flows.conversation[f])
        if msg.cls == CLASS_REQUEST or (msg.cls == CLASS_INDICATION and conv not in client_flow):
            client_flow.setdefault(conv, f)
    # TURN-carried media may be many packets: reduce it per conversation with numpy
    t_conv = flows.conversation[flow_of[tunnel]] if tunnel.size else np.zeros(0, np.int64)
    order = np.argsort(t_conv, kind="stable")
    t_rows, t_conv = tunnel[order], t_conv[order]
    starts = np.flatnonzero(np.r_[True, t_conv[1:] != t_conv[:-1]]) if t_rows.size else np.zeros(0, np.int64)
    for i in starts:  # the first TURN datagram of a conversation tells its direction
        row = int(t_rows[i])
        f = int(flow_of[row])
        outbound = cols.transport[row] in (TRANSPORT_TURN_CHANNEL, TRANSPORT_TURN_SEND)
        client_flow.setdefault(int(t_conv[i]), f if outbound or flows.reverse[f] < 0 else int(flows.reverse[f]))

    acc: dict[int, dict] = {}

    def entry(conv: int, t: float) -> dict:
        e = acc.setdefault(conv, {"first": t, "last": t, "counts": {}, "txn": {}, "answered": set(),
                                  "bindings": [], "errors": [], "unheard": 0})
        e["first"] = min(e["first"], t)
        e["last"] = max(e["last"], t)
        return e

    channel_peer: dict[tuple[int, int], tuple[str, int]] = {}
    for row, msg in rows:
        conv = int(flows.conversation[int(flow_of[row])])
        t = (int(cols.time_ns[row]) - start_ns) / NS
        e = entry(conv, t)
        _count_stun(e, msg)
        if msg.method == METHOD_CHANNEL_BIND and msg.cls == CLASS_REQUEST and msg.channel and msg.peer:
            channel_peer[(conv, msg.channel)] = msg.peer
            e["bindings"].append(ChannelBinding(msg.channel, msg.peer[0], msg.peer[1], int(cols.frame[row])))
    if t_rows.size:
        times = cols.time_ns[t_rows]
        first = np.minimum.reduceat(times, starts)
        last = np.maximum.reduceat(times, starts)
        kinds = cols.transport[t_rows]
        for k, i in enumerate(starts):
            conv = int(t_conv[i])
            entry(conv, (int(first[k]) - start_ns) / NS)
            c = entry(conv, (int(last[k]) - start_ns) / NS)["counts"]
            end = starts[k + 1] if k + 1 < starts.size else t_rows.size
            for kind, n in zip(*np.unique(kinds[i:end], return_counts=True), strict=True):
                c[TRANSPORT_NAMES[int(kind)]] = int(n)

    exchanges = []
    for conv, e in sorted(acc.items(), key=lambda kv: kv[1]["first"]):
        f = client_flow.get(conv, conv)
        client, cport, server, sport = flows.endpoints(f)
        c = e["counts"]
        seen = {(b.channel, b.peer, b.peer_port): b for b in e["bindings"]}
        exchanges.append(
            StunExchange(
                client=client,
                client_port=cport,
                server=server,
                server_port=sport,
                first_time=e["first"],
                last_time=e["last"],
                binding_requests=c.get((METHOD_BINDING, CLASS_REQUEST), 0),
                binding_success=c.get((METHOD_BINDING, CLASS_SUCCESS), 0),
                binding_errors=c.get((METHOD_BINDING, CLASS_ERROR), 0),
                allocate_requests=c.get((METHOD_ALLOCATE, CLASS_REQUEST), 0),
                allocate_success=c.get((METHOD_ALLOCATE, CLASS_SUCCESS), 0),
                allocate_errors=c.get((METHOD_ALLOCATE, CLASS_ERROR), 0),
                other_requests=c.get(("other", CLASS_REQUEST), 0),
                other_success=c.get(("other", CLASS_SUCCESS), 0),
                other_errors=c.get(("other", CLASS_ERROR), 0),
                transactions=len(e["txn"]),
                answered=len(e["answered"]),
                retransmissions=sum(n - 1 for n in e["txn"].values()),
                send_indications=c.get("turn-send", 0),
                data_indications=c.get("turn-data", 0),
                channel_data=c.get("turn-channel", 0),
                channel_bindings=tuple(seen.values()),
                error_codes=tuple(e["errors"]),
                retried_after_answer=e["unheard"],
            )
        )
    return StunSummary(tuple(exchanges)), channel_peer


def _count_stun(e: dict, msg: StunMessage) -> None:
    method = msg.method if msg.method in (METHOD_BINDING, METHOD_ALLOCATE) else "other"
    c = e["counts"]
    if msg.cls == CLASS_INDICATION:
        return
    c[(method, msg.cls)] = c.get((method, msg.cls), 0) + 1
    if msg.cls == CLASS_REQUEST:
        e["txn"][msg.transaction] = e["txn"].get(msg.transaction, 0) + 1
        if msg.transaction in e["answered"]:
            e["unheard"] += 1
    elif msg.cls == CLASS_SUCCESS:
        e["answered"].add(msg.transaction)
    elif msg.error_code is not None:
        e["errors"].append(msg.error_code)


def _rtcp(cols: MediaColumns, flows: _Flows, start_ns: int):
    parsed = []
    encrypted_convs = set()
    for j in np.flatnonzero(cols.msg_kind == MSG_RTCP):
        row = int(cols.msg_row[j])
        f = int(cols.flow[row])
        src, sport, dst, dport = flows.endpoints(f)
        where = RtcpDatagram(int(cols.frame[row]), (int(cols.time_ns[row]) - start_ns) / NS, src, sport, dst, dport)
        p = parse_compound(cols.message(int(j)), where)
        parsed.append(p)
        if p is not None and p.encrypted:
            encrypted_convs.add(int(flows.conversation[f]))
    return summarise_rtcp(parsed), encrypted_convs


def _codec(pt: int, media: SdpMedia | None) -> tuple[str | None, int | None, str]:
    """Codec name, clock rate and its source: SDP a=rtpmap, then RFC 3551's table."""
    if media is not None:
        for mpt, name, rate in media.rtpmap:
            if mpt == pt:
                if name.lower() == "opus":
                    return name, rtp.OPUS_CLOCK_RATE, "opus"  # RFC 7587 §4.1
                return name, rate, "sdp"
    if pt in rtp.STATIC_PAYLOAD_TYPES:
        name, rate = rtp.STATIC_PAYLOAD_TYPES[pt]
        return name, rate, "static"
    return None, None, "unknown"


def _infer_clock(time: np.ndarray, seq: np.ndarray, ts: np.ndarray, pt: np.ndarray, main_pt: int) -> int | None:
    """Clock rate from timestamp advance against arrival time over adjacent packets.

    Sum of RTP timestamp increments over the sum of arrival intervals, over
    pairs of consecutive sequence numbers of the main payload type, snapped
    to the nearest standard rate (RFC 3551 §4.5) within 10 %.
    """
    keep = pt == main_pt
    t, s, x = time[keep], seq[keep].astype(np.int64), ts[keep].astype(np.int64)
    if t.size < 3:
        return None
    dseq = (s[1:] - s[:-1]) % 65536
    dts = (x[1:] - x[:-1]) % (1 << 32)
    dt = t[1:] - t[:-1]
    ok = (dseq == 1) & (dts > 0) & (dts < (1 << 31))
    if ok.sum() < MIN_CLOCK_PAIRS or dt[ok].sum() < MIN_CLOCK_SPAN_S:
        return None  # too little to average out arrival jitter and bunching
    return rtp.snap_clock_rate(float(dts[ok].sum() / dt[ok].sum()))


def discover_columns(
    cols: MediaColumns,
    *,
    capture_start_ns: int,
    tcp_signalling=(),
    decode_as: Sequence[int] = (),
) -> MediaInventory:
    """:func:`discover` on already reduced columns (the chunked path: reduce each
    chunk with :func:`~callscope.media.columns.extract`, join with
    :meth:`MediaColumns.concat`, then call this)."""
    start_ns = int(capture_start_ns)
    cols = cols.in_time_order()
    flows = _Flows(cols)
    messages = _sip_messages(cols, tcp_signalling)
    sip = summarise_sip(messages, capture_start_ns)
    stun, channel_peer = _stun(cols, flows, start_ns)
    rtcp_summary, srtcp_convs = _rtcp(cols, flows, start_ns)

    sdp: dict[bytes, tuple[str, SdpMedia]] = {}
    for call in sip.calls:
        for md in call.media:
            if md.address and md.port and _is_rtp(md):
                try:
                    sdp[_endpoint_key(md.address, md.port)] = (call.call_id, md)
                except ValueError:
                    continue
    src_ep = [bytes(k[0:16]) + bytes(k[32:34]) for k in flows.keys]
    dst_ep = [bytes(k[16:32]) + bytes(k[34:36]) for k in flows.keys]
    flow_sdp = [sdp.get(dst_ep[f]) or sdp.get(src_ep[f]) for f in range(len(flows.keys))]
    not_rtp_rows, not_rtp_flows = _not_rtp(cols, messages, src_ep, dst_ep)
    forced = set(int(p) for p in decode_as)
    flow_signalled = np.array(
        [flow_sdp[f] is not None or flows.sport[f] in forced or flows.dport[f] in forced for f in range(len(flows.keys))],
        dtype=bool,
    )
    dtls_convs = set(np.unique(flows.conversation[cols.flow[cols.demux == demux.DTLS]]).tolist()) if len(flows.keys) else set()

    streams = _rtp_streams(cols, flows, flow_sdp, flow_signalled, channel_peer, start_ns,
                           dtls_convs | srtcp_convs, not_rtp_rows)
    rtp_flows = {s_flow for s_flow, _ in streams} | not_rtp_flows
    opaque = find_opaque(cols, flows, exclude_conversations={int(flows.conversation[f]) for f in rtp_flows})
    built: list[tuple[int, MediaStream]] = [(int(s.packets.frame[0]), _within_slot_budget(s)) for _, s in streams]
    for f, rows in opaque:
        src, sport, dst, dport = flows.endpoints(f)
        built.append((int(cols.frame[rows[0]]), MediaStream(
            id="", kind="opaque", src=src, src_port=sport, dst=dst, dst_port=dport,
            packets=PacketSeries(
                frame=cols.frame[rows].astype(np.int64), time=(cols.time_ns[rows] - start_ns) / NS,
                size=cols.size[rows]),
            encrypted=True, ttl=_ttl_range(cols.ttl[rows]),
        )))
    built.sort(key=lambda fs: fs[0])
    final = _number(tuple(s for _, s in built))
    return MediaInventory(
        streams=final,
        calls=_calls(final, sip),
        rtcp=rtcp_summary,
        stun=stun,
        sip=sip,
        sender_ttl=_sender_ttl(cols, flows, final),
    )


def _ttl_range(ttl: np.ndarray) -> tuple[int, int] | None:
    """Lowest and highest known IP TTL / hop limit of some packets (None when
    none is known): a sender's own packets all carry its initial value until a
    router lowers it."""
    known = ttl[ttl > 0]
    return (int(known.min()), int(known.max())) if known.size else None


def _sender_ttl(cols: MediaColumns, flows: _Flows, streams: Sequence[MediaStream]) -> dict[str, tuple[int, int]]:
    """Lowest and highest TTL each sender used, over its streams and its
    signalling and control datagrams (SIP, STUN, RTCP): a few rows, not every
    packet again."""
    out: dict[str, tuple[int, int]] = {}

    def add(src: str, lo: int, hi: int) -> None:
        a, b = out.get(src, (256, 0))
        out[src] = (min(a, lo), max(b, hi))

    for st in streams:
        if st.ttl is not None:
            add(st.src, *st.ttl)
    rows = np.unique(cols.msg_row)
    rows = rows[cols.ttl[rows] > 0]
    if rows.size:
        # per flow first (vectorised), then one entry per flow: a capture of a
        # million STUN packets is not a million Python steps
        lo = np.full(len(flows.keys), 256, np.int64)
        hi = np.zeros(len(flows.keys), np.int64)
        np.minimum.at(lo, cols.flow[rows], cols.ttl[rows])
        np.maximum.at(hi, cols.flow[rows], cols.ttl[rows])
        for f in np.flatnonzero(hi).tolist():
            add(flows.addr(flows.keys[f][0:16]), int(lo[f]), int(hi[f]))
    return out


def _is_rtp(md: SdpMedia) -> bool:
    """Whether an SDP media section carries RTP: only an RTP profile does
    (RFC 4566 §5.14); a T.38 fax offer (``m=image ... udptl t38``, ITU-T T.38
    Annex D) does not."""
    return "RTP" in md.proto.upper()


def _not_rtp(
    cols: MediaColumns, messages: Sequence[SipMessage], src_ep: list[bytes], dst_ep: list[bytes]
) -> tuple[np.ndarray | None, set[int]]:
    """Rows that signalling had switched to a protocol other than RTP, and their flows.

    A fax call re-INVITEs its audio port to UDPTL: from that offer until an
    RTP offer for the same address and port again, the flow's datagrams are
    UDPTL, whose sequence numbers can look like an RTP header with a new
    "SSRC" in every packet.
    """
    offers: dict[bytes, list[tuple[int, bool]]] = {}
    for m in messages:
        for md in m.media:
            if md.address and md.port:
                try:
                    offers.setdefault(_endpoint_key(md.address, md.port), []).append((m.frame, _is_rtp(md)))
                except ValueError:
                    continue
    other = {k: sorted(v) for k, v in offers.items() if not all(rtp for _, rtp in v)}
    if not other:
        return None, set()
    rows_out = np.zeros(len(cols), bool)
    flows_out: set[int] = set()
    for f in range(len(src_ep)):
        for key in (dst_ep[f], src_ep[f]):
            if key not in other:
                continue
            frames = np.array([fr for fr, _ in other[key]], dtype=np.int64)
            is_rtp = np.array([rtp for _, rtp in other[key]], dtype=bool)
            rows = np.flatnonzero(cols.flow == f)
            k = np.searchsorted(frames, cols.frame[rows].astype(np.int64), side="right") - 1
            off = (k >= 0) & ~is_rtp[np.maximum(k, 0)]
            rows_out[rows[off]] = True
            flows_out.add(f)
    return rows_out, flows_out


def _rtp_streams(
    cols: MediaColumns,
    flows: _Flows,
    flow_sdp: list[tuple[str, SdpMedia] | None],
    flow_signalled: np.ndarray,
    channel_peer: dict[tuple[int, int], tuple[str, int]],
    start_ns: int,
    secure_convs: set[int],
    not_rtp_rows: np.ndarray | None = None,
) -> list[tuple[int, MediaStream]]:
    """Group valid RTP headers by (path, SSRC) and keep the confirmed groups.

    A path is the 5-tuple plus, for RTP carried in TURN, the channel or the
    relayed peer. Which groups are RTP is :mod:`callscope.media.confirm`'s
    rule; rows that signalling gave to another protocol (``not_rtp_rows``:
    UDPTL fax) are never RTP, however their bytes look. The arrays are kept
    small by :mod:`callscope.media.memory`. Returns (flow index, stream)
    pairs, ids not yet assigned.
    """
    release_free_memory()  # what SIP, STUN and RTCP parsing left in the heap
    rows, starts = group_by_path(cols, rtp_candidates(cols, not_rtp_rows))
    if rows.size == 0:
        return []
    first = rows[starts]
    groups = np.stack(
        [cols.flow[first].astype(np.int64), cols.transport[first].astype(np.int64),
         cols.channel[first].astype(np.int64), cols.peer[first].astype(np.int64),
         cols.ssrc[first].astype(np.int64)],
        axis=1,
    )
    bounds = np.append(np.flatnonzero(starts), rows.size)
    # Each column is gathered once, for every candidate row in stream order;
    # streams are then slices of these arrays. (A gather per stream and
    # column costs a Python call per stream and leaves thousands of small
    # arrays in the C heap.) Differences in the columns' own widths wrap
    # modulo 2^16 / 2^32 by themselves (RFC 3550 §5.1).
    seq = cols.seq[rows]
    ts = cols.ts[rows]
    t_ns = cols.time_ns[rows]
    confirmed = confirmed_groups(plausible_pairs(seq, ts, t_ns), starts, bounds, groups[:, 0], flow_signalled)
    if not confirmed.any():
        return []
    lengths = np.diff(bounds)
    if not confirmed.all():
        rows, seq, ts, t_ns, starts = keep_groups(confirmed, lengths, rows, seq, ts, t_ns, starts)
        groups, lengths = groups[confirmed], lengths[confirmed]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
    frame = cols.frame[rows].astype(np.int64, copy=False)
    size = cols.size[rows]
    b1 = cols.b1[rows]
    ttl = cols.ttl[rows]
    del rows
    pts = b1 & 0x7F
    marker = (b1 & 0x80) != 0
    del b1
    time = seconds_since(t_ns, start_ns)
    del t_ns
    jumps, jump_lo, jump_hi = _restarts(seq, starts, bounds)

    out = []
    for k in range(lengths.size):
        a, b = int(bounds[k]), int(bounds[k + 1])
        f, transport, channel, peer_i, ssrc = (int(v) for v in groups[k])
        src, sport, dst, dport = flows.endpoints(f)
        conv = int(flows.conversation[f])
        peer = None
        if transport == TRANSPORT_TURN_CHANNEL:
            peer = channel_peer.get((conv, channel))
        elif peer_i >= 0:
            pk = cols.peer_keys[peer_i]
            peer = (flows.addr(pk[0:16]), int((int(pk[16]) << 8) | int(pk[17])))
        main_pt = int(np.bincount(pts[a:b], minlength=128).argmax())  # most frequent, lowest on a tie
        sdp_of_flow = flow_sdp[f]
        call_id, media = sdp_of_flow if sdp_of_flow is not None else (None, None)
        codec, clock, source = _codec(main_pt, media)
        if clock is None:
            clock = _infer_clock(time[a:b], seq[a:b], ts[a:b], pts[a:b], main_pt)
            source = "inferred" if clock is not None else "unknown"
        notes = []
        n_jumps = int(jump_hi[k] - jump_lo[k])
        if n_jumps:
            j = int(jumps[jump_lo[k]])  # pair (j, j + 1) of the gathered rows
            more = f" and {n_jumps - 1} more" if n_jumps > 1 else ""
            notes.append(f"sequence restart at frame {int(frame[j + 1])} "
                         f"({int(seq[j])} -> {int(seq[j + 1])}){more}: not loss")
        # Zoom encrypts every media payload (Michel et al., IMC 2022, §2)
        encrypted = (conv in secure_convs or (media is not None and media.secure)
                     or transport == TRANSPORT_ZOOM)
        out.append((f, MediaStream(
            id="", kind="rtp", src=src, src_port=sport, dst=dst, dst_port=dport,
            packets=PacketSeries(
                frame=frame[a:b], time=time[a:b], size=size[a:b], seq=seq[a:b], ts=ts[a:b],
                pt=pts[a:b], marker=marker[a:b],
            ),
            ssrc=ssrc, payload_type=main_pt, codec=codec, clock_rate=clock, clock_source=source,
            transport=TRANSPORT_NAMES[transport], peer=peer, encrypted=encrypted, call_id=call_id,
            notes=tuple(notes), ttl=_ttl_range(ttl[a:b]),
        )))
    return out


def _restarts(seq: np.ndarray, starts: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequence restarts: the pairs of rows (``j``, ``j + 1``) of one group whose
    sequence numbers jump by more than :data:`MAX_DROPOUT`, and each group's
    first and past-the-last index into them."""
    step = (seq[1:] - seq[:-1]).view(np.int16).astype(np.int32)
    np.abs(step, out=step)
    step[starts[1:]] = 0
    jumps = np.flatnonzero(step > MAX_DROPOUT)
    return jumps, np.searchsorted(jumps, bounds[:-1]), np.searchsorted(jumps, bounds[1:] - 1)


def _within_slot_budget(stream: MediaStream) -> MediaStream:
    """``stream``, or the same packets as opaque media when its sequence numbers span
    more slots than :data:`MAX_SEQ_SLOTS` / :data:`SEQ_SLOTS_PER_PACKET` allow.

    Every slot a sequence span implies (RFC 3550 A.1 takes any forward step
    up to MAX_DROPOUT = 3000 as loss) becomes an element of several per-slot
    arrays in metrics and diagnose. A stream whose numbers skip thousands per
    packet received (far beyond any real loss) would make memory grow with
    the numbers, not the packets; it is analyzed by its cadence instead, and
    says so.
    """
    seq = stream.packets.seq
    if seq is None or seq.size < 2:
        return stream
    step = (seq[1:] - seq[:-1]).astype(np.uint16).astype(np.int64)
    span = seq.size + int(step[(step >= 1) & (step <= RFC3550_MAX_DROPOUT)].sum())
    if span <= max(MAX_SEQ_SLOTS, SEQ_SLOTS_PER_PACKET * seq.size):
        return stream
    p = stream.packets
    note = (f"RTP sequence numbers span {span} packets for {seq.size} received: "
            "analyzed by its cadence, as opaque media")
    return replace(stream, kind="opaque", ssrc=None, payload_type=None, clock_rate=None, clock_source="unknown",
                   packets=PacketSeries(frame=p.frame, time=p.time, size=p.size), notes=(*stream.notes, note))


def _number(streams: tuple[MediaStream, ...]) -> tuple[MediaStream, ...]:
    """Give ids s1, s2, ... in order of first frame; link streams sharing an SSRC."""
    named = [replace(s, id=f"s{i + 1}") for i, s in enumerate(streams)]
    by_ssrc: dict[int, list[MediaStream]] = {}
    for s in named:
        if s.ssrc is not None:
            by_ssrc.setdefault(s.ssrc, []).append(s)
    out = []
    for s in named:
        others = [o for o in by_ssrc.get(s.ssrc, []) if o.id != s.id] if s.ssrc is not None else []
        links = tuple(f"same SSRC as {o.id} ({o.label}): one source on two paths, not loss" for o in others)
        out.append(replace(s, notes=s.notes + links) if links else s)
    return tuple(out)


def _calls(streams: tuple[MediaStream, ...], sip: SipSummary) -> tuple[Call, ...]:
    """Pair streams into calls: same endpoints either way, same SIP Call-ID, same
    SSRC, or (opaque media) one socket address:port in common."""
    parent = list(range(len(streams)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    seen: dict[object, int] = {}
    local = {(s.src, s.src_port) for s in streams if s.kind == "opaque"} & {
        (s.dst, s.dst_port) for s in streams if s.kind == "opaque"
    }
    for i, s in enumerate(streams):
        keys: list[object] = [frozenset([(s.src, s.src_port), (s.dst, s.dst_port)])]
        if s.kind == "opaque":
            # a messenger's socket sends and receives one call, while its
            # relay may answer from another address: join on the shared end
            keys += [("socket", *ep) for ep in ((s.src, s.src_port), (s.dst, s.dst_port)) if ep in local]
        if s.call_id:
            keys.append(("call-id", s.call_id))
        if s.ssrc is not None:
            keys.append(("ssrc", s.ssrc))
        for key in keys:
            if key in seen:
                union(i, seen[key])
            else:
                seen[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(streams)):
        groups.setdefault(find(i), []).append(i)
    by_id = {c.call_id: c for c in sip.calls}
    calls = []
    for n, members in enumerate(sorted(groups.values(), key=min)):
        call_id = next((streams[i].call_id for i in members if streams[i].call_id), None)
        sc = by_id.get(call_id) if call_id else None
        calls.append(Call(
            id=f"c{n + 1}",
            stream_ids=tuple(streams[i].id for i in members),
            call_id=call_id,
            from_uri=sc.from_uri if sc else None,
            to_uri=sc.to_uri if sc else None,
            session_name=sc.session_name if sc else None,
        ))
    return tuple(calls)
