"""Crafted captures for the hostile-input tests: RTP, SIP/SDP and opaque media built with
the project's pcap writer, and raw records built with struct where the writer would refuse."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from callscope.capture.writer import ipv4_to_int, write_pcap

NS = 1_000_000_000
A, B = ipv4_to_int("10.0.0.1"), ipv4_to_int("10.0.0.2")


def rtp_packets(n: int, *, ssrc: int = 0x1234, pt: int = 0, seq0: int = 1000, ts_step: int = 160,
                size: int = 160, seq_step: int = 1) -> list[bytes]:
    """``n`` RTP packets (RFC 3550 §5.1 header, version 2) with ``size`` payload bytes."""
    rng = np.random.default_rng(ssrc)
    out = []
    for i in range(n):
        header = struct.pack("!BBHII", 0x80, pt, (seq0 + i * seq_step) & 0xFFFF, (i * ts_step) & 0xFFFFFFFF, ssrc)
        out.append(header + rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return out


def write_datagrams(path: Path, rows: list[tuple[int, int, int, int, int, bytes]]) -> Path:
    """Write ``(time_ns, src, dst, sport, dport, payload)`` rows as an Ethernet/IPv4/UDP pcap."""
    if not rows:
        raise ValueError("no rows")
    payloads = [r[5] for r in rows]
    lens = np.array([len(p) for p in payloads], np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(payloads), np.uint8)
    col = list(zip(*[r[:5] for r in rows], strict=True))
    write_pcap(path, np.array(col[0], np.int64), np.array(col[1], np.uint32), np.array(col[2], np.uint32),
               np.array(col[3], np.uint16), np.array(col[4], np.uint16), data, starts, lens)
    return path


def rtp_rows(n: int, t0_ns: int, *, ptime_ms: int = 20, src: int = A, dst: int = B, sport: int = 4000,
             dport: int = 5000, **kw) -> list[tuple]:
    return [(t0_ns + i * ptime_ms * 1_000_000, src, dst, sport, dport, p)
            for i, p in enumerate(rtp_packets(n, **kw))]


def opaque_rows(n: int, t0_ns: int, *, seed: int = 7, src: int = A, dst: int = B, sport: int = 40000,
                dport: int = 50000, size: int = 90) -> list[tuple]:
    """Encrypted-looking voice: random payloads at 50 packets per second."""
    rng = np.random.default_rng(seed)
    return [(t0_ns + i * 20_000_000, src, dst, sport, dport, rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            for i in range(n)]


def sip_invite(call_id: str, sdp: str) -> bytes:
    """A SIP INVITE (RFC 3261 §7.1) carrying ``sdp`` (RFC 4566)."""
    body = sdp.replace("\n", "\r\n").encode()
    head = (
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
        "From: <sip:alice@10.0.0.1>;tag=1\r\n"
        "To: <sip:bob@10.0.0.2>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("utf-8", "surrogateescape") + body


def sdp(port: str, rtpmap: str = "0 PCMU/8000", pts: str = "0") -> str:
    return ("v=0\no=- 1 1 IN IP4 10.0.0.2\ns=call\nc=IN IP4 10.0.0.2\nt=0 0\n"
            f"m=audio {port} RTP/AVP {pts}\na=rtpmap:{rtpmap}\n")


def raw_pcap(path: Path, records: list[tuple[int, int, int, int, bytes]], *, snaplen: int = 65535) -> Path:
    """A classic pcap (draft-ietf-opsawg-pcap §4-5) of ``(sec, usec, incl_len, orig_len, data)`` records,
    lengths written as given (the writer would compute them)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)]
    for sec, usec, incl, orig, data in records:
        out.append(struct.pack("<IIII", sec, usec, incl, orig) + data)
    path.write_bytes(b"".join(out))
    return path


def ether_ipv4(payload: bytes, *, proto: int = 17, total_length: int | None = None, ident: int = 0,
               frag: int = 0, src: int = A, dst: int = B) -> bytes:
    """Ethernet II + IPv4 header (RFC 791 §3.1) around ``payload``; ``total_length`` as given when set."""
    tl = 20 + len(payload) if total_length is None else total_length
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, tl, ident, frag, 64, proto, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + payload


def udp(sport: int, dport: int, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload
