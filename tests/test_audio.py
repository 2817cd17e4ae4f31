"""G.711 decoding and the rendering of what the listener heard (callscope audio)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from click.testing import CliRunner

from callscope.analysis import analyze
from callscope.capture.reader import read_capture
from callscope.cli import cli
from callscope.report.audio import g711_decode, render_stream, write_wav
from callscope.synth import simulate, write_capture

FRAME = 160  # 20 ms of G.711 at 8 kHz
RTP_HEADER = 12


def test_g711_decode_matches_itu_reference_points():
    # ITU-T G.711 Tables 1 and 2: the extremes and the two zero codes of µ-law.
    mu = g711_decode(np.array([0x00, 0x80, 0xFF, 0x7F, 0x8F], np.uint8), "PCMU")
    assert mu.tolist() == [-32124, 32124, 0, 0, 16764]
    a = g711_decode(np.array([0xD5, 0x55, 0xAA, 0x2A], np.uint8), "PCMA")
    assert a.tolist() == [8, -8, 32256, -32256]


def test_g711_tables_agree_with_audioop_for_every_octet():
    audioop = pytest.importorskip("audioop")
    octets = bytes(range(256))
    for law, ref in (("PCMU", audioop.ulaw2lin), ("PCMA", audioop.alaw2lin)):
        expected = np.frombuffer(ref(octets, 2), "<i2")
        assert np.array_equal(g711_decode(np.arange(256, dtype=np.uint8), law), expected), law


def _impaired_call(tmp_path, codec: str):
    call = simulate("random-loss", seed=4, duration=8, codec=codec, loss=0.08)
    path = tmp_path / f"loss-{codec}.pcap"
    write_capture(call, path)
    info = next(s for s in call.streams if s.kind == "rtp" and s.impaired)
    rows = np.flatnonzero((call.kind == 0) & (call.stream == info.index))
    return call, path, info, rows


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_wav_is_silent_exactly_where_packets_were_lost(tmp_path, codec):
    call, path, info, rows = _impaired_call(tmp_path, codec)
    received = ~np.isnan(call.capture_time[rows])
    assert 10 < np.count_nonzero(~received) < rows.size // 4  # the call did lose packets

    report = analyze(path)
    stream = next(s for s in report.inventory.streams if s.ssrc == info.ssrc)
    rendering = render_stream(read_capture(path), stream, conceal="silence")
    out = tmp_path / "out.wav"
    write_wav(out, rendering)

    first = np.flatnonzero(received)[0]
    last = np.flatnonzero(received)[-1]
    ts = call.rtp_ts[rows] - call.rtp_ts[rows][first]
    with wave.open(str(out)) as w:
        assert w.getframerate() == 8000
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        assert w.getnframes() == ts[last] + FRAME
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")

    expected_played = np.zeros(samples.size, bool)
    law = "PCMU" if codec == "pcmu" else "PCMA"
    for k in np.flatnonzero(received):
        sl = slice(ts[k], ts[k] + FRAME)
        expected_played[sl] = True
        body = np.frombuffer(call.payload(int(rows[k]))[RTP_HEADER:], np.uint8)
        assert np.array_equal(samples[sl], g711_decode(body, law))
    lost_in_range = np.count_nonzero(~received[first : last + 1])
    assert np.array_equal(rendering.played, expected_played)
    assert np.array_equal(rendering.concealed, ~expected_played)
    assert np.count_nonzero(~expected_played) == lost_in_range * FRAME
    assert not samples[~expected_played].any()
    assert rendering.concealed_s == pytest.approx(lost_in_range * 0.02)


def test_repeat_concealment_replays_the_previous_frame(tmp_path):
    call, path, info, rows = _impaired_call(tmp_path, "pcmu")
    report = analyze(path)
    stream = next(s for s in report.inventory.streams if s.ssrc == info.ssrc)
    r = render_stream(read_capture(path), stream, conceal="repeat")
    runs = np.flatnonzero(np.diff(np.concatenate([[0], r.concealed.astype(np.int8), [0]])))
    starts, ends = runs[0::2], runs[1::2]
    assert starts.size > 5
    for s, e in zip(starts, ends, strict=True):
        previous = r.samples[s - FRAME : s]
        assert np.array_equal(r.samples[s:e], np.resize(previous, e - s))


def test_late_packets_are_concealed_like_lost_ones(tmp_path):
    call, path, info, _ = _impaired_call(tmp_path, "pcmu")
    report = analyze(path)
    stream = next(s for s in report.inventory.streams if s.ssrc == info.ssrc)
    late = np.zeros(len(stream.packets), bool)
    late[[50, 51, 120]] = True
    capture = read_capture(path)
    base = render_stream(capture, stream)
    r = render_stream(capture, stream, late=late)
    assert r.packets_late == 3
    assert r.packets_played == base.packets_played - 3
    assert r.concealed_s == pytest.approx(base.concealed_s + 3 * 0.02)


def test_audio_command_writes_the_wav_and_refuses_other_codecs(tmp_path, capsys):
    _, path, info, _ = _impaired_call(tmp_path, "pcma")
    report = analyze(path)
    sid = next(s.id for s in report.inventory.streams if s.ssrc == info.ssrc)
    out = tmp_path / "heard.wav"
    res = CliRunner().invoke(cli, ["audio", str(path), "--stream", sid, "-o", str(out), "--conceal", "repeat"])
    assert res.exit_code == 0, res.output
    assert "PCMA at 8000 Hz" in res.output
    with wave.open(str(out)) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 7 * 8000

    # DVI4 (RFC 3551 §4.5.1, static payload type 5): no decoder in callscope
    from audio_rtp import PORT_A, PORT_B, A, B, rtp, run_cli, write_udp

    dvi = tmp_path / "dvi4.pcap"
    write_udp(dvi, [(1 + 0.02 * i, A, PORT_A, B, PORT_B, rtp(i, 160 * i, 7, 5, bytes(84))) for i in range(50)])
    code, out, err = run_cli(capsys, "audio", dvi, "--stream", "s1", "-o", tmp_path / "dvi.wav")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "callscope: error: stream s1 carries DVI4, which callscope cannot decode (decodable: PCMU, PCMA, opus, "
        "G722, G729, G723, GSM, iLBC, speex, AMR, G726-16/24/32/40, AAL2-G726-16/24/32/40)"
    ]
    assert not (tmp_path / "dvi.wav").exists()

    help_text = CliRunner().invoke(cli, ["audio", "--help"]).output
    assert "G.711" in help_text and "PCMU" in help_text and "Opus" in help_text
