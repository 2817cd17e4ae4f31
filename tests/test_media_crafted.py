"""media on crafted packets: TURN, RTCP, XR, SIP/SDP, heuristic RTP, opaque voice."""

from __future__ import annotations

import struct

import numpy as np
import pytest

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import IP, UDP, Ether, Raw, wrpcap  # noqa: E402

from callscope.capture import read_capture  # noqa: E402
from callscope.media import discover  # noqa: E402
from callscope.media.rtcp import RtcpDatagram, parse_compound  # noqa: E402
from callscope.media.stun import (  # noqa: E402
    CLASS_INDICATION,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    METHOD_CHANNEL_BIND,
    METHOD_DATA,
    message_type,
)

T0 = 1_700_000_000.0
COOKIE = 0x2112A442


def udp(src, sport, dst, dport, payload: bytes, t: float):
    p = Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)
    p.time = t
    return p


def inventory(tmp_path, packets, **kw):
    path = tmp_path / "crafted.pcap"
    wrpcap(str(path), packets)
    cap = read_capture(path)
    return discover(cap.datagrams, capture_start_ns=cap.start_ns, tcp_signalling=cap.tcp_signalling, **kw)


def rtp_packet(seq, ts, ssrc, pt=0, payload=b"\xd5" * 160, marker=False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def xor_peer(addr: str, port: int) -> bytes:
    a = bytes(int(x) for x in addr.split("."))
    c = struct.pack("!I", COOKIE)
    value = struct.pack("!BBH", 0, 1, port ^ (COOKIE >> 16)) + bytes(x ^ y for x, y in zip(a, c, strict=True))
    return struct.pack("!HH", 0x0012, len(value)) + value


def stun(method, cls, txn: bytes, attrs: bytes = b"") -> bytes:
    return struct.pack("!HHI", message_type(method, cls), len(attrs), COOKIE) + txn + attrs


def attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


CLIENT, SERVER, PEER = "10.0.0.1", "198.51.100.1", "203.0.113.5"


def test_rtp_in_turn_channel_data_and_data_indications_is_attributed_to_the_peer(tmp_path):
    txn = b"T" * 12
    bind = stun(METHOD_CHANNEL_BIND, CLASS_REQUEST, txn, attr(0x000C, b"\x40\x01\0\0") + xor_peer(PEER, 6000))
    pkts = [
        udp(CLIENT, 5000, SERVER, 3478, bind, T0),
        udp(SERVER, 3478, CLIENT, 5000, stun(METHOD_CHANNEL_BIND, CLASS_SUCCESS, txn), T0 + 0.05),
    ]
    for i in range(50):  # client -> peer through the channel
        r = rtp_packet(100 + i, 8000 + 160 * i, 0xAAAA0001)
        pkts.append(udp(CLIENT, 5000, SERVER, 3478, struct.pack("!HH", 0x4001, len(r)) + r, T0 + 0.1 + 0.02 * i))
    for i in range(30):  # peer -> client in Data indications
        r = rtp_packet(7 + i, 320 * i, 0xBBBB0002, pt=8)
        ind = stun(METHOD_DATA, CLASS_INDICATION, bytes([i]) * 12, xor_peer(PEER, 6000) + attr(0x0013, r))
        pkts.append(udp(SERVER, 3478, CLIENT, 5000, ind, T0 + 0.11 + 0.02 * i))
    inv = inventory(tmp_path, pkts)
    by_ssrc = {s.ssrc: s for s in inv.streams}
    up, down = by_ssrc[0xAAAA0001], by_ssrc[0xBBBB0002]
    assert (up.transport, up.peer, len(up.packets), up.codec, up.clock_rate, up.clock_source) == (
        "turn-channel", (PEER, 6000), 50, "PCMU", 8000, "static")
    assert (up.src, up.src_port, up.dst, up.dst_port) == (CLIENT, 5000, SERVER, 3478)
    assert (down.transport, down.peer, len(down.packets), down.codec) == ("turn-data", (PEER, 6000), 30, "PCMA")
    assert list(down.packets.seq[:3]) == [7, 8, 9]
    assert len(inv.calls) == 1 and set(inv.calls[0].stream_ids) == {up.id, down.id}
    (ex,) = inv.stun.exchanges
    assert (ex.client, ex.server_port, ex.other_requests, ex.other_success) == (CLIENT, 3478, 1, 1)
    assert (ex.channel_data, ex.data_indications, ex.send_indications) == (50, 30, 0)
    assert [(b.channel, b.peer, b.peer_port) for b in ex.channel_bindings] == [(0x4001, PEER, 6000)]
    assert not ex.unanswered


def test_chunks_reduced_apart_and_joined_equal_the_whole(tmp_path):
    from callscope.media import MediaColumns, discover_columns, extract

    txn = b"T" * 12
    bind = stun(METHOD_CHANNEL_BIND, CLASS_REQUEST, txn, attr(0x000C, b"\x40\x01\0\0") + xor_peer(PEER, 6000))
    pkts = [udp(CLIENT, 5000, SERVER, 3478, bind, T0)]
    for i in range(40):
        r = rtp_packet(i, 160 * i, 0xAAAA0001)
        pkts.append(udp(CLIENT, 5000, SERVER, 3478, struct.pack("!HH", 0x4001, len(r)) + r, T0 + 0.1 + 0.02 * i))
        ind = stun(METHOD_DATA, CLASS_INDICATION, bytes([i]) * 12, xor_peer(PEER, 6000 + i % 2) + attr(0x0013, rtp_packet(i, 160 * i, 0xBB)))
        pkts.append(udp(SERVER, 3478, CLIENT, 5000, ind, T0 + 0.11 + 0.02 * i))
    wrpcap(str(tmp_path / "c.pcap"), pkts)
    cap = read_capture(tmp_path / "c.pcap")
    d = cap.datagrams
    cuts = [0, 7, 30, 61, len(d)]
    parts = [extract(d.take(np.arange(a, b))) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    joined = discover_columns(MediaColumns.concat(parts), capture_start_ns=cap.start_ns)
    whole = discover(d, capture_start_ns=cap.start_ns)

    def summary(inv):
        return [(s.id, s.label, s.transport, s.peer, len(s.packets), list(s.packets.frame)) for s in inv.streams]

    assert summary(joined) == summary(whole)
    assert sorted(s.peer for s in whole.streams) == [(PEER, 6000), (PEER, 6000), (PEER, 6001)]


def test_repeated_allocate_without_answer_is_flagged_unanswered(tmp_path):
    pkts = [udp(CLIENT, 5000, SERVER, 3478, stun(0x003, CLASS_REQUEST, b"A" * 12), T0 + 0.5 * i) for i in range(4)]
    pkts += [udp(CLIENT, 5001, SERVER, 3478, stun(0x001, CLASS_REQUEST, b"B" * 12), T0),
             udp(SERVER, 3478, CLIENT, 5001, stun(0x001, CLASS_SUCCESS, b"B" * 12), T0 + 0.03)]
    inv = inventory(tmp_path, pkts)
    blocked = inv.stun.unanswered
    assert len(blocked) == 1
    e = blocked[0]
    assert (e.client_port, e.allocate_requests, e.allocate_success, e.transactions, e.retransmissions) == (5000, 4, 0, 1, 3)
    assert inv.stun.requests == 5 and inv.stun.success_responses == 1
    assert inv.streams == ()


def test_answers_that_never_arrive_are_setup_blocked_seen_from_the_answering_side(tmp_path):
    """Captured at the peer that answers: every check is answered, yet the
    client sends each again on the RFC 5389 schedule (0.5, 1, 2 s ...):
    the answers are dropped on the way back, and no media ever follows."""
    import callscope

    pkts, t = [], T0
    for k in range(3):  # three transactions, each retransmitted four times
        txn = bytes([65 + k]) * 12
        rto = 0.5
        for _ in range(5):
            pkts.append(udp(CLIENT, 5000, SERVER, 3478, stun(0x001, CLASS_REQUEST, txn), t))
            pkts.append(udp(SERVER, 3478, CLIENT, 5000, stun(0x001, CLASS_SUCCESS, txn), t + 0.001))
            t += rto
            rto *= 2
    path = tmp_path / "answered.pcap"
    wrpcap(str(path), pkts)
    report = callscope.analyze(path)
    (e,) = report.inventory.stun.exchanges
    assert (e.transactions, e.answered, e.retried_after_answer) == (3, 3, 12)
    d = report.diagnosis
    assert d.verdict == "setup-blocked" and "never reached the client" in d.primary.summary


def test_a_check_answered_once_is_not_blocked(tmp_path):
    import callscope

    pkts = [udp(CLIENT, 5000, SERVER, 3478, stun(0x001, CLASS_REQUEST, bytes([70 + k]) * 12), T0 + k)
            for k in range(4)]
    pkts += [udp(SERVER, 3478, CLIENT, 5000, stun(0x001, CLASS_SUCCESS, bytes([70 + k]) * 12), T0 + k + 0.02)
             for k in range(4)]
    path = tmp_path / "fine.pcap"
    wrpcap(str(path), sorted(pkts, key=lambda p: p.time))
    report = callscope.analyze(path)
    assert report.inventory.stun.exchanges[0].retried_after_answer == 0
    assert report.diagnosis.verdict != "setup-blocked"


def sr(ssrc, ntp, rtp_ts, count, octets, blocks=b"", rc=0) -> bytes:
    body = struct.pack("!IQIII", ssrc, ntp, rtp_ts, count, octets) + blocks
    return struct.pack("!BBH", 0x80 | rc, 200, len(body) // 4) + body


def report_block(ssrc, fraction, cum, highest, jitter, lsr, dlsr) -> bytes:
    return struct.pack("!IIIIII", ssrc, (fraction << 24) | (cum & 0xFFFFFF), highest, jitter, lsr, dlsr)


def test_rtcp_sr_rr_give_loss_jitter_and_rtt_from_lsr_dlsr(tmp_path):
    ntp = (3_900_000_000 << 32) | 0x40000000
    lsr = (ntp >> 16) & 0xFFFFFFFF
    dlsr = int(0.25 * 65536)
    sdes_item = bytes([1, 9]) + b"alice@lab"
    sdes_chunk = struct.pack("!I", 0x11111111) + sdes_item + b"\0" * (4 - (4 + len(sdes_item)) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(sdes_chunk) // 4) + sdes_chunk
    compound_sr = sr(0x11111111, ntp, 1234, 50, 8000) + sdes
    rr_body = struct.pack("!I", 0x22222222) + report_block(0x11111111, 64, 12, 70000, 77, lsr, dlsr)
    rr = struct.pack("!BBH", 0x81, 201, len(rr_body) // 4) + rr_body
    bye = struct.pack("!BBHI", 0x81, 203, 1, 0x22222222)
    pkts = [
        udp("10.0.0.1", 4001, "10.0.0.2", 5001, compound_sr, T0 + 1.0),
        udp("10.0.0.2", 5001, "10.0.0.1", 4001, rr + bye, T0 + 1.3),
    ]
    inv = inventory(tmp_path, pkts)
    r = inv.rtcp
    assert (r.packets, r.encrypted, len(r.sender_reports)) == (2, 0, 1)
    assert r.sender_reports[0].packet_count == 50 and r.sender_reports[0].ntp_middle == lsr
    (b,) = r.report_blocks
    assert (b.packet_type, b.reporter_ssrc, b.source_ssrc) == ("RR", 0x22222222, 0x11111111)
    assert b.fraction_lost == 0.25 and b.cumulative_lost == 12 and b.jitter == 77 and b.highest_seq == 70000
    assert b.rtt_s == pytest.approx(0.3 - 0.25, abs=1e-6)  # RFC 3550 §6.4.1: A - LSR - DLSR
    assert r.cnames == ((0x11111111, "alice@lab"),)
    assert r.byes[0].ssrcs == (0x22222222,)


def test_rtcp_mux_packets_are_not_counted_as_rtp(tmp_path):
    pkts = [udp("10.0.0.1", 4000, "10.0.0.2", 5000, rtp_packet(i, 160 * i, 0x5151), T0 + 0.02 * i) for i in range(40)]
    pkts.insert(20, udp("10.0.0.1", 4000, "10.0.0.2", 5000, sr(0x5151, 1 << 40, 3200, 20, 3200), T0 + 0.401))
    inv = inventory(tmp_path, pkts)
    (s,) = inv.streams
    assert len(s.packets) == 40 and inv.rtcp.packets == 1


def test_xr_voip_metrics_block_decodes_rfc3611_fields():
    block = struct.pack(
        "!BBHI4B4H8B2BHHH",
        7, 0, 8, 0x33333333,
        12, 5, 64, 3,  # loss, discard, burst density, gap density (/256)
        120, 4000, 150, 40,  # burst/gap duration, RTD, ESD (ms)
        0xEC, 127, 127, 16,  # signal -20 dBm, noise unavailable, RERL unavailable, Gmin
        80, 127, 41, 39,  # R, ext R unavailable, MOS-LQ 4.1, MOS-CQ 3.9
        0, 0, 60, 120, 200,  # RX config, reserved, JB nominal/max/abs max
    )
    body = struct.pack("!I", 0x44444444) + block
    xr = struct.pack("!BBH", 0x80, 207, len(body) // 4) + body
    parsed = parse_compound(xr, RtcpDatagram(1, 0.0, "a", 1, "b", 2))
    (m,) = parsed.voip_metrics
    assert (m.reporter_ssrc, m.source_ssrc) == (0x44444444, 0x33333333)
    assert m.loss_rate == 12 / 256 and m.burst_density == 0.25 and m.gap_density == 3 / 256
    assert (m.burst_duration_ms, m.gap_duration_ms, m.round_trip_delay_ms, m.end_system_delay_ms) == (120, 4000, 150, 40)
    assert (m.signal_level_dbm, m.noise_level_dbm, m.rerl_db, m.gmin) == (-20, None, None, 16)
    assert (m.r_factor, m.ext_r_factor, m.mos_lq, m.mos_cq) == (80, None, 4.1, 3.9)
    assert (m.jb_nominal_ms, m.jb_maximum_ms, m.jb_abs_max_ms) == (60, 120, 200)


def test_srtcp_is_marked_encrypted_and_not_misread():
    first = sr(0x77777777, 1 << 40, 0, 1, 1)[:8]  # SRTCP: header and SSRC in the clear
    body = first + bytes(range(100, 120)) + struct.pack("!I", 0x80000001) + b"\x01" * 10
    body = struct.pack("!BBH", 0x80, 200, 6) + body[4:]
    parsed = parse_compound(body, RtcpDatagram(1, 0.0, "a", 1, "b", 2))
    assert parsed.encrypted and parsed.sender_ssrc == 0x77777777 and parsed.report_blocks == ()


INVITE = (
    "INVITE sip:bob@example.org SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
    'From: "Alice" <sip:alice@example.org>;tag=1\r\n'
    "To: <sip:bob@example.org>\r\n"
    "Call-ID: call-42@10.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=lab call\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 97 101\r\na=rtpmap:97 AMR-WB/16000\r\na=rtpmap:101 telephone-event/8000\r\n"
)
OK = (
    "SIP/2.0 200 OK\r\n"
    "From: <sip:alice@example.org>;tag=1\r\nTo: <sip:bob@example.org>;tag=2\r\n"
    "i: call-42@10.0.0.1\r\nCSeq: 1 INVITE\r\nc: application/sdp\r\n\r\n"
    "v=0\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    "m=audio 50000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
)


def test_sip_sdp_signals_streams_too_short_for_the_heuristic(tmp_path):
    pkts = [udp("10.0.0.1", 5060, "10.0.0.2", 5060, INVITE.encode(), T0),
            udp("10.0.0.2", 5060, "10.0.0.1", 5060, OK.encode(), T0 + 0.2)]
    # two packets each way: the heuristic alone would not confirm them
    for i in range(2):
        pkts.append(udp("10.0.0.2", 50000, "10.0.0.1", 40000, rtp_packet(i, 320 * i, 0xA1, pt=97), T0 + 1 + 0.02 * i))
        pkts.append(udp("10.0.0.1", 40000, "10.0.0.2", 50000, rtp_packet(i, 960 * i, 0xB2, pt=111), T0 + 1.01 + 0.02 * i))
    inv = inventory(tmp_path, pkts)
    (call,) = inv.sip.calls
    assert (call.call_id, call.from_uri, call.to_uri, call.session_name, call.final_status) == (
        "call-42@10.0.0.1", "sip:alice@example.org", "sip:bob@example.org", "lab call", 200)
    assert [(m.address, m.port) for m in call.media] == [("10.0.0.1", 40000), ("10.0.0.2", 50000)]
    by_ssrc = {s.ssrc: s for s in inv.streams}
    amr, opus = by_ssrc[0xA1], by_ssrc[0xB2]
    assert (amr.codec, amr.clock_rate, amr.clock_source, len(amr.packets)) == ("AMR-WB", 16000, "sdp", 2)
    assert (opus.codec, opus.clock_rate, opus.clock_source) == ("opus", 48000, "opus")
    (c,) = inv.calls
    assert (c.call_id, c.from_uri, c.session_name, len(c.stream_ids)) == ("call-42@10.0.0.1", "sip:alice@example.org", "lab call", 2)


def udptl_packet(seq: int) -> bytes:
    """A T.38 UDPTL packet (ITU-T T.38 Annex D): 16-bit sequence number, the
    primary IFP packet behind a length byte, then redundancy. From sequence
    0x8000 on its first byte reads as RTP version 2."""
    ifp = bytes([0xC0, 0x01]) + bytes((seq * 7 + i) & 0xFF for i in range(10))
    return struct.pack("!HB", seq & 0xFFFF, len(ifp)) + ifp + b"\x00\x01\x00"


def test_t38_udptl_after_a_reinvite_is_not_rtp(tmp_path):
    """Audio, then a re-INVITE of the same ports to m=image udptl t38: the fax
    datagrams are neither RTP nor opaque voice, so the audio stream keeps
    exactly its own packets (Wireshark's count) and no stream is invented."""
    reinvite = INVITE.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE").replace(
        "m=audio 40000 RTP/AVP 97 101\r\na=rtpmap:97 AMR-WB/16000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "m=image 40000 udptl t38\r\na=T38FaxVersion:0\r\n")
    reok = OK.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE").replace(
        "m=audio 50000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", "m=image 50000 udptl t38\r\n")
    pkts = [udp("10.0.0.1", 5060, "10.0.0.2", 5060, INVITE.encode(), T0),
            udp("10.0.0.2", 5060, "10.0.0.1", 5060, OK.encode(), T0 + 0.2)]
    for i in range(100):
        pkts.append(udp("10.0.0.2", 50000, "10.0.0.1", 40000, rtp_packet(i, 320 * i, 0xA1, pt=97), T0 + 1 + 0.02 * i))
        pkts.append(udp("10.0.0.1", 40000, "10.0.0.2", 50000, rtp_packet(i, 960 * i, 0xB2, pt=111), T0 + 1.01 + 0.02 * i))
    pkts += [udp("10.0.0.1", 5060, "10.0.0.2", 5060, reinvite.encode(), T0 + 3.1),
             udp("10.0.0.2", 5060, "10.0.0.1", 5060, reok.encode(), T0 + 3.2)]
    for i in range(300):
        t = T0 + 3.3 + 0.03 * i
        pkts.append(udp("10.0.0.1", 40000, "10.0.0.2", 50000, udptl_packet(0x8000 + i), t))
        pkts.append(udp("10.0.0.2", 50000, "10.0.0.1", 40000, udptl_packet(0x9000 + i), t + 0.01))
    inv = inventory(tmp_path, pkts)
    assert sorted((s.kind, s.ssrc, len(s.packets)) for s in inv.streams) == [
        ("rtp", 0xA1, 100), ("rtp", 0xB2, 100)]


def test_sip_over_tcp_segments_is_read(tmp_path):
    pkts = [udp("10.0.0.2", 50000, "10.0.0.1", 40000, rtp_packet(i, 320 * i, 0xA1, pt=97), T0 + 0.02 * i) for i in range(2)]
    path = tmp_path / "tcp.pcap"
    wrpcap(str(path), pkts)
    cap = read_capture(path)
    tcp = [(1, int(T0 * 1e9), "10.0.0.1", 5060, "10.0.0.2", 5060, INVITE.encode())]
    inv = discover(cap.datagrams, capture_start_ns=cap.start_ns, tcp_signalling=tcp)
    (s,) = inv.streams
    assert (s.call_id, s.codec, s.clock_rate) == ("call-42@10.0.0.1", "AMR-WB", 16000)


def test_heuristic_never_fires_on_random_bytes(tmp_path):
    rng = np.random.default_rng(7)
    pkts = []
    for i in range(3000):
        payload = bytearray(rng.integers(0, 256, int(rng.integers(40, 300)), dtype=np.uint8).tobytes())
        payload[0] = 0x80 | (payload[0] & 0x3F)  # every packet claims RTP version 2
        pkts.append(udp("10.1.0.1", 30000 + 2 * (i % 5), "10.1.0.2", 40000 + 2 * (i % 3), bytes(payload), T0 + 0.01 * i))
    inv = inventory(tmp_path, pkts)
    assert [s for s in inv.streams if s.kind == "rtp"] == []


def test_heuristic_finds_rtp_on_any_port_and_infers_the_clock(tmp_path):
    pkts = [udp("10.2.0.1", 3001, "10.2.0.2", 3000, rtp_packet(65530 + i, 960 * i, 0xC0FFEE, pt=111, payload=b"\x78" * 60),
                T0 + 0.02 * i) for i in range(60)]
    inv = inventory(tmp_path, pkts)
    (s,) = inv.streams
    assert (s.kind, s.dst_port, s.ssrc, len(s.packets)) == ("rtp", 3000, 0xC0FFEE, 60)
    assert (s.payload_type, s.clock_rate, s.clock_source) == (111, 48000, "inferred")
    assert s.notes == ()  # the sequence wrap at 65535 is not a restart


def test_clock_is_not_inferred_from_a_burst(tmp_path):
    pkts = [udp("10.2.0.1", 3001, "10.2.0.2", 3000, rtp_packet(i, 960 * i, 0xB0B, pt=102), T0 + 0.001 * i) for i in range(8)]
    (s,) = inventory(tmp_path, pkts).streams
    assert (s.clock_rate, s.clock_source) == (None, "unknown")


def test_ssrc_change_and_sequence_restart_are_separate_notes_not_loss(tmp_path):
    pkts = [udp("10.3.0.1", 4000, "10.3.0.2", 4002, rtp_packet(i, 160 * i, 0x1), T0 + 0.02 * i) for i in range(20)]
    pkts += [udp("10.3.0.1", 4000, "10.3.0.2", 4002, rtp_packet(5000 + i, 160 * i, 0x1), T0 + 0.4 + 0.02 * i) for i in range(20)]
    pkts += [udp("10.3.0.1", 4000, "10.3.0.2", 4002, rtp_packet(i, 160 * i, 0x2), T0 + 0.8 + 0.02 * i) for i in range(20)]
    inv = inventory(tmp_path, pkts)
    a, b = inv.streams
    assert (a.ssrc, len(a.packets), b.ssrc, len(b.packets)) == (1, 40, 2, 20)
    assert len(a.notes) == 1 and "sequence restart" in a.notes[0] and "(19 -> 5000)" in a.notes[0]


def test_opaque_voice_found_but_not_dns_or_repeated_probes(tmp_path):
    rng = np.random.default_rng(3)
    pkts = []
    for i in range(250):  # 5 s at 50 pps, fresh ciphertext each time
        t = T0 + 0.02 * i + rng.normal(0, 0.002)
        pkts.append(udp("10.4.0.1", 31000, "10.4.0.2", 23000, b"\x17" + rng.bytes(119), t))
        pkts.append(udp("10.4.0.1", 53, "10.4.0.3", 5353 + 1, b"\x12" + rng.bytes(60), t))  # DNS port: never media
        pkts.append(udp("10.4.0.1", 41000, "10.4.0.4", 41000, b"probe-0001" * 8, t))  # same bytes each time
    pkts.sort(key=lambda p: p.time)
    inv = inventory(tmp_path, pkts)
    (s,) = inv.streams
    assert (s.kind, s.src_port, s.dst_port, len(s.packets), s.encrypted) == ("opaque", 31000, 23000, 250, True)
    assert s.ssrc is None and s.packets.seq is None


def test_zoom_sfu_encapsulated_rtp_is_found(tmp_path):
    # SFU header (type 5, 8 bytes), media header (type 0x0f audio, 19 bytes), RTP
    sfu = bytes([0x05]) + b"\x10" * 7
    media = bytes([0x0F]) + b"\x00" * 18
    pkts = [udp("10.5.0.1", 50000, "170.114.0.1", 8801, sfu + media + rtp_packet(i, 960 * i, 0x01000802, pt=113, payload=b"\x33" * 80),
                T0 + 0.02 * i) for i in range(60)]
    inv = inventory(tmp_path, pkts)
    (s,) = inv.streams
    assert (s.transport, s.ssrc, len(s.packets), s.clock_rate, s.encrypted) == ("zoom", 0x01000802, 60, 48000, True)


def test_decode_as_port_makes_a_short_flow_rtp(tmp_path):
    pkts = [udp("10.6.0.1", 12002, "10.6.0.2", 12344, rtp_packet(i, 160 * i, 0xD0D0, pt=3), T0 + 0.02 * i) for i in range(2)]
    assert inventory(tmp_path, pkts).streams == ()  # two packets: too few to confirm
    (s,) = inventory(tmp_path, pkts, decode_as=[12344]).streams
    assert (s.ssrc, len(s.packets), s.codec) == (0xD0D0, 2, "GSM")
