"""The per-chunk reduction of datagrams to what media discovery needs.

:func:`extract` turns a :class:`~callscope.capture.datagrams.Datagrams` chunk
into :class:`MediaColumns`: a few compact numeric columns per datagram
(time, 5-tuple id, size, RFC 7983 class, TURN encapsulation, RTP header
fields) and the payload bytes of the rare control packets only (SIP, STUN,
RTCP). A capture of any size can be reduced chunk by chunk and the results
joined with :meth:`MediaColumns.concat`; discovery then runs on the columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from callscope.capture.datagrams import Datagrams, str_to_address
from callscope.capture.flows import flow_keys as datagram_flow_keys
from callscope.capture.flows import group_rows, void_rows
from callscope.media import demux, rtp
from callscope.media.memory import concat_freeing
from callscope.media.stun import DATA_INDICATION, SEND_INDICATION, parse_stun

HEAD_WIDTH = 24  # enough for RTP (12 + ext word), STUN (20) and SIP start lines

TRANSPORT_UDP = 0
TRANSPORT_TURN_CHANNEL = 1
TRANSPORT_TURN_SEND = 2
TRANSPORT_TURN_DATA = 3
TRANSPORT_ZOOM = 4
TRANSPORT_NAMES = ("udp", "turn-channel", "turn-send", "turn-data", "zoom")

# Zoom's media encapsulation (Michel et al., "Enabling Passive Measurement of
# Zoom Performance in Production Networks", IMC 2022, §3): a type byte and a
# fixed header before plain RTP; via Zoom's servers an 8-byte SFU header
# (type 5) comes first. Candidates only: the stream heuristic still has to
# confirm the RTP inside.
ZOOM_SFU_TYPE = 0x05
ZOOM_SFU_HEADER_LEN = 8
ZOOM_MEDIA_RTP_OFFSET = {0x0F: 19, 0x10: 24}  # audio, video

#: Kinds of kept control messages.
MSG_SIP = demux.SIP
MSG_STUN = demux.STUN
MSG_RTCP = demux.RTCP

#: Per-datagram columns that :meth:`MediaColumns.gather` joins as they are
#: (``flow`` and ``peer`` index per-chunk tables and are remapped instead).
_ROW_COLUMNS = ("frame", "time_ns", "size", "demux", "transport", "channel", "inner", "b0", "b1",
                "seq", "ts", "ssrc", "rtp_valid", "head_hash", "ttl")
_PEER_KEY = 18  # address(16) port(2)


@dataclass(frozen=True)
class MediaColumns:
    """Compact per-datagram columns of (part of) a capture.

    Row ``i`` describes datagram ``i`` in capture order. ``flow`` indexes the
    5-tuple table ``flow_keys`` (36 bytes: src, dst address, sport, dport
    big-endian); ``peer`` indexes ``peer_keys`` (18 bytes: address, port)
    for TURN Send/Data indications, -1 elsewhere. The RTP columns are read at
    ``inner`` offset: 0 for plain UDP, 4 inside TURN ChannelData, the DATA
    attribute inside Send/Data indications. ``msg_*`` hold the payload bytes
    of SIP, STUN and RTCP datagrams (for RTCP in TURN, the inner packet).
    ``head_hash`` tells fresh (encrypted) payloads from repeated ones such
    as keep-alives and connectivity probes.
    """

    frame: np.ndarray  # uint32 (int64 past 2^32 frames)
    time_ns: np.ndarray  # int64
    flow: np.ndarray  # int32
    size: np.ndarray  # int32, UDP payload bytes on the wire
    demux: np.ndarray  # uint8, RFC 7983 class of the UDP payload
    transport: np.ndarray  # uint8, TRANSPORT_*
    channel: np.ndarray  # uint16, TURN channel number (ChannelData)
    peer: np.ndarray  # int32
    inner: np.ndarray  # uint8, RFC 7983 class of the (de-encapsulated) packet
    b0: np.ndarray  # uint8
    b1: np.ndarray  # uint8
    seq: np.ndarray  # uint16
    ts: np.ndarray  # uint32
    ssrc: np.ndarray  # uint32
    rtp_valid: np.ndarray  # bool
    head_hash: np.ndarray  # uint32, of the first HEAD_WIDTH payload bytes
    ttl: np.ndarray  # uint8, IP TTL / hop limit (0: unknown)
    flow_keys: np.ndarray  # uint8 (m, 36)
    peer_keys: np.ndarray  # uint8 (k, 18)
    msg_row: np.ndarray  # int64
    msg_kind: np.ndarray  # uint8
    msg_start: np.ndarray  # int64
    msg_len: np.ndarray  # int32
    msg_data: np.ndarray = field(repr=False)  # uint8

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def message(self, j: int) -> bytes:
        s = int(self.msg_start[j])
        return self.msg_data[s : s + int(self.msg_len[j])].tobytes()

    @property
    def flow_src(self) -> np.ndarray:
        return self.flow_keys[:, 0:16]

    @property
    def flow_dst(self) -> np.ndarray:
        return self.flow_keys[:, 16:32]

    @property
    def flow_sport(self) -> np.ndarray:
        k = self.flow_keys.astype(np.uint16)
        return (k[:, 32] << 8) | k[:, 33]

    @property
    def flow_dport(self) -> np.ndarray:
        k = self.flow_keys.astype(np.uint16)
        return (k[:, 34] << 8) | k[:, 35]

    @staticmethod
    def concat(parts: list[MediaColumns]) -> MediaColumns:
        """Join reduced chunks (flow and peer tables merged, message offsets rebased)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return extract(Datagrams.empty())
        if len(parts) == 1:
            return parts[0]
        flow_keys, flow = _merge_table([p.flow_keys for p in parts], [p.flow for p in parts])
        peer_keys, peer = _merge_table([p.peer_keys for p in parts], [p.peer for p in parts])
        row_base = np.cumsum([0] + [len(p) for p in parts[:-1]])
        data_base = np.cumsum([0] + [p.msg_data.size for p in parts[:-1]])

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return MediaColumns(
            frame=cat("frame"),
            time_ns=cat("time_ns"),
            flow=flow,
            size=cat("size"),
            demux=cat("demux"),
            transport=cat("transport"),
            channel=cat("channel"),
            peer=peer,
            inner=cat("inner"),
            b0=cat("b0"),
            b1=cat("b1"),
            seq=cat("seq"),
            ts=cat("ts"),
            ssrc=cat("ssrc"),
            rtp_valid=cat("rtp_valid"),
            head_hash=cat("head_hash"),
            ttl=cat("ttl"),
            flow_keys=flow_keys,
            peer_keys=peer_keys,
            msg_row=np.concatenate([p.msg_row + b for p, b in zip(parts, row_base, strict=True)]),
            msg_kind=cat("msg_kind"),
            msg_start=np.concatenate(
                [p.msg_start + b for p, b in zip(parts, data_base, strict=True)]
            ),
            msg_len=cat("msg_len"),
            msg_data=cat("msg_data"),
        )


    def in_time_order(self) -> MediaColumns:
        """The same columns with rows in arrival-time order (stable).

        Captures joined end to end (``cat``, or a merge that did not sort)
        have frames out of time order; every later stage reads a stream's
        packets as arrivals, so media hands them over sorted by time, frame
        numbers kept. A capture already in order (the usual case) is
        returned as it is, after one comparison per row.
        """
        t = self.time_ns
        if t.size < 2 or not bool(np.any(t[1:] < t[:-1])):
            return self
        order = np.argsort(t, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        msg_row = rank[self.msg_row]
        by_row = np.argsort(msg_row, kind="stable")
        return dataclasses.replace(
            self,
            **{name: getattr(self, name)[order] for name in (*_ROW_COLUMNS, "flow", "peer")},
            msg_row=msg_row[by_row],
            msg_kind=self.msg_kind[by_row],
            msg_start=self.msg_start[by_row],
            msg_len=self.msg_len[by_row],
        )

    @staticmethod
    def gather(chunks: Iterable[MediaColumns]) -> MediaColumns:
        """:meth:`concat` over an iterator, for a capture of any size.

        The reduced chunks are kept as they come (a few tens of bytes per
        datagram) and joined column by column at the end, each column's
        pieces freed as soon as it is joined: peak memory is the result plus
        one column, never twice the result. (Growing one buffer per column
        instead costs a full copy whenever a buffer doubles: +440 MB at 10^7
        datagrams.)
        """
        parts = [c for c in chunks if len(c)]
        if not parts:
            return extract(Datagrams.empty())
        if len(parts) == 1:
            return parts[0]
        n = 0
        msg_row, msg_start = [], []
        data_size = 0
        for c in parts:
            msg_row.append(c.msg_row + n)
            msg_start.append(c.msg_start + data_size)
            data_size += c.msg_data.size
            n += len(c)
        union_flows, flow_index = _merge_table([p.flow_keys for p in parts], [p.flow for p in parts])
        union_peers, peer_index = _merge_table([p.peer_keys for p in parts], [p.peer for p in parts])
        # Each part's columns as a mutable list, emptied column by column.
        pieces = [{name: getattr(p, name) for name in (*_ROW_COLUMNS, "msg_kind", "msg_len", "msg_data")}
                  for p in parts]
        del parts

        rows = {name: concat_freeing(pieces, name) for name in _ROW_COLUMNS}
        return MediaColumns(
            **rows,
            flow=flow_index,
            peer=peer_index,
            flow_keys=union_flows,
            peer_keys=union_peers,
            msg_row=np.concatenate(msg_row),
            msg_kind=concat_freeing(pieces, "msg_kind"),
            msg_start=np.concatenate(msg_start),
            msg_len=concat_freeing(pieces, "msg_len"),
            msg_data=concat_freeing(pieces, "msg_data"),
        )


def _merge_table(tables: list[np.ndarray], indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Union of key tables; row indices (-1 = none) remapped into the union."""
    width = tables[0].shape[1]
    stacked = np.concatenate(tables).reshape(-1, width)
    if stacked.shape[0] == 0:
        return stacked, np.concatenate(indices)
    _, first, inverse = np.unique(void_rows(stacked), return_index=True, return_inverse=True)
    union = stacked[np.sort(first)]
    # renumber so the union keeps first-seen order
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    inverse = rank[inverse.ravel()]
    out = []
    base = 0
    for t, idx in zip(tables, indices, strict=True):
        remap = inverse[base : base + t.shape[0]]
        # int32 piece by piece: no int64 copy of every row's index
        out.append(np.where(idx >= 0, remap[np.maximum(idx, 0)] if remap.size else -1, -1).astype(np.int32))
        base += t.shape[0]
    return union, np.concatenate(out)


#: Odd 64-bit multipliers for a cheap row hash (golden-ratio constants).
_HASH_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64
)


def _hash_rows(head: np.ndarray) -> np.ndarray:
    """A 32-bit hash of each 24-byte row: its three 64-bit words, multiplied and
    summed (wrapping), high half folded onto the low half.

    32 bits suffice to count distinct payloads (two of 10^5 different rows
    collide about once: a 10^-5 error on a fraction compared with 0.5) and
    save 4 bytes per datagram.
    """
    words = np.ascontiguousarray(head[:, :HEAD_WIDTH]).view(np.uint64)
    h = (words * _HASH_MULT[None, :]).sum(axis=1, dtype=np.uint64)
    return ((h >> np.uint64(32)) ^ h).astype(np.uint32)


def _frame_numbers(frame: np.ndarray) -> np.ndarray:
    """Frame numbers in 32 bits (4 bytes per datagram less) unless one does not fit."""
    if frame.size and int(frame.max()) > np.iinfo(np.uint32).max:
        return frame.astype(np.int64)
    return frame.astype(np.uint32)


def _port_bytes(port: np.ndarray) -> np.ndarray:
    p = np.asarray(port, np.uint16)
    return np.stack([(p >> 8).astype(np.uint8), (p & 0xFF).astype(np.uint8)], axis=1)


def peer_key(addr: str, port: int) -> np.ndarray:
    """The 18-byte peer-table row for an address and port."""
    return np.concatenate([str_to_address(addr), _port_bytes(np.array([port]))[0]])


def extract(datagrams: Datagrams) -> MediaColumns:
    """Reduce a chunk of UDP datagrams to :class:`MediaColumns`.

    Every datagram is classified by its first bytes (RFC 7983 §7); TURN
    ChannelData (RFC 5766 §11.4) and Send/Data indications (RFC 5766 §10)
    and Zoom's media encapsulation are opened so that RTP/RTCP inside them
    is read like plain RTP. Only the
    payload bytes of SIP, STUN (other than media-carrying indications) and
    RTCP datagrams are kept.

    Parameters
    ----------
    datagrams : Datagrams
        One chunk of the reader's output, in capture order.

    Returns
    -------
    MediaColumns
    """
    d = datagrams
    n = len(d)
    caplen = d.payload_caplen.astype(np.int64)
    head = d.payload_prefix(HEAD_WIDTH)
    outer = demux.classify(head, caplen)

    inner_off = np.zeros(n, np.int64)
    transport = np.zeros(n, np.uint8)
    channel = np.zeros(n, np.uint16)
    peer = np.full(n, -1, np.int32)

    is_chan = outer == demux.TURN_CHANNEL
    inner_off[is_chan] = demux.CHANNEL_DATA_HEADER_LEN
    transport[is_chan] = TRANSPORT_TURN_CHANNEL
    channel[is_chan] = (head[is_chan, 0].astype(np.uint16) << 8) | head[is_chan, 1]

    unassigned = outer == demux.OTHER
    for zoom_type, offset in ZOOM_MEDIA_RTP_OFFSET.items():
        for base, type_at in ((0, 0), (ZOOM_SFU_HEADER_LEN, ZOOM_SFU_HEADER_LEN)):
            hit = unassigned & (head[:, type_at] == zoom_type) & (caplen > base + offset + rtp.RTP_HEADER_LEN)
            if base:
                hit &= head[:, 0] == ZOOM_SFU_TYPE
            inner_off[hit] = base + offset
            transport[hit] = TRANSPORT_ZOOM

    msg_type = (head[:, 0].astype(np.uint16) << 8) | head[:, 1]
    is_ind = (outer == demux.STUN) & ((msg_type == SEND_INDICATION) | (msg_type == DATA_INDICATION))
    peers: list[np.ndarray] = []
    for i in np.flatnonzero(is_ind):
        msg = parse_stun(d.payload(int(i)))
        if msg is None or msg.data_offset is None:
            continue
        inner_off[i] = msg.data_offset
        transport[i] = TRANSPORT_TURN_SEND if msg_type[i] == SEND_INDICATION else TRANSPORT_TURN_DATA
        if msg.peer is not None:
            peer[i] = len(peers)
            peers.append(peer_key(*msg.peer))
    peer_keys, peer_idx = group_rows(np.array(peers, np.uint8).reshape(-1, _PEER_KEY))
    has_peer = peer >= 0
    peer[has_peer] = peer_idx[peer[has_peer]]

    tunnelled = transport != TRANSPORT_UDP
    inner_len = np.maximum(caplen - inner_off, 0)
    start = d.payload_start + inner_off
    ihead = head.copy()
    if tunnelled.any():
        ihead[tunnelled] = demux.gather(d.data, start[tunnelled], inner_len[tunnelled], HEAD_WIDTH)
    inner = outer.copy()
    inner[tunnelled] = demux.classify(ihead[tunnelled], inner_len[tunnelled])
    # a Zoom type byte followed by anything but RTP was a coincidence
    not_zoom = (transport == TRANSPORT_ZOOM) & (inner != demux.RTP)
    transport[not_zoom] = TRANSPORT_UDP
    inner_off[not_zoom] = 0
    inner[not_zoom] = outer[not_zoom]
    ihead[not_zoom] = head[not_zoom]
    tunnelled &= ~not_zoom
    inner_len = np.maximum(caplen - inner_off, 0)
    start = d.payload_start + inner_off

    cc = (ihead[:, 0] & 0x0F).astype(np.int64)
    ext_word = demux.gather(d.data, start + rtp.RTP_HEADER_LEN + 4 * cc, inner_len - 12 - 4 * cc, 4)
    last = demux.gather(d.data, d.payload_start + np.maximum(caplen - 1, 0), (caplen > 0).astype(np.int64), 1)[:, 0]
    hdr = rtp.parse_headers(ihead, inner_len, ext_word, last)

    keep = (outer == demux.SIP) | ((outer == demux.STUN) & ~tunnelled) | (inner == demux.RTCP)
    rows = np.flatnonzero(keep)
    kind = np.where(inner[rows] == demux.RTCP, MSG_RTCP, outer[rows]).astype(np.uint8)
    msg_len = inner_len[rows].astype(np.int32)
    msg_start = np.concatenate([[0], np.cumsum(msg_len)[:-1]]).astype(np.int64) if rows.size else np.zeros(0, np.int64)
    if rows.size:
        idx = np.repeat(start[rows] - msg_start, msg_len) + np.arange(int(msg_len.sum()))
        msg_data = d.data[idx]
    else:
        msg_data = np.zeros(0, np.uint8)

    flow_keys, flow = group_rows(datagram_flow_keys(d))
    return MediaColumns(
        frame=_frame_numbers(d.frame),
        time_ns=d.time_ns.astype(np.int64),
        flow=flow,
        size=d.udp_payload_len.astype(np.int32),
        demux=outer,
        transport=transport,
        channel=channel,
        peer=peer,
        inner=inner,
        # copies: as views they would keep each chunk's 24-byte header rows alive
        b0=hdr.b0.copy(),
        b1=hdr.b1.copy(),
        seq=hdr.seq,
        ts=hdr.ts,
        ssrc=hdr.ssrc,
        rtp_valid=hdr.valid,
        head_hash=_hash_rows(head),
        ttl=d.ttl,
        flow_keys=flow_keys,
        peer_keys=peer_keys,
        msg_row=rows.astype(np.int64),
        msg_kind=kind,
        msg_start=msg_start,
        msg_len=msg_len,
        msg_data=msg_data,
    )
