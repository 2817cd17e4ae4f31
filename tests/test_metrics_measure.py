"""measure(): one stream end to end, RTP and opaque."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from callscope.media.stream import MediaStream, PacketSeries
from callscope.metrics import StreamMetrics, Timeline, measure


def _rtp(seq, ts, time_s, pt=8, marker=None, size=172, clock=8000, codec="PCMA") -> MediaStream:
    n = len(seq)
    return MediaStream(
        id="s1",
        kind="rtp",
        src="10.0.0.1",
        src_port=4000,
        dst="10.0.0.2",
        dst_port=5000,
        packets=PacketSeries(
            frame=np.arange(1, n + 1, dtype=np.int64),
            time=np.asarray(time_s, np.float64),
            size=np.full(n, size, np.int32),
            seq=np.asarray(seq, np.uint16),
            ts=np.asarray(ts, np.uint32),
            pt=np.full(n, pt, np.uint8) if np.isscalar(pt) else np.asarray(pt, np.uint8),
            marker=np.zeros(n, bool) if marker is None else np.asarray(marker, bool),
        ),
        ssrc=0x1234,
        payload_type=pt if np.isscalar(pt) else int(np.bincount(pt).argmax()),
        codec=codec,
        clock_rate=clock,
        clock_source="static",
    )


def _clean(n=500, start_seq=1000):
    seq = (start_seq + np.arange(n)) % 65536
    return seq, np.arange(n) * 160, 0.5 + np.arange(n) * 0.02


def test_clean_g711_stream():
    m = measure(_rtp(*_clean()))
    assert isinstance(m, StreamMetrics) and isinstance(m.timeline, Timeline)
    assert (m.packets, m.expected, m.lost, m.missing, m.duplicates, m.reordered) == (
        500,
        500,
        0,
        0,
        0,
        0,
    )
    assert m.loss_fraction == 0.0 and not m.loss_inferred
    assert m.delta_max_ms == pytest.approx(20.0) and m.jitter_max_ms == pytest.approx(0.0, abs=1e-9)
    assert m.mos == pytest.approx(4.41, abs=0.01) and m.r_factor == pytest.approx(93.2, abs=0.05)
    assert m.bitrate_kbps == pytest.approx(172 * 8 * 500 / 9.98 / 1000)
    assert m.ptime_ms == pytest.approx(20.0)
    assert m.delay_max_ms == pytest.approx(0.0, abs=1e-6)
    assert m.first_time_s == pytest.approx(0.5) and m.duration_s == pytest.approx(9.98)
    assert m.timeline.packets.sum() == 500 and m.timeline.expected.sum() == 500
    assert m.timeline.start_s[0] == pytest.approx(0.5) and m.timeline.packets.size == 10


def test_loss_duplicates_and_reordering_are_told_apart():
    seq, ts, t = _clean(200)
    keep = np.ones(200, bool)
    keep[[50, 51, 52, 120]] = False  # 4 lost
    order = np.flatnonzero(keep)
    order = np.concatenate([order[:100], [order[101], order[100]], order[102:], [order[10]]])
    m = measure(_rtp(seq[order], ts[order], np.sort(t[order] + 0.0)))
    assert m.packets == 197
    assert m.missing == 4
    assert m.duplicates == 1 and m.reordered == 1
    # Wireshark takes the *last* packet's number as the highest: a late
    # duplicate of 1010 at the end makes expected 11 and lost hugely negative.
    assert m.expected == 11 and m.lost == 11 - 197
    assert m.loss_fraction == pytest.approx(4 / 200)
    assert m.loss_runs == (1, 0, 1)
    assert m.per_packet.lost_ext.tolist() == [1050, 1051, 1052, 1120]
    assert m.timeline.lost.sum() == 4


def test_wireshark_lost_is_expected_minus_received():
    seq, ts, t = _clean(100)
    m = measure(
        _rtp(
            np.concatenate([seq, [seq[-1]]]),
            np.concatenate([ts, [ts[-1]]]),
            np.append(t, t[-1] + 0.001),
        )
    )
    assert m.lost == -1 and m.missing == 0 and m.duplicates == 1


def test_dtmf_events_reproduce_wiresharks_jitter_step_but_not_delay():
    n = 300
    seq = np.arange(n)
    t = np.arange(n) * 0.02
    ts = np.arange(n) * 960
    pt = np.full(n, 111)
    pt[100:110] = 101
    ts[100:110] = 100 * 960  # RFC 4733: the event's timestamp stays at its start
    m = measure(_rtp(seq, ts, t, pt=pt, clock=48000, codec="opus"))
    # Wireshark: the events move the reference arrival time (packet 109) but
    # not the reference timestamp (packet 99), so the first audio packet after
    # them sees D = |t110 - (t109 + 11 * 20 ms)| = 200 ms: J = 200 / 16.
    assert m.jitter_max_ms == pytest.approx(200 / 16)
    assert np.nanargmax(m.per_packet.jitter_ms) == 110
    assert np.isnan(m.per_packet.delay_ms[100:110]).all()
    assert m.delay_max_ms == pytest.approx(0.0, abs=1e-6)
    assert m.jb_late_fixed == 0 and m.emodel.codec == "Opus"


def test_bursty_outage_gives_bursts_and_low_window_mos():
    seq, ts, t = _clean(1000)
    keep = np.ones(1000, bool)
    keep[500:540] = False  # 800 ms outage in window 10-11
    m = measure(_rtp(seq[keep], ts[keep], t[keep]))
    assert m.missing == 40 and m.loss_runs[-1] == 1 and len(m.loss_runs) == 40
    assert m.burst_density == pytest.approx(1.0) and m.gap_density == 0.0
    assert m.burst_duration_ms == pytest.approx(800.0)
    assert m.burst_ratio > 20
    w = m.timeline
    worst = int(np.nanargmin(w.mos))
    assert w.lost[worst] > 0 and w.mos[worst] < 3.0
    assert np.nanmax(w.mos) == pytest.approx(4.41, abs=0.01)


def test_opaque_media_loss_is_inferred_from_cadence():
    t = np.arange(300) * 0.02
    t = np.delete(t, [100, 101, 200])  # 3 packets missing from the cadence
    n = t.size
    s = MediaStream(
        id="o1", kind="opaque", src="a", src_port=1, dst="b", dst_port=2,
        packets=PacketSeries(frame=np.arange(n), time=t, size=np.full(n, 90, np.int32)),
        encrypted=True,
    )  # fmt: skip
    m = measure(s)
    assert m.loss_inferred
    assert m.missing == 3 and m.expected == 300 and m.lost == 3
    assert m.loss_runs == (1, 1)
    assert m.jitter_mean_ms is None and m.jitter_p95_ms is None and m.delay_p95_ms is None
    assert m.delta_max_ms == pytest.approx(60.0)
    assert m.emodel.codec == "unknown codec"


def test_delay_ramp_is_seen_as_trend():
    seq, ts, t = _clean(1000)
    t = t + np.linspace(0, 0.2, 1000)  # queue grows 200 ms over 20 s: 10 ms/s
    m = measure(_rtp(seq, ts, t))
    assert m.delay_trend_ms_per_s == pytest.approx(10.0, rel=0.01)
    assert m.delay_max_ms == pytest.approx(200.0, rel=0.01)


def test_known_delay_enters_the_emodel():
    m = measure(_rtp(*_clean()), one_way_delay_ms=250.0)
    assert 0 < m.jb_delay_adaptive_ms <= 60.0
    assert m.emodel.ta_ms == pytest.approx(250.0 + m.jb_delay_adaptive_ms)  # network + buffer
    assert m.r_factor < 85
    m_rtt = measure(_rtp(*_clean()), rtt_ms=100.0)
    assert m_rtt.emodel.ta_ms == pytest.approx(50.0 + m.jb_delay_adaptive_ms)


def test_codec_override_by_name():
    m = measure(_rtp(*_clean()), codec_override="G729A")
    assert m.emodel.ie == 11.0 and m.mos < 4.2
    with pytest.raises(ValueError):
        measure(_rtp(*_clean()), codec_override="no-such-codec")


def test_scalar_fields_are_plain_json_types():
    m = measure(_rtp(*_clean()))
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        if f.name in ("emodel", "timeline", "per_packet"):
            continue
        assert v is None or isinstance(v, (int, float, bool, str, tuple)), f.name


def test_empty_stream_measures_to_zeros():
    s = _rtp(np.zeros(0), np.zeros(0), np.zeros(0))
    m = measure(s)
    assert m.packets == 0 and m.missing == 0 and m.first_time_s is None
