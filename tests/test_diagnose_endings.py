"""How a call's media stopped: hang-up, cut-off or one-way, from what else the capture shows."""

from __future__ import annotations

import numpy as np

from callscope.diagnose.cutoff import judge_ending
from callscope.diagnose.trace import TraceSummary
from callscope.diagnose.vantage import Activity, Vantage
from callscope.media.sip import SipCall
from callscope.media.stream import MediaStream, PacketSeries

A, B = ("198.18.1.2", 40000), ("198.18.2.2", 40002)


def stream(sid, src, dst, ssrc):
    empty = PacketSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int32))
    return MediaStream(sid, "rtp", src[0], src[1], dst[0], dst[1], empty, ssrc=ssrc)


def summary(sid, start, end, ptime=0.02):
    n = int(round((end - start) / ptime)) + 1
    return TraceSummary(sid, False, ptime, start, end, n, n, 160.0 * n)


def call(a_end, b_end, **kw):
    traces = [summary("s1", 0.5, a_end), summary("s2", 0.5, b_end)]
    streams = [stream("s1", A, B, 1), stream("s2", B, A, 2)]
    return judge_ending("c1", traces, streams, kw.pop("end", 30.0), **kw)


def sip(bye=None, last=None):
    return SipCall("x@y", None, None, None, 1, ("INVITE", "BYE"), 200, (), 0.0,
                   last if last is not None else (bye or 0.0), bye)


def test_both_stopping_with_nothing_after_is_no_cutoff():
    e = call(20.0, 20.02)
    assert e.finding is None and "no sign that either side was still there" in e.note


def test_both_stopping_with_a_bye_there_is_a_hang_up():
    e = call(20.0, 20.02, sip=sip(bye=20.1))
    assert e.finding is None and "hung up" in e.note


def test_both_stopping_long_before_the_bye_is_a_cut_at_the_stop():
    e = call(20.0, 20.02, sip=sip(bye=29.5))
    assert e.finding.pattern == "cutoff"
    assert abs(e.finding.param("time_s") - 19.53) < 0.05
    assert "BYE 9.5 s after" in e.finding.summary


def test_rtcp_going_on_after_both_stopped_is_a_cut():
    act = Activity({(A[0], A[1] + 1): np.array([5.0, 10.0, 15.0, 25.0])})
    e = call(20.0, 20.02, activity=act)
    assert e.finding.pattern == "cutoff"
    assert dict((x.name, x.value) for x in e.finding.evidence)["alive_after_stop"] == 4.98


def test_rtcp_bye_at_the_stop_is_a_hang_up_even_with_late_reports():
    act = Activity({(A[0], A[1] + 1): np.array([25.0])}, byes={1: 20.05})
    assert call(20.0, 20.02, activity=act).finding is None


def test_one_side_silent_while_the_other_sends_on_is_a_cut():
    e = call(12.0, 29.9)
    f = e.finding
    assert f.pattern == "cutoff" and f.stream_id == "s1"
    assert abs(f.param("time_s") - 11.51) < 0.05 and f.param("packets") == 576


def test_one_side_media_stopping_while_its_rtcp_goes_on_is_one_way():
    act = Activity({(A[0], A[1] + 1): np.array([5.0, 10.0, 15.0, 20.0, 25.0])})
    f = call(12.0, 29.9, activity=act).finding
    assert f.pattern == "one-way" and f.stream_id == "s1"
    assert f.param("onset_s") == 12.0


def test_the_capture_hosts_own_media_stopping_is_not_an_impairment():
    e = call(12.0, 29.9, vantage=Vantage(frozenset({A[0]}), "captured on A"))
    assert e.finding is None and "not an impairment" in e.note


def test_a_private_host_among_public_peers_is_where_the_capture_was_taken():
    from types import SimpleNamespace as MediaInventory  # what infer_vantage reads of one

    from callscope.diagnose.vantage import infer_vantage

    inside, peer = ("192.168.2.12", 56328), ("91.252.56.51", 32704)
    inv = MediaInventory(streams=(stream("s1", peer, inside, 1), stream("s2", inside, peer, 2)), calls=(),
                         sender_ttl={})
    v = infer_vantage(inv)
    assert v.local == {"192.168.2.12"} and v.crossed == "its own LAN" and "NAT" in v.reason
    # two private hosts (a LAN call, or the lab's 198.18/15 benchmark range): no conclusion
    lan = MediaInventory(streams=(stream("s1", A, B, 1), stream("s2", B, A, 2)), calls=(), sender_ttl={})
    assert infer_vantage(lan).local == frozenset()
    # the private host's own media stopping while the public peer goes on: no impairment beyond
    e = call(12.0, 29.9, vantage=Vantage(frozenset({A[0]}), "behind a NAT", crossed="its own LAN"))
    assert e.finding is None and "not a middlebox beyond" in e.note


def test_a_short_stop_gap_is_nothing():
    assert call(26.0, 29.9, end=30.0).finding is None


def test_a_call_moving_from_relay_to_direct_path_is_no_stop():
    relay = ("203.0.113.9", 3478)
    traces = [summary("r1", 0.5, 8.0), summary("r2", 0.5, 8.0), summary("d1", 8.5, 29.9),
              summary("d2", 8.5, 29.9)]
    streams = [stream("r1", A, relay, 1), stream("r2", relay, A, 2), stream("d1", A, B, 3),
               stream("d2", B, A, 4)]
    assert judge_ending("c1", traces, streams, 30.0).finding is None


# --- honesty on opaque media and video -------------------------------------

from callscope.diagnose.engine import stream_findings  # noqa: E402
from callscope.diagnose.jitter import detect_jitter  # noqa: E402
from callscope.diagnose.trace import build_trace  # noqa: E402


def opaque_stream(times):
    t = np.asarray(times, np.float64)
    p = PacketSeries(np.arange(t.size, dtype=np.int64), t, np.full(t.size, 90, np.int32))
    return MediaStream("s1", "opaque", A[0], A[1], B[0], B[1], p, encrypted=True)


def test_a_relay_leg_used_in_bursts_is_read_at_its_own_interval(shared_captures):
    """The real Telegram call's relay leg (66 packets at about 64 ms in 4 s,
    three gaps near 21 ms) was once read at 21 ms: "66 % lost", beats never
    sent. Its interval is the one the sender kept, and its loss about none."""
    import callscope

    report = callscope.analyze(shared_captures / "nDPI__telegram.pcap")
    relay = next(s for s in report.inventory.streams if s.src == "91.108.8.7")
    tr = build_trace(relay, 60.0)
    assert abs(tr.ptime - 0.064) < 0.002 and tr.loss_fraction < 0.05
    assert report.metrics[relay.id].loss_fraction < 0.05
    claimed = {f.pattern for f in report.diagnosis.findings if f.stream_id == relay.id}
    assert not claimed & {"random-loss", "bursty-loss", "one-way", "policing", "intermittent-outage"}


def test_a_steady_opaque_sender_losing_packets_still_shows_loss():
    rng = np.random.default_rng(6)
    t = np.arange(1500) * 0.02 + rng.normal(0, 0.0005, 1500)
    kept = t[rng.random(1500) > 0.05]
    tr = build_trace(opaque_stream(kept), 40.0)
    assert abs(tr.loss_fraction - 0.05) < 0.015
    assert {f.pattern for f in stream_findings(tr)} & {"random-loss", "bursty-loss"}


def test_video_frames_sent_back_to_back_are_not_jitter():
    """30 pictures a second, five packets each sent 1 ms apart under one
    timestamp, 1-2 ms of network jitter: the frames are on time."""
    rng = np.random.default_rng(7)
    frames, per = 900, 5
    t_frame = np.arange(frames) / 30.0 + rng.uniform(0, 0.002, frames)
    time = (t_frame[:, None] + 0.001 * np.arange(per)[None, :]).ravel()
    ts = np.repeat(np.arange(frames) * 3000, per).astype(np.uint32)
    seq = (np.arange(frames * per) & 0xFFFF).astype(np.uint16)
    p = PacketSeries(np.arange(time.size, dtype=np.int64), time, np.full(time.size, 1100, np.int32),
                     seq=seq, ts=ts, pt=np.full(time.size, 96, np.uint8),
                     marker=np.tile(np.arange(per) == per - 1, frames))
    s = MediaStream("v1", "rtp", A[0], A[1], B[0], B[1], p, ssrc=9, payload_type=96, clock_rate=90000)
    tr = build_trace(s, 40.0)
    assert tr.video and abs(tr.frame_interval - 1 / 30) < 1e-3 and tr.bunched == 0.0
    assert detect_jitter(tr) is None


def test_dtx_silences_with_comfort_noise_are_not_loss():
    """Talk spurts at 20 ms, silences of 0.4-2.5 s holding only small comfort
    noise packets every 100 ms (discontinuous transmission): no loss, no
    outage, and the send clock keeps time through the silences (no queue)."""
    rng = np.random.default_rng(1)
    times, sizes, t = [], [], 0.0
    while t < 30:
        n = int(rng.uniform(0.8, 3.0) / 0.02)
        times += list(t + 0.02 * np.arange(n) + rng.normal(0, 0.001, n))
        sizes += list(rng.integers(70, 120, n))
        t += n * 0.02
        silence = rng.uniform(0.4, 2.5)
        k = int(silence / 0.1)
        times += list(t + 0.1 * np.arange(1, k + 1))
        sizes += [30] * k
        t += silence
    order = np.argsort(times)
    t_arr, sz = np.asarray(times)[order], np.asarray(sizes, np.int32)[order]
    p = PacketSeries(np.arange(t_arr.size, dtype=np.int64), t_arr, sz)
    tr = build_trace(MediaStream("s1", "opaque", A[0], A[1], B[0], B[1], p, encrypted=True), 35.0)
    assert tr.lost == 0
    assert np.nanmax(tr.delay) < 0.02
    assert stream_findings(tr) == []
