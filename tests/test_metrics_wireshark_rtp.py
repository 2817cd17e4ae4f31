"""Our port of Wireshark's rtp,streams against hand-computed cases and Wireshark itself."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from callscope.metrics import wireshark_rtp as ws
from conftest import FIXTURES, shared_capture_files

ROW = re.compile(
    r"^\s*[\d.]+\s+[\d.]+\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+(?P<dport>\d+)\s+"
    r"(?P<ssrc>0x[0-9A-Fa-f]+)\s+.*?\s+(?P<pkts>\d+)\s+(?P<lost>-?\d+)\s+\([-\d.]+%\)\s+"
    r"(?P<dmin>-?[\d.]+)\s+(?P<dmean>[\d.]+)\s+(?P<dmax>[\d.]+)\s+"
    r"(?P<jmin>-?[\d.]+)\s+(?P<jmean>[\d.]+)\s+(?P<jmax>[\d.]+)\s*X?\s*$"
)


def _stream(seq, ts, time_ms, pt=8, marker=None):
    n = len(seq)
    pt_arr = np.full(n, pt, np.uint8) if np.isscalar(pt) else np.asarray(pt, np.uint8)
    return dict(
        time_s=np.asarray(time_ms, float) / 1000,
        seq=np.asarray(seq, np.uint16),
        ts=np.asarray(ts, np.uint32),
        pt=pt_arr,
        marker=np.zeros(n, bool) if marker is None else np.asarray(marker, bool),
        clock=ws.packet_clock_rates(pt_arr, None, None),
    )


def test_jitter_follows_rfc3550_recurrence_in_ms():
    # PCMA, 20 ms packets; the third arrives 8 ms late, the fourth on time.
    s = _stream([1, 2, 3, 4], [0, 160, 320, 480], [0, 20, 48, 60])
    r = ws.analyze(**s)
    # D: |20-20| = 0, |48-(20+20)| = 8, |60-(48+20)| = 8
    j = np.array([0.0, 0.5, 0.5 * 15 / 16 + 0.5])
    assert r.max_jitter_ms == pytest.approx(j.max())
    assert r.mean_jitter_ms == pytest.approx(j.mean())
    assert r.max_delta_ms == pytest.approx(28.0)
    assert r.min_delta_ms == pytest.approx(12.0)
    assert r.lost == 0 and r.expected == 4


def test_marker_and_comfort_noise_packets_are_left_out_of_delta_statistics():
    # packet 2 has the marker after a 100 ms pause; packet 3 is CN (PT 13);
    # packet 4 follows CN: none of them counts for max delta.
    s = _stream(
        [1, 2, 3, 4, 5],
        [0, 960, 1120, 1280, 1440],
        [0, 120, 140, 200, 220],
        pt=[8, 8, 13, 8, 8],
        marker=[0, 1, 0, 0, 0],
    )
    r = ws.analyze(**s)
    assert r.regular.tolist() == [False, False, False, False, True]
    assert r.max_delta_ms == pytest.approx(20.0)
    # Wireshark's running mean divides by total_nr (4 packets before the 5th)
    assert r.mean_delta_ms == pytest.approx(20.0 / 4)


def test_telephone_event_packets_get_no_clock_and_no_jitter():
    clock = ws.packet_clock_rates(np.array([96, 101, 0, 9]), 96, 48000)
    assert clock.tolist() == [48000, 0, 8000, 8000]


def test_duplicate_makes_lost_negative_like_wireshark():
    s = _stream([1, 2, 2, 3], [0, 160, 160, 320], [0, 20, 21, 40])
    r = ws.analyze(**s)
    assert r.expected == 3 and r.lost == -1


def test_sequence_wrap_counts_one_cycle():
    seq = [65534, 65535, 0, 1]
    s = _stream(seq, [0, 160, 320, 480], [0, 20, 40, 60])
    r = ws.analyze(**s)
    assert r.seq_cycles == 1 and r.expected == 4 and r.lost == 0


def test_running_mean_matches_the_sequential_update():
    rng = np.random.default_rng(1)
    x = rng.random(50)
    n = np.sort(rng.choice(np.arange(1, 200), 50, replace=False))
    m = 0.0
    for xi, ni in zip(x, n, strict=True):
        m = (m * (ni - 1) + xi) / ni
    assert ws.wireshark_running_mean(x, n) == pytest.approx(m, rel=1e-12)


def _wireshark_rows(path: Path) -> list[dict]:
    ref = path.parent / (path.name + ".tshark-rtp.txt")
    return [m.groupdict() for m in map(ROW.match, ref.read_text().splitlines()) if m]


def _check_capture(path: Path) -> int:
    """Compare every Wireshark stream of >= 2 packets in a capture; returns how many."""
    from callscope.capture.reader import read_capture
    from callscope.media import discover
    from callscope.metrics import measure

    cap = read_capture(path)
    inv = discover(cap.datagrams, capture_start_ns=cap.start_ns, tcp_signalling=cap.tcp_signalling)
    compared = 0
    for row in _wireshark_rows(path):
        if int(row["pkts"]) < 20:
            continue
        ssrc = int(row["ssrc"], 16)
        cand = [
            s
            for s in inv.streams
            if s.ssrc == ssrc
            and s.src_port == int(row["sport"])
            and s.dst_port == int(row["dport"])
        ]
        assert cand, f"{path.name}: stream {row['ssrc']} not found"
        m = measure(cand[0])
        where = f"{path.name} {row['ssrc']}"
        assert m.packets == int(row["pkts"]), where
        assert m.lost == int(row["lost"]), where
        assert m.delta_max_ms == pytest.approx(float(row["dmax"]), abs=0.0011), where
        assert m.delta_mean_ms == pytest.approx(float(row["dmean"]), abs=0.0011), where
        assert m.delta_min_ms == pytest.approx(float(row["dmin"]), abs=0.0011), where
        if float(row["jmax"]) > 0:
            assert m.jitter_mean_ms == pytest.approx(float(row["jmean"]), abs=0.0011), where
            assert m.jitter_max_ms == pytest.approx(float(row["jmax"]), abs=0.0011), where
        compared += 1
    return compared


@pytest.mark.parametrize(
    "name", ["rtpproxy__lost.a.pcap", "rtpproxy__dups.a.pcap", "rtpproxy__G723_1.a.pcap"]
)
def test_fixture_streams_match_wireshark_to_the_printed_digit(name):
    assert _check_capture(FIXTURES / name) == 1


@pytest.mark.parametrize("path", shared_capture_files(), ids=lambda p: p.name)
def test_shared_capture_streams_match_wireshark(path, shared_captures):
    _check_capture(path)


def test_timestamp_wrap_keeps_packets_in_time_sequence():
    ts = np.array([2**32 - 320, 2**32 - 160, 0, 160], np.uint32)
    s = _stream([1, 2, 3, 4], ts, [0, 20, 40, 60])
    r = ws.analyze(**s)
    assert r.in_time.all() and r.regular[1:].all()
    assert r.max_jitter_ms == pytest.approx(0.0, abs=1e-9)


def test_packet_before_the_first_timestamp_is_out_of_time_and_skipped():
    # the third packet carries a timestamp older than the first: WRONG_TIMESTAMP
    s = _stream([2, 3, 1, 4], [160, 320, 0, 480], [0, 20, 25, 40])
    r = ws.analyze(**s)
    assert r.in_time.tolist() == [True, True, False, True]
    assert r.max_delta_ms == pytest.approx(20.0)  # 4th measured from the 2nd, not the 3rd


def _crafted_stream(seed: int):
    """PCMU across a sequence and timestamp wrap, with RFC 4733 events (PT 101),
    comfort noise, marker bits, 5 % loss, one swap and a late duplicate at the end."""
    rng = np.random.default_rng(seed)
    n = 400
    seq = (65400 + np.arange(n)) % 65536
    ts = (2**32 - 30000 + np.arange(n) * 160) % 2**32
    t = np.round(1.0 + np.arange(n) * 0.02 + np.abs(rng.normal(0, 0.004, n)), 6)
    pt = np.zeros(n, np.int64)
    marker = np.zeros(n, bool)
    pt[150:156] = 101
    ts[150:156] = ts[150]
    marker[[150, 156, 300]] = True
    pt[250] = 13
    idx = np.flatnonzero(rng.random(n) > 0.05)
    idx = np.concatenate([idx[:200], [idx[201], idx[200]], idx[202:], [idx[50]]])
    tt = np.sort(t[idx])
    tt[-1] = tt[-2] + 0.001
    return seq[idx], ts[idx], tt, pt[idx], marker[idx]


@pytest.mark.slow
def test_crafted_stream_matches_tshark(tmp_path, tshark):
    import struct
    import subprocess

    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    seq, ts, t, pt, marker = _crafted_stream(0)
    packets = []
    for s_, ts_, t_, pt_, m_ in zip(seq, ts, t, pt, marker, strict=True):
        hdr = struct.pack(
            "!BBHII", 0x80, (0x80 if m_ else 0) | int(pt_), int(s_), int(ts_), 0x11223344
        )
        p = (
            Ether()
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=40000, dport=50000)
            / Raw(hdr + bytes(160))
        )
        p.time = float(t_)
        packets.append(p)
    path = tmp_path / "crafted.pcap"
    wrpcap(str(path), packets)
    out = subprocess.run(
        [tshark, "-r", str(path), "-q", "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    row = next(m.groupdict() for m in map(ROW.match, out.splitlines()) if m)
    r = ws.analyze(t - t[0], seq, ts, pt, marker, ws.packet_clock_rates(pt, None, None))
    assert (r.packets, r.lost) == (int(row["pkts"]), int(row["lost"]))
    for ours, col in [
        (r.min_delta_ms, "dmin"), (r.mean_delta_ms, "dmean"), (r.max_delta_ms, "dmax"),
        (r.min_jitter_ms, "jmin"), (r.mean_jitter_ms, "jmean"), (r.max_jitter_ms, "jmax"),
    ]:  # fmt: skip
        assert ours == pytest.approx(float(row[col]), abs=0.0011), col
