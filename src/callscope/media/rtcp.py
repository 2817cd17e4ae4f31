"""RTCP (RFC 3550 §6): sender and receiver reports, SDES, BYE, and XR VoIP metrics (RFC 3611 §4.7).

RTCP is a few packets every few seconds per stream, so each compound packet
is decoded in Python. A compound packet is walked by its packets'
length fields (RFC 3550 §6.1 and §A.2); when 4 or more bytes remain that do
not form RTCP packets, it is SRTCP (RFC 3711 §3.4: encrypted after the first
8 bytes, then the E-flag/index word and the authentication tag), of which
only the sender SSRC is read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

PT_SR = 200  # RFC 3550 §12.1
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204
PT_XR = 207  # RFC 3611 §5
SDES_CNAME = 1  # RFC 3550 §12.2
XR_VOIP_METRICS = 7  # RFC 3611 §4.7
XR_VOIP_METRICS_WORDS = 8  # RFC 3611 §4.7: block length field
REPORT_BLOCK_LEN = 24  # RFC 3550 §6.4.1
UNAVAILABLE = 127  # RFC 3611 §4.7.5/§4.7.6: "unavailable" for levels, R, MOS
NTP_FRACTION = 65536.0  # LSR/DLSR units: 1/65536 s (RFC 3550 §6.4.1)
#: SRTCP appends the E-flag/index word (4 bytes) and an authentication tag
#: (4 or 10 bytes for the RFC 3711 §5.2 default transforms) after the packets;
#: fewer stray bytes than the index word are tolerated as sender slack.
MIN_SRTCP_TRAILER = 4  # RFC 3711 §3.4


@dataclass(frozen=True)
class SenderReport:
    """Sender info of an SR (RFC 3550 §6.4.1)."""

    frame: int
    time: float
    src: str
    src_port: int
    dst: str
    dst_port: int
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_ts: int
    packet_count: int
    octet_count: int

    @property
    def ntp_middle(self) -> int:
        """The middle 32 bits of the NTP timestamp: what a later RR echoes as LSR."""
        return (self.ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block of an SR or RR (RFC 3550 §6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point value divided by 256;
    ``jitter`` is in RTP timestamp units. ``rtt_s`` is the round-trip time
    RFC 3550 §6.4.1 defines, A - LSR - DLSR, with A and the LSR instant taken
    from capture timestamps: the time between this report and the SR it
    echoes, minus DLSR. It is the round trip from the capture point to the
    reporter and back, None when the echoed SR is not in the capture.
    """

    frame: int
    time: float
    src: str
    src_port: int
    dst: str
    dst_port: int
    packet_type: str  # "SR" or "RR"
    reporter_ssrc: int
    source_ssrc: int
    fraction_lost: float
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int
    rtt_s: float | None = None


@dataclass(frozen=True)
class VoipMetrics:
    """An XR VoIP Metrics report block (RFC 3611 §4.7), values in natural units.

    Rates and densities are fractions (the 8-bit field / 256, §4.7.1-§4.7.2);
    durations and delays in ms; levels in dBm / dB (None when 127,
    "unavailable"); MOS in MOS units (field / 10); R factor 0-100.
    """

    frame: int
    time: float
    reporter_ssrc: int
    source_ssrc: int
    loss_rate: float
    discard_rate: float
    burst_density: float
    gap_density: float
    burst_duration_ms: int
    gap_duration_ms: int
    round_trip_delay_ms: int
    end_system_delay_ms: int
    signal_level_dbm: int | None
    noise_level_dbm: int | None
    rerl_db: int | None
    gmin: int
    r_factor: int | None
    ext_r_factor: int | None
    mos_lq: float | None
    mos_cq: float | None
    rx_config: int
    jb_nominal_ms: int
    jb_maximum_ms: int
    jb_abs_max_ms: int


@dataclass(frozen=True)
class Bye:
    """A BYE packet (RFC 3550 §6.6)."""

    frame: int
    time: float
    ssrcs: tuple[int, ...]
    reason: str | None


@dataclass(frozen=True)
class SrtcpDecryption:
    """What decrypting one sender's SRTCP with a known key gave (RFC 3711 §3.4).

    ``stream_ids`` are the RTP streams of the same SSRC; ``finding`` is the
    sentence to report when authentication failed (a wrong key, corruption),
    None when every packet authenticated.
    """

    ssrc: int
    stream_ids: tuple[str, ...]
    suite: str
    key_source: str
    packets: int
    decrypted: int
    auth_failures: int
    replays: int
    other_failures: int
    finding: str | None = None


@dataclass(frozen=True)
class RtcpSummary:
    """All RTCP of a capture.

    ``packets`` counts datagrams decoded as RTCP, ``encrypted`` those that are
    SRTCP and were not decrypted, ``malformed`` those whose first header
    looked like RTCP but did not parse. SRTCP decrypted with a known key
    (:mod:`callscope.media.srtcp`) is parsed like plain RTCP; ``srtcp`` says,
    per sender SSRC, how decryption went.
    """

    packets: int = 0
    encrypted: int = 0
    malformed: int = 0
    sender_reports: tuple[SenderReport, ...] = ()
    report_blocks: tuple[ReportBlock, ...] = ()
    voip_metrics: tuple[VoipMetrics, ...] = ()
    cnames: tuple[tuple[int, str], ...] = ()  # (SSRC, CNAME), RFC 3550 §6.5.1
    byes: tuple[Bye, ...] = ()
    encrypted_ssrcs: tuple[int, ...] = ()
    srtcp: tuple[SrtcpDecryption, ...] = ()


@dataclass(frozen=True)
class RtcpDatagram:
    """Where one RTCP datagram was seen (for the records decoded from it)."""

    frame: int
    time: float
    src: str
    src_port: int
    dst: str
    dst_port: int


def _signed24(value: int) -> int:
    return value - (1 << 24) if value & 0x800000 else value


def _level(v: int) -> int | None:
    """Signed 8-bit level, 127 = unavailable (RFC 3611 §4.7.5)."""
    return None if v == UNAVAILABLE else (v - 256 if v > 127 else v)


def _report_blocks(buf: bytes, off: int, count: int, kind: str, reporter: int, where: RtcpDatagram) -> list[ReportBlock]:
    out = []
    for k in range(count):
        o = off + k * REPORT_BLOCK_LEN
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", buf, o)
        out.append(
            ReportBlock(
                frame=where.frame,
                time=where.time,
                src=where.src,
                src_port=where.src_port,
                dst=where.dst,
                dst_port=where.dst_port,
                packet_type=kind,
                reporter_ssrc=reporter,
                source_ssrc=ssrc,
                fraction_lost=(lost_word >> 24) / 256.0,
                cumulative_lost=_signed24(lost_word & 0xFFFFFF),
                highest_seq=highest,
                jitter=jitter,
                lsr=lsr,
                dlsr=dlsr,
            )
        )
    return out


def _voip_metrics(buf: bytes, o: int, reporter: int, where: RtcpDatagram) -> VoipMetrics:
    (source,) = struct.unpack_from("!I", buf, o + 4)
    loss, discard, bden, gden = buf[o + 8 : o + 12]
    bdur, gdur, rtd, esd = struct.unpack_from("!HHHH", buf, o + 12)
    sig, noise, rerl, gmin, r, extr, moslq, moscq = buf[o + 20 : o + 28]
    rxc = buf[o + 28]
    jbn, jbm, jba = struct.unpack_from("!HHH", buf, o + 30)
    return VoipMetrics(
        frame=where.frame,
        time=where.time,
        reporter_ssrc=reporter,
        source_ssrc=source,
        loss_rate=loss / 256.0,
        discard_rate=discard / 256.0,
        burst_density=bden / 256.0,
        gap_density=gden / 256.0,
        burst_duration_ms=bdur,
        gap_duration_ms=gdur,
        round_trip_delay_ms=rtd,
        end_system_delay_ms=esd,
        signal_level_dbm=_level(sig),
        noise_level_dbm=_level(noise),
        rerl_db=None if rerl == UNAVAILABLE else rerl,
        gmin=gmin,
        r_factor=None if r == UNAVAILABLE else r,
        ext_r_factor=None if extr == UNAVAILABLE else extr,
        mos_lq=None if moslq == UNAVAILABLE else moslq / 10.0,
        mos_cq=None if moscq == UNAVAILABLE else moscq / 10.0,
        rx_config=rxc,
        jb_nominal_ms=jbn,
        jb_maximum_ms=jbm,
        jb_abs_max_ms=jba,
    )


@dataclass(frozen=True)
class _Parsed:
    encrypted: bool
    sender_ssrc: int | None
    sender_reports: tuple[SenderReport, ...] = ()
    report_blocks: tuple[ReportBlock, ...] = ()
    voip_metrics: tuple[VoipMetrics, ...] = ()
    cnames: tuple[tuple[int, str], ...] = ()
    byes: tuple[Bye, ...] = ()


def _tiled_end(buf: bytes) -> int:
    """End of the last whole RTCP packet when walking the length fields (RFC 3550 §6.1)."""
    off = 0
    while off + 4 <= len(buf) and buf[off] >> 6 == 2:
        end = off + 4 * (struct.unpack_from("!H", buf, off + 2)[0] + 1)
        if end > len(buf):
            break
        off = end
    return off


def parse_compound(buf: bytes, where: RtcpDatagram) -> _Parsed | None:
    """Decode a compound RTCP packet; None if the bytes are not RTCP.

    Parameters
    ----------
    buf : bytes
        The RTCP datagram (or the RTCP carried inside TURN).
    where : RtcpDatagram
        Frame, time and endpoints to stamp on the records.
    """
    if len(buf) < 8 or buf[0] >> 6 != 2 or not 192 <= buf[1] <= 223:
        return None
    (sender,) = struct.unpack_from("!I", buf, 4)
    stop = _tiled_end(buf)
    if stop == 0:
        return None
    if len(buf) - stop >= MIN_SRTCP_TRAILER:
        return _Parsed(encrypted=True, sender_ssrc=sender)
    srs: list[SenderReport] = []
    blocks: list[ReportBlock] = []
    xr: list[VoipMetrics] = []
    cnames: list[tuple[int, str]] = []
    byes: list[Bye] = []
    off = 0
    while off < stop:
        count = buf[off] & 0x1F
        pt = buf[off + 1]
        end = off + 4 * (struct.unpack_from("!H", buf, off + 2)[0] + 1)
        if pt == PT_SR and end - off >= 28 + count * REPORT_BLOCK_LEN:
            ssrc, ntp_hi, ntp_lo, rtp_ts, pkts, octets = struct.unpack_from("!IIIIII", buf, off + 4)
            srs.append(
                SenderReport(
                    where.frame, where.time, where.src, where.src_port, where.dst, where.dst_port,
                    ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, pkts, octets,
                )
            )
            blocks += _report_blocks(buf, off + 28, count, "SR", ssrc, where)
        elif pt == PT_RR and end - off >= 8 + count * REPORT_BLOCK_LEN:
            (ssrc,) = struct.unpack_from("!I", buf, off + 4)
            blocks += _report_blocks(buf, off + 8, count, "RR", ssrc, where)
        elif pt == PT_SDES:
            cnames += _sdes_cnames(buf, off + 4, end, count)
        elif pt == PT_BYE:
            ssrcs = tuple(struct.unpack_from(f"!{count}I", buf, off + 4)) if off + 4 + 4 * count <= end else ()
            r = off + 4 + 4 * count
            reason = buf[r + 1 : r + 1 + buf[r]].decode("utf-8", "replace") if r < end else None
            byes.append(Bye(where.frame, where.time, ssrcs, reason))
        elif pt == PT_XR and end - off >= 8:
            (reporter,) = struct.unpack_from("!I", buf, off + 4)
            o = off + 8
            while o + 4 <= end:
                bt = buf[o]
                words = struct.unpack_from("!H", buf, o + 2)[0]
                if bt == XR_VOIP_METRICS and words == XR_VOIP_METRICS_WORDS and o + 36 <= end:
                    xr.append(_voip_metrics(buf, o, reporter, where))
                o += 4 * (words + 1)
        off = end
    return _Parsed(False, sender, tuple(srs), tuple(blocks), tuple(xr), tuple(cnames), tuple(byes))


def _sdes_cnames(buf: bytes, off: int, end: int, count: int) -> list[tuple[int, str]]:
    """CNAME items of an SDES packet (RFC 3550 §6.5)."""
    out = []
    for _ in range(count):
        if off + 4 > end:
            break
        (ssrc,) = struct.unpack_from("!I", buf, off)
        off += 4
        while off < end and buf[off] != 0:
            item, length = buf[off], buf[off + 1] if off + 1 < end else 0
            if item == SDES_CNAME:
                out.append((ssrc, buf[off + 2 : off + 2 + length].decode("utf-8", "replace")))
            off += 2 + length
        off = (off + 4) & ~3  # the null item, then padding to a 32-bit boundary
    return out


def summarise(parsed: list[_Parsed | None]) -> RtcpSummary:
    """Join decoded datagrams and fill in each report block's round-trip time.

    RTT per RFC 3550 §6.4.1: for a block with LSR != 0, find the earlier SR
    of the reported source whose NTP middle 32 bits equal LSR; RTT = (time of
    this report - time of that SR) - DLSR / 65536. A block a sender writes
    about itself has no round trip.
    """
    good = [p for p in parsed if p is not None]
    srs = [s for p in good for s in p.sender_reports]
    sr_at: dict[tuple[int, int], SenderReport] = {}
    for s in srs:
        sr_at.setdefault((s.ssrc, s.ntp_middle), s)
    blocks = []
    for p in good:
        for b in p.report_blocks:
            sr = sr_at.get((b.source_ssrc, b.lsr)) if b.lsr else None
            rtt = None
            if sr is not None and sr.frame < b.frame and b.source_ssrc != b.reporter_ssrc:
                rtt = b.time - sr.time - b.dlsr / NTP_FRACTION
            blocks.append(replace(b, rtt_s=rtt))
    cnames = sorted({c for p in good for c in p.cnames})
    return RtcpSummary(
        packets=len(good),
        encrypted=sum(p.encrypted for p in good),
        malformed=len(parsed) - len(good),
        sender_reports=tuple(srs),
        report_blocks=tuple(blocks),
        voip_metrics=tuple(x for p in good for x in p.voip_metrics),
        cnames=tuple(cnames),
        byes=tuple(b for p in good for b in p.byes),
        encrypted_ssrcs=tuple(sorted({p.sender_ssrc for p in good if p.encrypted and p.sender_ssrc is not None})),
    )
