"""diagnose: the sender's packet interval of opaque media, seen through queueing jitter and a policer."""

from __future__ import annotations

import numpy as np
import pytest

from callscope.analysis import analyze
from callscope.metrics.cadence import cadence_interval
from callscope.synth.call import simulate
from callscope.synth.output import write_capture


def test_queueing_jitter_does_not_halve_the_interval(tmp_path):
    # 20 ms Opus through a congested queue (simulated, encrypted framing): the
    # gaps scatter so that a 10 ms grid catches more of them than the 20 ms
    # one without explaining most; the sender's interval stays 20 ms.
    path = tmp_path / "congestion.pcap"
    write_capture(simulate("congestion", seed=2055440662, codec="opus", opaque=True, background_loss=0.00072), path)
    streams = analyze(path).streams
    assert [s.kind for s in streams] == ["opaque", "opaque"]
    for s in streams:
        assert cadence_interval(s.packets.time) == pytest.approx(0.02, rel=0.02)


def test_policer_dropping_every_other_packet_from_the_start_keeps_the_sender_interval():
    # A 20 ms sender through a token bucket five packets deep refilled at 0.47
    # packets per interval: the first burst passes in a row, then about every
    # other packet is dropped, with now and then two in a row.
    tokens, keep = 5.0, np.zeros(1500, bool)
    for i in range(keep.size):
        keep[i] = tokens >= 1.0
        tokens = min(5.0, tokens - keep[i] + 0.47)
    rng = np.random.default_rng(12)
    arrival = 0.02 * np.flatnonzero(keep) + rng.normal(0.0, 0.0005, keep.sum())
    assert cadence_interval(arrival) == pytest.approx(0.02, rel=0.02)
