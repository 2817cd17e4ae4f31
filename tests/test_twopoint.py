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
from callscope.synth.packets import Kind
from callscope.synth.scenarios import A_TO_B, B_TO_A
from callscope.synth.twopoint import write_two_point
from callscope.twopoint import NoCommonFlowsError, compare, diagnose_direction


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
