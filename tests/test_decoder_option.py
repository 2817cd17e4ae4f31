"""`--decoder wireshark` reaches every command that reads captures, with the same results."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES

LOST = FIXTURES / "rtpproxy__lost.a.pcap"


def _cs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callscope", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_batch_with_the_wireshark_decoder_matches_the_builtin_reader(tshark, tmp_path):
    records = {}
    for decoder in ("builtin", "wireshark"):
        out = tmp_path / f"{decoder}.jsonl"
        p = _cs("batch", str(LOST), "--jobs", "1", "-q", "--decoder", decoder, "--jsonl", str(out))
        assert p.returncode == 0, p.stderr
        records[decoder] = json.loads(out.read_text().splitlines()[0])
    assert records["builtin"]["verdict"] == "bursty-loss"
    assert records["builtin"]["max_loss_fraction"] == pytest.approx(321 / 565)
    for key in ("verdict", "streams", "worst_mos", "max_loss_fraction", "max_jitter_ms"):
        assert records["wireshark"][key] == records["builtin"][key], key


@pytest.mark.slow
def test_plot_and_report_accept_the_wireshark_decoder(tshark, tmp_path):
    p = _cs("plot", str(LOST), "-o", str(tmp_path / "plots"), "--decoder", "wireshark")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "plots" / "s1-timeline.png").stat().st_size > 5000
    p = _cs("report", str(LOST), "-o", str(tmp_path / "r.html"), "--decoder", "wireshark")
    assert p.returncode == 0, p.stderr
    assert "bursty-loss" in (tmp_path / "r.html").read_text()
