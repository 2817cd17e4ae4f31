"""Two-point analysis: sender and receiver captures of one simulated call.

The simulator writes both ends' captures with A behind a NAT and B's clock
offset by seconds and drifting by tens of ppm; its per-packet truth says which
packets were lost and what each one's one-way delay was.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from callscope.synth import simulate
from callscope.synth.both_ends import write_two_point
from callscope.synth.packets import Kind
from callscope.synth.scenarios import A_TO_B, B_TO_A
from callscope.twopoint import (
    DirectionResult,
    NoCommonFlowsError,
    _floor,
    compare,
    diagnose_direction,
    pair_diagnosis,
    stopped_at,
)


def _media_truth(call, direction: int):
    media = np.flatnonzero(np.isin(call.kind, (Kind.RTP, Kind.OPAQUE)) & (call.direction == direction))
    lost = call.lost[media]
    delay = call.arrival_time[media] - call.send_time[media]
    rel = (delay - np.nanmin(delay)) * 1000.0
    return lost, rel


def _media_direction(result, sender_path):
    cands = [r for r in result.directions if r.sender == str(sender_path)]
    return max(cands, key=lambda r: r.sent)


@pytest.fixture(scope="module", params=[False, True], ids=["rtp", "opaque"])
def policed_pair(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("tp") / "call.pcap"
    call = simulate("policing", seed=11, duration=30.0, opaque=request.param,
                    rate_Bps=5000.0, burst_bytes=1200, direction="a->b")
    a, b = write_two_point(call, out, clock_offset_s=-7.25, clock_drift_ppm=45.0)
    return call, a, b


def test_exact_loss_positions_match_the_truth(policed_pair):
    call, a, b = policed_pair
    result = compare(a, b)
    for direction, sender in ((A_TO_B, a), (B_TO_A, b)):
        lost, _ = _media_truth(call, direction)
        r = _media_direction(result, sender)
        assert r.sent == lost.size
        assert r.lost == int(lost.sum())
        assert np.array_equal(r.lost_mask, lost)
        assert r.received + r.lost == r.sent
        assert r.duplicated == 0


def test_nat_rewriting_is_seen_through(policed_pair):
    _, a, b = policed_pair
    result = compare(a, b)
    r = _media_direction(result, a)
    assert r.sent_flow[0] == "10.0.0.1" or r.sent_flow[0].startswith("10.")
    assert r.received_flow[0] == "203.0.113.45"  # A's NAT public address, as B saw it
    assert r.sent_flow[1] != r.received_flow[1]  # the NAT rewrote the port


def test_delay_is_within_a_millisecond_after_offset_and_drift_removal(policed_pair):
    call, a, b = policed_pair
    result = compare(a, b)
    for direction, sender in ((A_TO_B, a), (B_TO_A, b)):
        lost, truth = _media_truth(call, direction)
        r = _media_direction(result, sender)
        ok = ~lost
        err = np.abs(r.delay_ms[ok] - truth[ok])
        assert float(err.max()) < 1.0, f"max delay error {err.max():.3f} ms"
    fwd = _media_direction(result, a)
    assert fwd.clock_drift_ppm == pytest.approx(45.0, abs=5.0)


def test_the_policed_direction_is_diagnosed_with_exact_loss(policed_pair):
    _, a, b = policed_pair
    result = compare(a, b)
    primary, _ = diagnose_direction(_media_direction(result, a))
    assert primary is not None and primary.pattern == "policing"
    clean, _ = diagnose_direction(_media_direction(result, b))
    assert clean is None or clean.pattern not in ("policing", "shaping", "intermittent-outage", "cutoff")


def test_captures_of_different_calls_have_no_common_flows(tmp_path):
    one = simulate("clean", seed=1, duration=5.0)
    two = simulate("clean", seed=2, duration=5.0)
    a1, _ = write_two_point(one, tmp_path / "one.pcap")
    _, b2 = write_two_point(two, tmp_path / "two.pcap")
    with pytest.raises(NoCommonFlowsError):
        compare(a1, b2)
    p = subprocess.run([sys.executable, "-m", "callscope", "compare", str(a1), str(b2)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1
    assert "share no media packets" in p.stderr


def test_flows_present_in_one_capture_only_are_listed(tmp_path):
    call = simulate("clean", seed=5, duration=10.0)
    a, b = write_two_point(call, tmp_path / "c.pcap")
    extra = simulate("clean", seed=6, duration=10.0)
    from callscope.synth import write_capture

    lone = tmp_path / "other.pcap"
    write_capture(extra, lone)
    # merge: A's capture plus an unrelated call's packets (a flow only A saw)
    from callscope.capture import read_capture
    from callscope.capture.writer import write_pcap

    parts = [read_capture(a).datagrams, read_capture(lone).datagrams]
    merged = tmp_path / "merged.pcap"
    from callscope.capture.datagrams import Datagrams

    d = Datagrams.concat(parts)
    order = np.argsort(d.time_ns, kind="stable")
    d = d.take(order).compact()
    src = (d.src[:, 12:].astype(np.uint32) << np.array([24, 16, 8, 0], np.uint32)).sum(axis=1).astype(np.uint32)
    dst = (d.dst[:, 12:].astype(np.uint32) << np.array([24, 16, 8, 0], np.uint32)).sum(axis=1).astype(np.uint32)
    write_pcap(merged, d.time_ns, src, dst, d.sport, d.dport, d.data, d.payload_start, d.payload_caplen)
    result = compare(merged, b)
    assert len(result.only_in_sent) >= 2  # both directions of the unrelated call
    assert result.only_in_received == ()


def test_compare_cli_json(policed_pair):
    _, a, b = policed_pair
    p = subprocess.run([sys.executable, "-m", "callscope", "compare", "--format", "json", str(a), str(b)],
                       capture_output=True, text=True, check=True)
    doc = json.loads(p.stdout)
    assert doc["schema"] == "callscope-compare/1"
    media = max((d for d in doc["directions"] if d["sender"] == str(a)), key=lambda d: d["sent"])
    assert media["verdict"] == "policing"
    assert media["lost"] == len(media["lost_at_s"])


def test_two_point_figure_marks_every_lost_packet(policed_pair):
    from callscope.report.plots import two_point_directions, two_point_figure

    _, a, b = policed_pair
    result = compare(a, b)
    verdicts = [diagnose_direction(r) for r in result.directions]
    fig = two_point_figure(result, verdicts)
    shown = two_point_directions(result)
    assert len(fig.axes) == len(shown) >= 2
    for ax, i in zip(fig.axes, shown, strict=True):
        r = result.directions[i]
        ticks = [c for c in ax.collections if c.get_label().startswith("lost packet")]
        assert len(ticks) == 1 and len(ticks[0].get_segments()) == r.lost
        delay_line = ax.lines[0]
        assert np.count_nonzero(np.isfinite(delay_line.get_ydata())) == r.received
    policed = fig.axes[[result.directions[i].sender for i in shown].index(str(a))]
    assert any(t.get_text() == "policing" for t in policed.texts)  # the finding's span is labelled


def test_report_with_the_other_end_adds_the_two_point_section(policed_pair, tmp_path):
    _, a, b = policed_pair
    out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "callscope", "report", str(a), "--received", str(b), "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    html = out.read_text()
    assert "<h2>Two-point analysis</h2>" in html
    section = html[html.index("<h2>Two-point analysis</h2>"):]
    assert "policing" in section and 'alt="two-point delay and loss"' in section
    assert "data:image/png;base64," in section


# --- The call's verdict from both ends ------------------------------------------------


def _pair(tmp_path, pattern, **kw):
    call = simulate(pattern, seed=5, duration=30.0, **kw)
    return write_two_point(call, tmp_path / f"{pattern}.pcap", clock_offset_s=3.5, clock_drift_ppm=-20.0)


def test_a_cut_seen_at_both_ends_is_a_cutoff_at_its_time(tmp_path):
    a, b = _pair(tmp_path, "cutoff", after_s=12.0, after_bytes=0.0)
    d = pair_diagnosis(a, b)
    assert d.verdict == "cutoff" and d.verdict_confidence == 1.0
    assert d.primary.param("time_s") == pytest.approx(12.0, abs=0.1)


def test_one_direction_blocked_mid_call_is_one_way_from_both_ends(tmp_path):
    a, b = _pair(tmp_path, "one-way", start_s=6.0)
    d = pair_diagnosis(a, b)
    assert d.verdict == "one-way"
    assert "from 6." in d.primary.summary


def test_one_direction_blocked_from_the_start_is_one_way_from_both_ends(tmp_path):
    a, b = _pair(tmp_path, "one-way", start_s=0.0)
    result = compare(a, b)
    assert len(result.undelivered()) == 1 and len(result.directions) == 1
    assert pair_diagnosis(a, b).verdict == "one-way"


def test_an_ordinary_call_from_both_ends_is_clean(tmp_path):
    a, b = _pair(tmp_path, "clean")
    d = pair_diagnosis(a, b)
    assert d.verdict == "clean" and d.primary is None


def test_a_short_loss_burst_at_the_end_is_not_a_stop():
    n = 100
    lost = np.zeros(n, bool)
    lost[-10:] = True  # 200 ms: an ordinary burst, not a stop
    r = DirectionResult("a", "b", ("1.1.1.1", 1, "2.2.2.2", 2), ("1.1.1.1", 1, "2.2.2.2", 2), n, n - 10, 10, 0, 0,
                        np.arange(n) * 0.02, lost, np.where(lost, np.nan, 1.0), 0.0, 0.0, 0.0, np.full(n, 160))
    assert stopped_at(r) is None
    lost[-60:] = True  # 1.2 s and 60 packets sent into the void
    r = DirectionResult("a", "b", r.sent_flow, r.received_flow, n, n - 60, 60, 0, 0, r.send_time, lost,
                        np.where(lost, np.nan, 1.0), 0.0, 0.0, 0.0, r.size)
    assert stopped_at(r) == pytest.approx(0.8)


def test_the_delay_floor_ignores_a_lone_packet_below_it():
    base = np.r_[np.full(200, 0.0500), 0.0100]  # one stamp 40 ms early: a timestamp error
    assert _floor(base) == pytest.approx(0.05)


def _udp(path, times_s, payloads, src="198.18.1.2", dst="198.18.2.2", sport=4000, dport=4002):
    from callscope.capture.writer import ipv4_to_int, write_pcap

    n = len(payloads)
    data = np.frombuffer(b"".join(payloads), np.uint8)
    lens = np.array([len(p) for p in payloads], np.int32)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    write_pcap(path, (np.asarray(times_s) * 1e9).astype(np.int64) + 1_700_000_000 * 10**9,
               np.full(n, ipv4_to_int(src), np.uint32), np.full(n, ipv4_to_int(dst), np.uint32),
               np.full(n, sport, np.uint16), np.full(n, dport, np.uint16), data, starts, lens)


def test_a_payload_sent_twice_is_matched_copy_to_copy(tmp_path):
    # 60 distinct packets, then the first one's payload sent again (a keep-alive
    # repeated verbatim): its second copy must meet the second copy received,
    # not the first one (which would make it arrive before it was sent).
    rng = np.random.default_rng(1)
    payloads = [rng.bytes(100) for _ in range(60)]
    payloads.append(payloads[0])
    sent_t = np.arange(61) * 0.02
    _udp(tmp_path / "a.pcap", sent_t, payloads)
    _udp(tmp_path / "b.pcap", sent_t + 0.030, payloads)
    (r,) = compare(tmp_path / "a.pcap", tmp_path / "b.pcap").directions
    assert r.lost == 0 and r.duplicated == 0
    assert np.nanmax(r.delay_ms) < 0.01  # every packet 30 ms in flight, the repeated one too


def test_which_capture_sent_a_flow_is_told_by_the_flow_the_other_way(tmp_path):
    # Both hosts equally busy in both captures (no loss), B's clock 3 s ahead:
    # the addresses and the packet counts cannot say who sent what. A -> B
    # takes 30 ms, B -> A 10 ms; the reverse flow cancels the clock offset.
    from callscope.capture.writer import ipv4_to_int, write_pcap

    rng = np.random.default_rng(2)
    n = 200
    ab = [rng.bytes(100) for _ in range(n)]
    ba = [rng.bytes(100) for _ in range(n)]
    t = np.arange(n) * 0.02
    a_cap = [(t, ab, "198.18.1.2", 4000, "198.18.2.2", 4002), (t + 0.010 + 0.005, ba, "198.18.2.2", 4002, "198.18.1.2", 4000)]
    b_cap = [(t + 0.030 + 3.0, ab, "198.18.1.2", 4000, "198.18.2.2", 4002), (t + 0.005 + 3.0, ba, "198.18.2.2", 4002, "198.18.1.2", 4000)]
    for name, flows in (("a", a_cap), ("b", b_cap)):
        rows = sorted((float(x), p, s, sp, d, dp) for ts, ps, s, sp, d, dp in flows for x, p in zip(ts, ps, strict=True))
        times = np.array([r[0] for r in rows])
        data = np.frombuffer(b"".join(r[1] for r in rows), np.uint8)
        lens = np.full(len(rows), 100, np.int32)
        write_pcap(tmp_path / f"{name}.pcap", (times * 1e9).astype(np.int64) + 1_700_000_000 * 10**9,
                   np.array([ipv4_to_int(r[2]) for r in rows], np.uint32),
                   np.array([ipv4_to_int(r[4]) for r in rows], np.uint32),
                   np.array([r[3] for r in rows], np.uint16), np.array([r[5] for r in rows], np.uint16),
                   data, np.arange(len(rows), dtype=np.int64) * 100, lens)
    result = compare(tmp_path / "a.pcap", tmp_path / "b.pcap")
    senders = {r.sent_flow[0]: r.sender for r in result.directions}
    assert senders == {"198.18.1.2": str(tmp_path / "a.pcap"), "198.18.2.2": str(tmp_path / "b.pcap")}
    assert all(r.lost == 0 for r in result.directions)
