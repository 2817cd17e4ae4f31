"""media against Wireshark on the real captures in ../shared: the same streams, the same counts."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from callscope.capture import iter_datagrams, read_capture
from callscope.media import MediaColumns, discover, discover_columns, extract
from conftest import SHARED_CAPTURES, shared_capture_files

MIN_PACKETS = 20  # below this Wireshark's list is mostly one-packet junk (encrypted traffic)


def wireshark_streams(ref: Path) -> list[dict]:
    """Rows of ``tshark -z rtp,streams`` (read right to left: the payload column has spaces)."""
    out = []
    for line in ref.read_text(errors="replace").splitlines():
        tok = line.split()
        if len(tok) < 17 or not tok[6].startswith("0x"):
            continue
        if tok[-1] == "X":
            tok = tok[:-1]
        out.append(
            {"src": tok[2], "sport": int(tok[3]), "dst": tok[4], "dport": int(tok[5]),
             "ssrc": int(tok[6], 16), "packets": int(tok[-9])}
        )
    return out


@functools.cache
def inventory(name: str):
    path = SHARED_CAPTURES / name
    m = re.search(r"-d udp\.port==(\d+),rtp", (SHARED_CAPTURES / f"{name}.tshark-rtp.txt").read_text())
    cap = read_capture(path)
    return discover(cap.datagrams, capture_start_ns=cap.start_ns, tcp_signalling=cap.tcp_signalling,
                    decode_as=[int(m.group(1))] if m else [])


@pytest.mark.parametrize("capture", shared_capture_files(), ids=lambda p: p.name)
def test_streams_and_packet_counts_match_wireshark(shared_captures, capture):
    inv = inventory(capture.name)
    ours = {(s.src, s.src_port, s.dst, s.dst_port, s.ssrc): len(s.packets) for s in inv.streams if s.kind == "rtp"}
    for w in wireshark_streams(Path(f"{capture}.tshark-rtp.txt")):
        key = (w["src"], w["sport"], w["dst"], w["dport"], w["ssrc"])
        if w["packets"] >= MIN_PACKETS:
            assert ours.get(key) == w["packets"], key
        if key in ours:  # short streams we do report must agree too
            assert ours.pop(key) == w["packets"], key
    # every RTP stream we report beyond Wireshark's list is a real one
    assert all(n >= MIN_PACKETS for n in ours.values()), ours


def test_telegram_is_opaque_voice_not_junk_rtp(shared_captures):
    inv = inventory("nDPI__telegram.pcap")
    assert [s for s in inv.streams if s.kind == "rtp"] == []
    opaque = {(s.src, s.src_port, s.dst, s.dst_port): len(s.packets) for s in inv.streams if s.kind == "opaque"}
    assert opaque[("192.168.1.52", 31480, "192.168.1.77", 23174)] == 153
    assert opaque[("192.168.1.77", 23174, "192.168.1.52", 31480)] == 148
    assert all(s.encrypted and s.packets.seq is None for s in inv.streams)
    p2p = next(c for c in inv.calls if any(inv.stream(i).src_port == 31480 for i in c.stream_ids))
    assert {inv.stream(i).src_port for i in p2p.stream_ids} >= {31480, 23174}


def test_zoom_p2p_rtp_is_opened_and_probes_are_not_media(shared_captures):
    zoom = inventory("nDPI__zoom_p2p.pcapng")
    got = sorted((s.src_port, s.ssrc, len(s.packets), s.payload_type, s.transport) for s in zoom.streams)
    assert got == [
        (39065, 0x01000401, 107, 98, "zoom"),
        (46757, 0x01000801, 96, 98, "zoom"),
        (46757, 0x01000802, 44, 113, "zoom"),
    ]
    audio = next(s for s in zoom.streams if s.payload_type == 113)
    assert (audio.clock_rate, audio.clock_source, audio.encrypted) == (48000, "inferred", True)
    assert len(zoom.calls) == 1  # the connectivity probes to 10.78.14.178 are not media


def test_no_media_invented_in_background_traffic(shared_captures):
    heplify = inventory("heplify__rtp_rtcp_sip_ipv4_udp.pcap")
    assert {s.kind for s in heplify.streams} == {"rtp"}  # SNMP, MGCP, H.225 stay out


def test_ssrc_moving_between_paths_is_linked(shared_captures):
    inv = inventory("rtpproxy__DLT_NULL.a.pcap")
    moved = [s for s in inv.streams if s.ssrc == 0x9C49CA0A]
    assert sorted(len(s.packets) for s in moved) == [51, 249]
    assert all(any("same SSRC as" in n for n in s.notes) for s in moved)
    cap = read_capture(SHARED_CAPTURES / "rtpproxy__DLT_NULL.a.pcap")  # Wireshark needed -d; we do not
    plain = discover(cap.datagrams, capture_start_ns=cap.start_ns)
    assert sorted(len(s.packets) for s in plain.streams) == [51, 249, 300]
    wa = inventory("nDPI__wa_voice.pcap")
    relay_then_p2p = sorted(s.src_port for s in wa.streams if s.ssrc == 0x87FAB2D7)
    assert relay_then_p2p == [3478, 32704] and len(wa.calls) == 1


def test_sip_call_groups_both_directions_with_sdp_codec(shared_captures):
    inv = inventory("heplify__rtp_rtcp_sip_ipv4_udp.pcap")
    call = next(c for c in inv.calls if c.call_id == "12013223@200.57.7.195")
    assert len(call.stream_ids) == 4 and call.session_name == "Clarent C5CM"
    signalled = [s for s in inv.streams if s.call_id == call.call_id]
    assert {(s.codec.upper(), s.clock_rate, s.clock_source) for s in signalled} == {("PCMA", 8000, "sdp")}
    assert inv.rtcp.packets == 28 and inv.rtcp.encrypted == 0
    rtts = [b.rtt_s for b in inv.rtcp.report_blocks if b.rtt_s is not None]
    assert len(rtts) >= 8 and all(0 <= r < 0.01 for r in rtts)


def test_srtcp_and_stun_of_messenger_calls(shared_captures):
    wa = inventory("nDPI__wa_voice.pcap")
    assert (wa.rtcp.packets, wa.rtcp.encrypted) == (41, 39) and all(s.encrypted for s in wa.streams)
    relay = next(e for e in wa.stun.exchanges if e.server == "31.13.86.48")
    assert (relay.allocate_requests, relay.allocate_success) == (8, 8)
    signal = inventory("nDPI__stun_signal.pcapng")
    blocked = {(e.server, e.server_port) for e in signal.stun.unanswered}
    assert ("35.158.183.167", 443) in blocked


def test_chunked_reduction_gives_the_same_streams(shared_captures):
    path = SHARED_CAPTURES / "lundgrel__sipp_uac_ssrc_change.pcap"
    cap = read_capture(path)
    parts = [extract(d) for d in iter_datagrams(path, chunk_bytes=200_000)]
    assert len(parts) > 3
    chunked = discover_columns(MediaColumns.concat(parts), capture_start_ns=cap.start_ns)
    whole = inventory(path.name)
    assert [(s.id, s.label, len(s.packets)) for s in chunked.streams] == [
        (s.id, s.label, len(s.packets)) for s in whole.streams
    ]
