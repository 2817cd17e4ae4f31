"""The Wireshark-backed decoder builds the same datagram table as the built-in
reader wherever both can read, and reaches inside tunnels the built-in reader
cannot (VXLAN, GTP-U, GRE, IP-in-IP)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from callscope.capture import address_to_str, open_capture, read_capture
from callscope.capture.tshark_decoder import find_tshark, read_capture_wireshark
from callscope.errors import (
    CaptureError,
    EmptyCaptureError,
    TruncatedCaptureWarning,
    UnreadableCaptureError,
)
from conftest import FIXTURES, shared_capture_files

scapy = pytest.importorskip("scapy.all")
from scapy.contrib.gtp import GTP_U_Header  # noqa: E402
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.rtp import RTP  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402
from scapy.packet import Raw  # noqa: E402

COLUMNS = ("frame", "time_ns", "ip_version", "src", "dst", "sport", "dport",
           "udp_payload_len", "payload_caplen", "frame_caplen", "frame_len")

MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def _payload_bytes(d) -> np.ndarray:
    """Every row's captured payload, concatenated in row order."""
    idx = np.repeat(d.payload_start - np.concatenate([[0], np.cumsum(d.payload_caplen)[:-1]]), d.payload_caplen)
    return d.data[idx + np.arange(idx.size)] if idx.size else np.zeros(0, np.uint8)


def _assert_same_table(a, b, skip: tuple[str, ...] = ()) -> None:
    assert len(a) == len(b)
    for name in COLUMNS:
        if name not in skip:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(_payload_bytes(a), _payload_bytes(b))


def _all_captures():
    """The fixtures, then the shared captures not already among them (those marked slow)."""
    fixtures = sorted(FIXTURES.glob("*.pcap"))
    names = {p.name for p in fixtures}
    return fixtures + [pytest.param(p, marks=pytest.mark.slow) for p in shared_capture_files() if p.name not in names]


@pytest.mark.parametrize("path", _all_captures(), ids=lambda p: p.name)
def test_both_decoders_give_the_same_datagram_table(tshark, path):
    builtin = read_capture(path)
    ws = read_capture_wireshark(path)
    _assert_same_table(builtin.datagrams, ws.datagrams)
    assert ws.info.packets == builtin.info.packets
    assert ws.info.udp_datagrams == builtin.info.udp_datagrams
    assert (ws.info.first_time_ns, ws.info.last_time_ns) == (builtin.info.first_time_ns, builtin.info.last_time_ns)
    assert ws.info.other == builtin.info.other  # ICMP quoting UDP counted as ICMP by both
    assert (ws.info.format, ws.info.byte_order) == (builtin.info.format, builtin.info.byte_order)


def _write(path, packets) -> str:
    scapy.wrpcap(str(path), packets)
    return str(path)


def _rtp(i: int, seq: int, t: float, src="10.9.0.1", dst="10.9.0.2", ssrc=0x1234):
    pkt = IP(src=src, dst=dst) / UDP(sport=40000, dport=40002) / RTP(
        version=2, payload_type=0, sequence=seq, timestamp=160 * i, sourcesync=ssrc) / Raw(b"\xff" * 160)
    return pkt, t


TUNNELS = {
    "vxlan": lambda inner: Ether(**MAC) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=51000, dport=4789)
    / VXLAN(vni=42) / Ether(**MAC) / inner,
    "gtp-u": lambda inner: Ether(**MAC) / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=2152, dport=2152)
    / GTP_U_Header(teid=7) / inner,
    "gre": lambda inner: Ether(**MAC) / IP(src="203.0.113.1", dst="203.0.113.2") / GRE() / inner,
    "ip-in-ip": lambda inner: Ether(**MAC) / IP(src="203.0.113.5", dst="203.0.113.6") / inner,
}
DROPPED = (10, 11, 30)  # injected loss: 3 sequence numbers never sent
SENT = 60


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_rtp_inside_a_tunnel_is_measured_through_the_wireshark_decoder(tshark, tmp_path, tunnel):
    import callscope

    frames = []
    for i in range(SENT):
        if i in DROPPED:
            continue
        inner, t = _rtp(i, 5000 + i, 1_700_000_000 + i * 0.02)
        f = TUNNELS[tunnel](inner)
        f.time = t
        frames.append(f)
    path = _write(tmp_path / f"{tunnel}.pcap", frames)

    d = read_capture_wireshark(path).datagrams
    assert len(d) == SENT - len(DROPPED)
    assert {address_to_str(a) for a in d.src} == {"10.9.0.1"}  # the innermost IP layer
    assert set(d.dport.tolist()) == {40002}
    assert set(d.udp_payload_len.tolist()) == {12 + 160}

    report = callscope.analyze(path, decoder="wireshark")
    rtp = [s for s in report.streams if s.kind == "rtp"]
    assert [(s.src, s.src_port, s.dst, s.dst_port, s.ssrc) for s in rtp] == [("10.9.0.1", 40000, "10.9.0.2", 40002, 0x1234)]
    m = report.metrics[rtp[0].id]
    assert (m.packets, m.lost, m.missing, m.duplicates) == (SENT - len(DROPPED), 3, 3, 0)
    assert m.delta_max_ms == pytest.approx(60.0, abs=1e-6)  # 2 consecutive losses: a 3-interval gap

    builtin = callscope.analyze(path)  # sees only the tunnel's outer packets
    assert not [s for s in builtin.streams if s.kind == "rtp" and s.ssrc == 0x1234 and s.src == "10.9.0.1"]


def test_an_icmp_error_quoting_udp_is_not_a_datagram(tshark, tmp_path):
    inner, _ = _rtp(0, 1, 0)
    quoted = Ether(**MAC) / IP(src="10.9.0.2", dst="10.9.0.1") / ICMP(type=3, code=3) / bytes(inner)[:28]
    path = _write(tmp_path / "icmp.pcap", [Ether(**MAC) / inner, quoted])
    ws = read_capture_wireshark(path)
    assert ws.datagrams.frame.tolist() == [1]
    assert ws.info.other["icmp"] == 1


def test_fragments_are_reassembled_into_the_frame_that_completes_them(tshark, tmp_path):
    big = IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=5060, dport=5060) / Raw(b"B" * 3000)
    path = _write(tmp_path / "frag.pcap", [Ether(**MAC) / f for f in scapy.fragment(big, fragsize=1000)])
    builtin, ws = read_capture(path), read_capture_wireshark(path)
    # The built-in reader gives a reassembled row the datagram's length as frame length.
    _assert_same_table(builtin.datagrams, ws.datagrams, skip=("frame_caplen", "frame_len"))
    assert ws.datagrams.frame.tolist() == [4]
    assert ws.datagrams.udp_payload_len.tolist() == [3000]
    assert ws.datagrams.frame_caplen.tolist() == [14 + 20 + 8]  # the last fragment's own frame
    assert (ws.info.reassembled, ws.info.other["ipv4-fragment"]) == (1, 4)


def test_nanosecond_timestamps_survive_to_the_last_digit(tshark, tmp_path):
    from callscope.capture.writer import write_pcap

    t = np.array([1_700_000_000_123_456_789, 1_700_000_000_987_654_321], np.int64)
    payload = np.frombuffer(b"x" * 20, np.uint8)
    path = tmp_path / "ns.pcap"
    write_pcap(path, t, np.array([0x0A000001] * 2, np.uint32), np.array([0x0A000002] * 2, np.uint32),
               np.array([1000, 1000]), np.array([2000, 2000]), payload, np.array([0, 10]), np.array([10, 10]),
               nanosecond=True)
    ws = read_capture_wireshark(path)
    assert ws.datagrams.time_ns.tolist() == t.tolist()
    assert ws.info.format == "pcap-ns"


def test_snaplen_cut_payloads_keep_their_wire_length(tshark):
    ws = read_capture_wireshark(FIXTURES / "rtpproxy__lost.a.pcap")
    assert ws.info.snaplen_truncated == int(np.count_nonzero(ws.datagrams.payload_caplen < ws.datagrams.udp_payload_len))


def test_sip_over_tcp_is_kept_as_signalling_like_the_builtin_reader(tshark, tmp_path):
    invite = (b"INVITE sip:bob@example.org SIP/2.0\r\nCall-ID: abc@host\r\nContent-Length: 0\r\n\r\n")
    seg = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40123, dport=5060, flags="PA", seq=1) / Raw(invite)
    other = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.3") / TCP(sport=40124, dport=80, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n")
    path = _write(tmp_path / "sip-tcp.pcap", [other, seg])
    ws = read_capture_wireshark(path).tcp_signalling
    assert ws == read_capture(path).tcp_signalling
    assert [(row[0], row[3], row[5]) for row in ws] == [(2, 40123, 5060)]


def test_a_cut_off_capture_is_read_up_to_the_cut_with_a_warning(tshark, tmp_path):
    data = (FIXTURES / "rtpproxy__lost.a.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-30])
    with pytest.warns(TruncatedCaptureWarning):
        ws = read_capture_wireshark(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builtin = read_capture(path)
    assert ws.info.truncated
    _assert_same_table(builtin.datagrams, ws.datagrams)


def test_missing_and_empty_files_raise_the_readers_errors(tshark, tmp_path):
    with pytest.raises(UnreadableCaptureError, match="no such file"):
        read_capture_wireshark(tmp_path / "absent.pcap")
    (tmp_path / "empty.pcap").write_bytes(b"")
    with pytest.raises(EmptyCaptureError):
        read_capture_wireshark(tmp_path / "empty.pcap")


def test_without_tshark_on_path_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no tshark anywhere on PATH
    with pytest.raises(CaptureError, match="tshark is not on PATH.*apt-get install tshark"):
        find_tshark()
    with pytest.raises(CaptureError, match="apt-get install tshark"):
        open_capture(FIXTURES / "rtpproxy__lost.a.pcap", "wireshark")


def test_tshark_is_the_one_on_path_with_its_version(tshark, monkeypatch, tmp_path):
    # a wrapper earlier on PATH is the tshark used: found by shutil.which, as a shell would
    wrapper = tmp_path / "tshark"
    wrapper.write_text(f'#!/bin/sh\nexec {tshark} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    found = find_tshark()
    assert found.path == str(wrapper)
    assert re.fullmatch(r"\d+\.\d+\.\d+", found.version)


def test_a_tshark_without_a_version_line_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "tshark"
    fake.write_text("#!/bin/sh\necho 'not wireshark'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(CaptureError, match="no version in 'not wireshark'"):
        find_tshark()


def test_info_reads_through_wireshark_on_request(tshark, tmp_path):
    from click.testing import CliRunner

    from callscope.cli import cli

    frames = []
    for i in range(5):
        f = TUNNELS["gtp-u"](_rtp(i, i, 0)[0])
        f.time = 1_700_000_000 + i * 0.02
        frames.append(f)
    path = _write(tmp_path / "gtp.pcap", frames)
    out = CliRunner().invoke(cli, ["info", "--decoder", "wireshark", "--format", "json", path])
    assert out.exit_code == 0, out.output
    import json

    doc = json.loads(out.output)[0]
    assert [(f["src"], f["src_port"], f["packets"]) for f in doc["flows"]] == [("10.9.0.1", 40000, 5)]


def test_a_link_type_the_builtin_reader_refuses_is_read_through_wireshark(tshark, tmp_path):
    import struct

    from callscope.errors import UnsupportedLinkTypeError

    ppp_ip = 0x0021  # RFC 1332: PPP protocol number of IPv4
    inner = bytes(_rtp(0, 7, 0)[0])
    frame = struct.pack(">BBH", 0xFF, 0x03, ppp_ip) + inner  # RFC 1662 §3.1 address/control, then protocol
    path = tmp_path / "ppp.pcap"
    linktype_ppp = 9
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype_ppp)
                     + struct.pack("<IIII", 1_700_000_000, 250, len(frame), len(frame)) + frame)
    with pytest.raises(UnsupportedLinkTypeError, match="--decoder wireshark"):
        read_capture(path)
    d = read_capture_wireshark(path).datagrams
    assert (d.frame.tolist(), d.time_ns.tolist(), d.sport.tolist()) == ([1], [1_700_000_000_000_250_000], [40000])
    assert d.payload(0)[:4] == bytes(RTP(version=2, payload_type=0, sequence=7, sourcesync=0x1234))[:4]
