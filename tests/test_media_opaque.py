"""media: opaque voice under heavy jitter and at long G.711 frames, but never video or bulk data."""

from __future__ import annotations

import numpy as np
import pytest

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import IP, UDP, Ether, Raw, wrpcap  # noqa: E402

from callscope.capture import read_capture  # noqa: E402
from callscope.media import discover, opaque  # noqa: E402

T0 = 1_700_000_000.0


def flow(rng, sport: int, times: np.ndarray, sizes: np.ndarray, dport: int | None = None,
         src: str = "10.6.0.1", dst: str = "10.6.0.2") -> list:
    """One directed flow of fresh ciphertext (random bytes) at the given arrival times."""
    out = []
    dport = sport + 1 if dport is None else dport
    for t, n in zip(times, sizes, strict=True):
        p = Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(rng.bytes(int(n)))
        p.time = T0 + float(t)
        out.append(p)
    return out


def opaque_ports(tmp_path, packets) -> dict[int, int]:
    path = tmp_path / "opaque.pcap"
    wrpcap(str(path), sorted(packets, key=lambda p: p.time))
    cap = read_capture(path)
    inv = discover(cap.datagrams, capture_start_ns=cap.start_ns, tcp_signalling=cap.tcp_signalling)
    return {s.src_port: len(s.packets) for s in inv.streams if s.kind == "opaque"}


def test_voice_scattered_by_heavy_jitter_is_still_voice(tmp_path):
    # 10 s at 50 pps, each packet delayed by |N(0, 100 ms)|: arrival gaps
    # scatter (fewer than half within a factor 2 of their median), the count
    # per second does not.
    rng = np.random.default_rng(7)
    sent = 0.02 * np.arange(500)
    arrival = np.sort(sent + np.abs(rng.normal(0.0, 0.1, sent.size)))
    gaps = np.diff(arrival)
    med = np.median(gaps)
    assert np.mean((gaps >= med / 2) & (gaps <= 2 * med)) < 0.5
    assert opaque_ports(tmp_path, flow(rng, 31000, arrival, np.full(500, 120))) == {31000: 500}


def test_g711_at_60_ms_frames_is_voice(tmp_path):
    # 480 bytes of G.711 payload per 60 ms frame plus a 24-byte header: 504 bytes.
    rng = np.random.default_rng(8)
    times = 0.06 * np.arange(150) + rng.normal(0.0, 0.002, 150)
    assert opaque_ports(tmp_path, flow(rng, 32000, times, np.full(150, 504))) == {32000: 150}


def test_steady_mid_sized_packets_of_varying_size_are_not_voice(tmp_path):
    # 25 pps for 10 s like 60 ms voice, but sizes spread over 320-560 bytes
    # (video or data): no constant-bitrate codec sends that.
    rng = np.random.default_rng(9)
    times = 0.04 * np.arange(250)
    assert opaque_ports(tmp_path, flow(rng, 33000, times, rng.integers(320, 560, 250))) == {}


def test_steady_large_packets_are_not_voice(tmp_path):
    rng = np.random.default_rng(10)
    times = 0.02 * np.arange(250)
    assert opaque_ports(tmp_path, flow(rng, 34000, times, np.full(250, 1100))) == {}


def _behind_bursty_cross_traffic(rng, n: int) -> np.ndarray:
    """Arrivals of 20 ms voice through a queue shared with on/off cross traffic:
    while a burst is on (exponential, mean 1.2 s on, 1.0 s off) the link lets
    the call through three packets back to back every 90 ms, as a tbf shared
    with clumped cross traffic did in the lab (seed 6, tbf 321 kbit/s)."""
    sent = 0.02 * np.arange(n)
    bursts, t = [], 0.5
    while t < sent[-1]:
        on = rng.exponential(1.2)
        bursts.append((t, t + on))
        t += on + rng.exponential(1.0)
    out, free, credit = np.empty(n), 0.0, 0
    for i, s in enumerate(sent):
        a = max(s, free)
        burst = next((b for b in bursts if b[0] <= a < b[1]), None)
        if burst is None:
            credit = 0
        else:
            if credit == 0:
                a = burst[0] + 0.09 * np.ceil((a - burst[0]) / 0.09 + 1e-9)
                credit = 3
            credit -= 1
        out[i] = a
        free = a + 0.0028
    return out


def test_return_direction_scattered_by_a_shared_queue_is_the_call(tmp_path):
    rng = np.random.default_rng(5)
    back = _behind_bursty_cross_traffic(rng, 1250)
    # Neither cadence test holds on the queued direction by itself ...
    assert not opaque._steady_intervals(back) and not opaque._steady_rate(back)
    sizes = np.full(1250, 83)
    alone = flow(rng, 40000, back, sizes, dport=40002, src="10.6.0.2", dst="10.6.0.1")
    assert opaque_ports(tmp_path, alone) == {}
    # ... but as the reverse of a steady voice flow it is the call's other party.
    forth = flow(rng, 40002, 0.02 * np.arange(1250) + 0.005, sizes, dport=40000)
    assert opaque_ports(tmp_path, forth + alone) == {40002: 1250, 40000: 1250}
    # A reverse flow of keep-alives (one every 2 s) stays out.
    keep = flow(rng, 40000, 2.0 * np.arange(60), np.full(60, 83), dport=40002, src="10.6.0.2", dst="10.6.0.1")
    assert opaque_ports(tmp_path, forth + keep) == {40002: 1250}
