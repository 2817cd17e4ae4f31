"""SRTCP (RFC 3711 §3.4) decrypted with known keys, so that its reports feed the RTCP metrics.

Media discovery parses RTCP before any key is looked at: an SRTCP compound
packet is recognised there by the bytes left after its RTCP packets (the
E flag / SRTCP index word and the authentication tag) and only its sender
SSRC is read. With keys (SDES ``a=crypto`` lines of the capture's SIP,
``--srtp-key``, a keys file) :func:`decrypt_rtcp` takes the RTCP messages
kept in the media columns again, decrypts each sender's SRTCP with the key of
the RTP stream of the same SSRC (a source's SRTP and SRTCP share one master
key; RFC 3711 §4.3.1 derives their session keys with different labels),
parses the plain compound packets exactly as discovery parses plain RTCP and
rebuilds the RTCP summary from all of them. Round-trip times (LSR/DLSR),
reported fraction lost and jitter, sender info and BYE then come out as for
plain RTCP. Packets failing authentication are counted per sender and stay
unparsed; a sender whose every packet fails is reported as a wrong key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from callscope.capture.datagrams import address_to_str
from callscope.media.columns import MSG_RTCP, MediaColumns
from callscope.media.rtcp import RtcpDatagram, SrtcpDecryption, parse_compound, summarise
from callscope.media.srtp import KeySelector, SrtpKey, decrypt_stream, keys_for

NS = 1_000_000_000
RTCP_PORT_OFFSET = 1  # RFC 3550 §11: RTCP on the next (odd) port above RTP's
#: Keys tried on one sender's SRTCP, nearest first (given, then SDES of its own
#: endpoint, then of its call, then others): decryption runs unasked whenever
#: the SIP carries SDES keys, and a capture of thousands of SDES calls must
#: not try every call's key on every sender.
MAX_KEYS_PER_SENDER = 8


@dataclass(frozen=True)
class _Sender:
    """An RTCP sender with no RTP stream of its SSRC in the capture, as key selectors see a stream."""

    ssrc: int
    src: str
    src_port: int
    dst: str
    dst_port: int
    id: str | None = None
    call_id: str | None = None


def has_sdes_keys(sip) -> bool:
    """Whether the capture's SDP carried any SDES ``a=crypto`` line (RFC 4568)."""
    return any(media.crypto for call in sip.calls for media in call.media)


def _candidates(ssrc: int, where: RtcpDatagram, streams: Sequence, given, sip) -> list[SrtpKey]:
    """Keys for one SRTCP sender: those of its RTP streams (same SSRC), else those whose selector
    names its SSRC or its 5-tuple, on the RTCP ports or the RTP ports below them."""
    out: list[SrtpKey] = []
    if not streams:
        streams = [_Sender(ssrc, where.src, where.src_port - d, where.dst, where.dst_port - d)
                   for d in (0, RTCP_PORT_OFFSET)]
    for s in streams:
        out += [k for k in keys_for(s, given, sip) if k not in out]
    return out[:MAX_KEYS_PER_SENDER]


def decrypt_rtcp(
    cols: MediaColumns,
    inventory,
    given: Sequence[tuple[KeySelector, SrtpKey]] = (),
    *,
    capture_start_ns: int,
):
    """The inventory with its SRTCP decrypted where a key is known and parsed as RTCP.

    Parameters
    ----------
    cols : MediaColumns
        The columns discovery ran on (their RTCP message bytes are read again).
    inventory : MediaInventory
        What discovery found in them.
    given : sequence of (KeySelector, SrtpKey)
        Keys from the command line or a keys file; SDES keys of the
        inventory's SIP are tried after them.
    capture_start_ns : int
        As given to discovery: RTCP times are seconds since it.

    Returns
    -------
    MediaInventory
        ``rtcp`` rebuilt from plain and decrypted compound packets, with
        ``rtcp.srtcp`` counting each keyed sender's packets; each stream
        whose SRTCP failed authentication carries the finding in its notes.
        The inventory itself when there was no SRTCP or no key for any of it.
    """
    j = np.flatnonzero(cols.msg_kind == MSG_RTCP)
    if j.size == 0 or not inventory.rtcp.encrypted:
        return inventory
    rows = cols.msg_row[j]
    # in arrival order as discovery took them (it sorts rows by time, stably)
    order = np.lexsort((j, rows, cols.time_ns[rows]))
    j, rows = j[order], rows[order]
    names: dict[bytes, str] = {}
    sport, dport = cols.flow_sport, cols.flow_dport

    def addr(raw: np.ndarray) -> str:
        b = bytes(raw)
        if b not in names:
            names[b] = address_to_str(raw)
        return names[b]

    parsed, buffers, wheres = [], [], []
    by_sender: dict[int, list[int]] = {}
    for k, (jj, row) in enumerate(zip(j.tolist(), rows.tolist(), strict=True)):
        f = int(cols.flow[row])
        where = RtcpDatagram(
            int(cols.frame[row]), (int(cols.time_ns[row]) - capture_start_ns) / NS,
            addr(cols.flow_keys[f, 0:16]), int(sport[f]), addr(cols.flow_keys[f, 16:32]), int(dport[f]),
        )
        buf = cols.message(jj)
        p = parse_compound(buf, where)
        parsed.append(p)
        buffers.append(buf)
        wheres.append(where)
        if p is not None and p.encrypted and p.sender_ssrc is not None:
            by_sender.setdefault(p.sender_ssrc, []).append(k)

    records = []
    for ssrc, ks in by_sender.items():
        streams: Sequence = [s for s in inventory.streams if s.ssrc == ssrc]
        keys = _candidates(ssrc, wheres[ks[0]], streams, given, inventory.sip)
        if not keys:
            continue
        d = decrypt_stream([buffers[k] for k in ks], keys, rtcp=True)
        for k, plain in zip(ks, d.plain, strict=True):
            if plain is not None:
                q = parse_compound(bytes(plain), wheres[k])
                # authenticated but not RTCP inside: malformed, not still-encrypted
                parsed[k] = q if q is not None and not q.encrypted else None
        records.append(SrtcpDecryption(
            ssrc=ssrc, stream_ids=tuple(s.id for s in streams), suite=d.suite, key_source=d.key_source,
            packets=d.packets, decrypted=d.decrypted, auth_failures=d.auth_failures, replays=d.replays,
            other_failures=d.other_failures, finding=d.finding(),
        ))
    if not records:
        return inventory
    failed = {r.ssrc: r.finding for r in records if r.finding}
    updated = tuple(
        replace(s, notes=(*s.notes, failed[s.ssrc])) if s.ssrc in failed else s for s in inventory.streams
    )
    rtcp = replace(summarise(parsed), srtcp=tuple(sorted(records, key=lambda r: r.ssrc)))
    return replace(inventory, rtcp=rtcp, streams=updated)
