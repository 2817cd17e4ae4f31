"""Every real capture in ../shared/captures with a decodable codec: `callscope audio` writes a file
of the stream's duration that is neither silence nor noise."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from audio_rtp import run_cli
from callscope.report.audio import MAX_GAP_S, spectral_flatness
from conftest import SHARED_CAPTURES

pytest.importorskip("av")

#: Spectral flatness of white noise is about 0.56 (the mean of log of an
#: exponential variable, exp(-γ)); speech and tones measured here stay below 0.14.
NOT_NOISE = 0.3
#: RMS below this (16-bit) is the sender's own silence (the callee's idle
#: microphone in the SIPp captures), not a decoding failure.
QUIET_RMS = 30

CAPTURES = sorted(p for p in SHARED_CAPTURES.glob("*.pcap*") if not p.name.endswith(".txt")) \
    if SHARED_CAPTURES.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_decodable_real_stream_sounds_like_audio(capture, tmp_path, capsys):
    code, out, err = run_cli(capsys, "audio", capture, "-o", tmp_path / "out", "--json")
    if code == 2:  # nothing decodable (encrypted messenger media, video): one line, no traceback
        assert err.strip().splitlines()[-1].startswith("callscope: error: ")
        assert "Traceback" not in err
        return
    assert code == 0, err
    doc = json.loads(out)
    written = [o for o in doc["outputs"] if o["path"]]
    assert written
    for o in written:
        entry = o["streams"][0]
        with wave.open(o["path"]) as w:
            rate, frames = w.getframerate(), w.getnframes()
            x = np.frombuffer(w.readframes(frames), "<i2")
        assert rate == entry["sample_rate"]
        assert frames / rate == pytest.approx(entry["duration_s"], abs=1e-3)
        # the stream's duration (first to last packet, plus its last frame), long gaps clipped
        span = entry["span_s"]
        clipped = sum(float(n.split("(")[1].split(" s")[0]) for n in entry["notes"] if "clipped" in n)
        assert entry["duration_s"] == pytest.approx(span - clipped, abs=0.15 + 0.01 * span)
        if np.sqrt(np.mean(x.astype(np.float64) ** 2)) > QUIET_RMS and entry["duration_s"] > 1:
            assert spectral_flatness(x, rate) < NOT_NOISE, (o["path"], entry)
        assert x.any()
    assert MAX_GAP_S == 10.0
