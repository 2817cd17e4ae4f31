"""Bytes on the wire: RTP headers (vectorised), RTCP, SIP/SDP and STUN/TURN messages.

Media packets are many and built as numpy arrays; signalling messages are few
and built as ``bytes``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from callscope.media.demux import STUN_MAGIC_COOKIE
from callscope.media.rtcp import PT_SDES as RTCP_SDES
from callscope.media.rtcp import PT_SR as RTCP_SR
from callscope.media.rtcp import SDES_CNAME
from callscope.media.rtp import RTP_HEADER_LEN, RTP_VERSION
from callscope.media.stun import METHOD_ALLOCATE, METHOD_BINDING
from callscope.synth.codecs import Codec

# The protocol numbers are the ones media/ decodes with, so writer and reader
# cannot drift apart.
#: RFC 3550 §5.1 fixed header, network byte order.
RTP_HEADER_DTYPE = np.dtype(
    [("vpxcc", "u1"), ("mpt", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")]
)

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

# A request's class bits are zero (RFC 5389 §6): its message type is the method.
STUN_BINDING_REQUEST = METHOD_BINDING
STUN_ALLOCATE_REQUEST = METHOD_ALLOCATE
STUN_ATTR_REQUESTED_TRANSPORT = 0x0019  # RFC 5766 §14.7
STUN_ATTR_PRIORITY = 0x0024  # RFC 8445 §7.1.1
STUN_ATTR_SOFTWARE = 0x8022  # RFC 5389 §15.10
STUN_ATTR_FINGERPRINT = 0x8028  # RFC 5389 §15.5
STUN_FINGERPRINT_XOR = 0x5354554E  # RFC 5389 §15.5: "STUN"
STUN_PORT = 3478  # RFC 5389 §9


def rtp_headers(
    seq: np.ndarray, ts: np.ndarray, ssrc: np.ndarray, pt: np.ndarray, marker: np.ndarray
) -> np.ndarray:
    """RFC 3550 §5.1 fixed headers (V=2, no padding/extension/CSRC), shape (n, 12) uint8."""
    n = len(seq)
    h = np.zeros(n, RTP_HEADER_DTYPE)
    h["vpxcc"] = RTP_VERSION << 6
    h["mpt"] = (np.asarray(marker, np.uint8) << 7) | np.asarray(pt, np.uint8)
    h["seq"] = np.asarray(seq, np.int64) & 0xFFFF
    h["ts"] = np.asarray(ts, np.int64) & 0xFFFFFFFF
    h["ssrc"] = ssrc
    return h.view(np.uint8).reshape(n, RTP_HEADER_LEN)


def ntp_timestamp(unix_seconds: float) -> int:
    """64-bit NTP timestamp (RFC 5905 §6) of a Unix time: seconds << 32 | fraction."""
    whole = int(unix_seconds // 1)
    frac = int(round((unix_seconds - whole) * (1 << 32)))
    if frac == 1 << 32:
        whole, frac = whole + 1, 0
    return ((whole + NTP_UNIX_OFFSET) << 32) | frac


@dataclass(frozen=True)
class ReportBlock:
    """One RTCP reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost/expected since the last report * 256
    cumulative_lost: int  # signed 24 bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received
    dlsr: int  # delay since that SR, 1/65536 s


@dataclass(frozen=True)
class SenderInfo:
    """The sender information of an SR (RFC 3550 §6.4.1): when, and how much so far."""

    ntp: int  # 64-bit NTP timestamp of the report
    rtp_ts: int  # the same instant on the RTP media clock
    packet_count: int  # RTP packets sent since the stream started
    octet_count: int  # RTP payload octets sent since then


def rtcp_sender_report(ssrc: int, info: SenderInfo, blocks: tuple[ReportBlock, ...], cname: str) -> bytes:
    """A compound RTCP packet: SR (RFC 3550 §6.4.1) followed by SDES CNAME (§6.5).

    RFC 3550 §6.1 requires every compound packet to carry an SDES CNAME item.
    """
    body = struct.pack(
        "!IIIII I", ssrc, info.ntp >> 32, info.ntp & 0xFFFFFFFF, info.rtp_ts & 0xFFFFFFFF,
        info.packet_count & 0xFFFFFFFF, info.octet_count & 0xFFFFFFFF,
    )
    for b in blocks:
        lost = max(-(1 << 23), min((1 << 23) - 1, b.cumulative_lost)) & 0xFFFFFF
        body += struct.pack(
            "!IIIIII", b.ssrc, (b.fraction_lost << 24) | lost, b.highest_seq & 0xFFFFFFFF,
            b.jitter & 0xFFFFFFFF, b.lsr & 0xFFFFFFFF, b.dlsr & 0xFFFFFFFF,
        )
    sr = struct.pack("!BBH", (RTP_VERSION << 6) | len(blocks), RTCP_SR, (4 + len(body)) // 4 - 1)
    sr += body
    text = cname.encode()
    chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text
    chunk += b"\x00" * (4 - len(chunk) % 4)  # at least one null octet ends the item list
    sdes = struct.pack("!BBH", (RTP_VERSION << 6) | 1, RTCP_SDES, (4 + len(chunk)) // 4 - 1)
    return sr + sdes + chunk


@dataclass(frozen=True)
class SipParty:
    """One side of a SIP dialog and its SDP media line."""

    user: str
    ip: str
    sip_port: int
    rtp_port: int
    tag: str


def sdp(party: SipParty, codec: Codec, session_id: int, ptime_ms: int) -> bytes:
    """An SDP body (RFC 4566 §5) offering one audio stream with ``a=rtpmap``."""
    lines = [
        "v=0",
        f"o={party.user} {session_id} {session_id} IN IP4 {party.ip}",
        "s=callscope synth",
        f"c=IN IP4 {party.ip}",
        "t=0 0",
        f"m=audio {party.rtp_port} RTP/AVP {codec.payload_type}",
        f"a=rtpmap:{codec.rtpmap}",
        f"a=ptime:{ptime_ms}",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass(frozen=True)
class SipDialog:
    """A SIP dialog (RFC 3261 §12): the caller, the callee and the Call-ID."""

    caller: SipParty
    callee: SipParty
    call_id: str


def sip_message(
    dialog: SipDialog, start_line: str, cseq: str, branch: str, callee_tag: bool, body: bytes = b""
) -> bytes:
    """A SIP request or response over UDP (RFC 3261 §7, §8.1.1 mandatory headers)."""
    caller, callee = dialog.caller, dialog.callee
    to = f"<sip:{callee.user}@{callee.ip}>" + (f";tag={callee.tag}" if callee_tag else "")
    contact = callee if start_line.startswith("SIP/2.0") else caller
    headers = [
        start_line,
        f"Via: SIP/2.0/UDP {caller.ip}:{caller.sip_port};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:{caller.user}@{caller.ip}>;tag={caller.tag}",
        f"To: {to}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {cseq}",
        f"Contact: <sip:{contact.user}@{contact.ip}:{contact.sip_port}>",
    ]
    if body:
        headers.append("Content-Type: application/sdp")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def stun_request(method: int, transaction_id: bytes, priority: int | None = None) -> bytes:
    """A STUN request (RFC 5389 §6) with FINGERPRINT; TURN Allocate asks for UDP.

    Binding requests carry ICE's PRIORITY (RFC 8445 §7.1.1); Allocate requests
    carry REQUESTED-TRANSPORT = UDP (RFC 5766 §6.1).
    """
    attrs = b""
    if method == STUN_ALLOCATE_REQUEST:
        attrs += struct.pack("!HHI", STUN_ATTR_REQUESTED_TRANSPORT, 4, 17 << 24)
    if priority is not None:
        attrs += struct.pack("!HHI", STUN_ATTR_PRIORITY, 4, priority)
    software = b"callscope synth"
    attrs += struct.pack("!HH", STUN_ATTR_SOFTWARE, len(software)) + software
    attrs += b"\x00" * (-len(software) % 4)
    # RFC 5389 §15.5: the length field covers the FINGERPRINT attribute when the
    # CRC is computed over the message before it.
    head = struct.pack("!HHI", method, len(attrs) + 8, STUN_MAGIC_COOKIE) + transaction_id
    crc = (zlib.crc32(head + attrs) ^ STUN_FINGERPRINT_XOR) & 0xFFFFFFFF
    return head + attrs + struct.pack("!HHI", STUN_ATTR_FINGERPRINT, 4, crc)
