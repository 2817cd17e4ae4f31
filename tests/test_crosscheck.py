"""``callscope crosscheck``: Wireshark's rtp,streams beside callscope's figures;
deliberate differences explained, anything else fails with exit 1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from callscope.cli import cli
from callscope.crosscheck import EXPLAINED, SAME, UNEXPLAINED, crosscheck, parse_rtp_streams
from conftest import FIXTURES, SHARED_CAPTURES

scapy = pytest.importorskip("scapy.all")
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.rtp import RTP  # noqa: E402
from scapy.packet import Raw  # noqa: E402

MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


@pytest.mark.parametrize(
    ("name", "decode_as"),
    [("rtpproxy__lost.a.pcap", ()), ("rtpproxy__G723_1.a.pcap", ()), ("rtpproxy__dups.a.pcap", ()),
     ("rtpproxy__DLT_NULL.a.pcap", (12344,))],
)
def test_fixtures_have_no_unexplained_difference(tshark, name, decode_as):
    result = crosscheck(FIXTURES / name, decode_as=decode_as)
    assert result.ok, [(s.label, s.status, s.reason, s.figures) for s in result.streams]
    assert result.streams


def test_lost_figures_of_a_clean_loss_capture_agree(tshark):
    (s,) = crosscheck(FIXTURES / "rtpproxy__lost.a.pcap").streams
    figures = {f.name: f for f in s.figures}
    assert (figures["packets"].wireshark, figures["packets"].callscope) == (244, 244)
    assert (figures["lost"].wireshark, figures["lost"].callscope, figures["lost"].status) == (321, 321, SAME)
    assert figures["delta_max_ms"].callscope == pytest.approx(280.388, abs=0.01)


def test_a_duplicate_is_explained_as_wiresharks_negative_loss(tshark):
    (s,) = crosscheck(FIXTURES / "rtpproxy__dups.a.pcap").streams
    lost = {f.name: f for f in s.figures}["lost"]
    assert (lost.wireshark, lost.callscope, lost.status) == (-1, 0, EXPLAINED)
    assert "1 duplicate copy cancels one loss" in lost.reason
    assert s.status == EXPLAINED


def test_decode_as_lets_wireshark_see_a_port_another_dissector_takes(tshark):
    without = crosscheck(FIXTURES / "rtpproxy__DLT_NULL.a.pcap")
    assert [s.wireshark for s in without.streams] == [None] * 3
    assert all("--decode-as 12344" in s.reason for s in without.streams)
    with_port = crosscheck(FIXTURES / "rtpproxy__DLT_NULL.a.pcap", decode_as=(12344,))
    assert sorted(s.wireshark.packets for s in with_port.streams) == [51, 249, 300]
    assert {s.status for s in with_port.streams} == {SAME}


def _restart_capture(path) -> str:
    """One SSRC whose sender restarts: sequence 1000.. then 20000.., new timestamp base; 2 packets lost."""
    frames = []
    for i in range(100):
        seq, ts = (1000 + i, 160 * i) if i < 50 else (20000 + i - 50, 900_000_000 + 160 * (i - 50))
        if i in (20, 70):
            continue
        f = (Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=30000, dport=30002)
             / RTP(version=2, payload_type=0, sequence=seq, timestamp=ts, sourcesync=0xCAFE) / Raw(b"\xd5" * 160))
        f.time = 1_700_000_000 + i * 0.02
        frames.append(f)
    scapy.wrpcap(str(path), frames)
    return str(path)


def test_a_sequence_restart_is_explained_not_counted_as_loss(tshark, tmp_path):
    (s,) = crosscheck(_restart_capture(tmp_path / "restart.pcap")).streams
    figures = {f.name: f for f in s.figures}
    assert figures["packets"].status == SAME
    lost = figures["lost"]
    # Wireshark: expected = 20049 - 1000 + 1 = 19050, lost = 19050 - 98
    assert (lost.wireshark, lost.callscope, lost.status) == (18952, 2, EXPLAINED)
    assert "restarted 1 time" in lost.reason


def test_one_packet_heuristic_streams_in_encrypted_traffic_are_explained(tshark, shared_captures):
    result = crosscheck(shared_captures / "nDPI__telegram.pcap")
    only_ws = [s for s in result.streams if s.stream_id is None]
    assert len(only_ws) == 26 and all(s.wireshark.packets == 1 for s in only_ws)
    assert all(s.status == EXPLAINED and "rejects it as junk" in s.reason for s in only_ws)
    opaque = [s for s in result.streams if s.wireshark is None]
    assert opaque and all("opaque media" in s.reason for s in opaque)
    assert result.ok


def test_an_inferred_clock_rate_explains_wiresharks_zero_jitter(tshark, shared_captures):
    (s,) = crosscheck(shared_captures / "asterisk__opus-2013785496.pcap").streams
    jitter = {f.name: f for f in s.figures}["jitter_max_ms"]
    assert jitter.wireshark == 0.0 and jitter.callscope > 1.0
    assert jitter.status == EXPLAINED and "dynamic payload type 96" in jitter.reason


def test_parse_rtp_streams_reads_one_packet_rows():
    text = (SHARED_CAPTURES / "nDPI__telegram.pcap.tshark-rtp.txt")
    if not text.exists():
        pytest.skip("shared captures absent")
    rows = parse_rtp_streams(text.read_text())
    assert len(rows) == 26
    assert (rows[0].ssrc, rows[0].packets, rows[0].lost, rows[0].delta_max_ms) == (0xF57747C4, 1, 0, 0.0)


def test_cli_prints_both_columns_and_exits_0_when_explained(tshark):
    out = CliRunner().invoke(cli, ["crosscheck", str(FIXTURES / "rtpproxy__dups.a.pcap")])
    assert out.exit_code == 0, out.output
    assert "lost" in out.output and "explained: " in out.output
    assert "1 stream(s): 0 same, 1 differ as explained, 0 differ unexplained" in out.output


def test_cli_json_and_exit_1_on_an_unexplained_difference(tshark, monkeypatch):
    import dataclasses

    import callscope.crosscheck as cc

    real = cc.wireshark_rtp_streams

    def off_by_one(path, decode_as=()):
        rows, version = real(path, decode_as)
        return tuple(dataclasses.replace(r, packets=r.packets + 1) for r in rows), version

    monkeypatch.setattr(cc, "wireshark_rtp_streams", off_by_one)
    out = CliRunner().invoke(cli, ["crosscheck", "--format", "json", str(FIXTURES / "rtpproxy__lost.a.pcap")])
    assert out.exit_code == 1
    doc = json.loads(out.output)
    assert (doc["ok"], doc["unexplained"]) == (False, 1)
    packets = doc["streams"][0]["figures"][0]
    assert (packets["name"], packets["wireshark"], packets["callscope"], packets["status"]) == (
        "packets", 245, 244, UNEXPLAINED)
