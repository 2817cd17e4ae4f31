"""Hostile timestamps and many streams: audio stays bounded by what arrived, report caps its figures,
and a bad stream id is one clean line."""

from __future__ import annotations

import re
import time
import wave

import numpy as np
import pytest

from audio_rtp import CODECS, PORT_A, PORT_B, A, B, rtp, run_cli, sip_invite, write_udp
from callscope.analysis import analyze
from callscope.capture.reader import read_capture
from callscope.report.audio import MAX_GAP_S, render_stream

PCMU = CODECS["PCMU"]
SILENCE = bytes([0xFF]) * 160


def _stream(path, seqs, ts, times) -> None:
    items = [(float(t), A, PORT_A, B, PORT_B, rtp(int(s), int(x), 0x1234, 0, SILENCE))
             for s, x, t in zip(seqs, ts, times, strict=True)]
    write_udp(path, items)


def test_stretched_timestamps_do_not_stretch_the_audio(tmp_path, capsys):
    # 120 s of packets every 20 ms whose timestamps advance 500 frames each:
    # taken at their word, 16.7 hours of audio.
    n = 6000
    path = tmp_path / "stretched.pcap"
    _stream(path, np.arange(n), np.arange(n) * 160 * 500, 1.0 + np.arange(n) * 0.02)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream)
    assert 119.9 <= r.duration_s <= 120.1
    assert any("laid out by arrival time" in note for note in r.notes)

    out = tmp_path / "s.wav"
    code, _, err = run_cli(capsys, "audio", path, "--stream", stream.id, "-o", out)
    assert code == 0
    assert "laid out by arrival time" in err
    with wave.open(str(out)) as w:
        assert w.getnframes() <= 120.1 * 8000


def test_days_long_gap_is_clipped_and_said(tmp_path):
    # two talk spurts 2.5 days apart, timestamps consistent with arrival
    gap_s = 2.5 * 86400
    seq = np.arange(200)
    times = 1.0 + seq * 0.02 + np.where(seq >= 100, gap_s, 0)
    ts = np.rint((times - 1.0) * 8000).astype(np.int64) & 0xFFFFFFFF
    path = tmp_path / "gap.pcap"
    _stream(path, seq, ts, times)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream)
    assert r.duration_s == pytest.approx(200 * 0.02 - 0.02 + MAX_GAP_S, abs=0.05)
    assert any("clipped to 10 s" in note for note in r.notes)


def test_timestamp_jump_with_steady_arrival_is_closed_up(tmp_path):
    seq = np.arange(200)
    ts = seq * 160 + np.where(seq >= 100, int(2.5 * 86400 * 8000), 0)
    path = tmp_path / "jump.pcap"
    _stream(path, seq, ts & 0xFFFFFFFF, 1.0 + seq * 0.02)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream)
    assert r.samples.size == 200 * 160
    assert any("timestamp jumps" in note for note in r.notes)


def test_disordered_arrivals_and_timestamps_stay_within_the_real_span(tmp_path):
    """Timestamps shuffled against arrival (a damaged or merged capture): every
    step that is not a jump can be a long gap; the audio must still not
    outgrow the 30 s the packets arrived over."""
    rng = np.random.default_rng(4)
    n = 1500
    seq = np.arange(n)
    times = np.sort(1.0 + rng.uniform(0, 30, n))
    ts = rng.permutation(n) * 160 * 37
    path = tmp_path / "shuffled.pcap"
    _stream(path, seq, ts, times)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream)
    assert r.duration_s <= 4 * 31.0


def test_unknown_stream_is_one_clean_line(tmp_path, capsys):
    path = tmp_path / "short.pcap"
    seq = np.arange(30)
    # a jittery short stream: the detectors' polynomial fits are poorly conditioned on it
    _stream(path, seq, seq * 160, 1.0 + seq * 0.02 + (seq % 3) * 1e-7)
    code, out, err = run_cli(capsys, "audio", path, "--stream", "nope", "-o", tmp_path / "x.wav")
    assert code == 2
    assert err.splitlines() == [f"callscope: error: {path}: no stream nope (streams: s1)"]
    assert out == ""


@pytest.mark.slow
def test_report_on_500_streams_plots_the_worst_few_and_tables_all(tmp_path, capsys):
    items = []
    for k in range(500):
        inv = sip_invite(None, PCMU, port=20000 + 2 * k).replace(b"roundtrip-1", f"call-{k}".encode())
        items.append((0.5 + k * 0.001, A, 5060, B, 5060, inv))
        items.append((1.0 + k * 0.01, A, 20000 + 2 * k, B, 30000 + 2 * k, rtp(100, 1000, 0x5000 + k, 0, SILENCE)))
    path = tmp_path / "many.pcap"
    write_udp(path, items)
    out = tmp_path / "many.html"
    t = time.monotonic()
    code, _, err = run_cli(capsys, "report", path, "-o", out)
    elapsed = time.monotonic() - t
    assert code == 0, err
    assert elapsed < 60
    html = out.read_text()
    assert html.count("<figcaption>Timeline") == 8
    assert html.count("<audio") <= 8
    assert "Figures for the 8 worst of 500 streams" in html
    assert len(re.findall(r"<tr><td>s\d+</td>", html)) == 500
    code, _, err = run_cli(capsys, "report", path, "-o", out, "--plot-streams", "12")
    assert code == 0, err
    assert out.read_text().count("<figcaption>Timeline") == 12
