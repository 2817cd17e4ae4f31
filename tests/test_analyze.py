"""`callscope analyze`: the callscope/1 JSON document, the tables, and Wireshark's numbers."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys

import pytest

from conftest import FIXTURES

#: One row of `tshark -z rtp,streams` (a "-1.000" minimum means no clock rate known).
ROW = re.compile(
    r"^\s*[\d.]+\s+[\d.]+\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+(?P<dport>\d+)\s+"
    r"(?P<ssrc>0x[0-9A-Fa-f]+)\s+.*?\s+(?P<pkts>\d+)\s+(?P<lost>-?\d+)\s+\([-\d.]+%\)\s+"
    r"[-\d.]+\s+[\d.]+\s+(?P<dmax>[\d.]+)\s+[-\d.]+\s+(?P<jmean>[\d.]+)\s+(?P<jmax>[\d.]+)\s*X?\s*$"
)

#: Keys the issue requires on every RTP stream object.
STREAM_KEYS = (
    "kind", "src", "src_port", "dst", "dst_port", "ssrc", "payload_type", "codec", "clock_rate",
    "clock_source", "packets", "lost", "missing", "duplicates", "reordered", "loss_fraction",
    "delta_min_ms", "delta_mean_ms", "delta_max_ms", "jitter_mean_ms", "jitter_max_ms",
    "burst_density", "gap_density", "burst_duration_ms", "gap_duration_ms", "r_factor", "mos", "series",
)


def _cs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callscope", *args], capture_output=True, text=True)


def _json(path) -> dict:
    p = _cs("analyze", "--format", "json", str(path))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_json_document_carries_every_documented_key():
    doc = _json(FIXTURES / "rtpproxy__lost.a.pcap")
    assert doc["schema"] == "callscope/1"
    assert doc["capture"]["packets"] == 244 and doc["capture"]["udp_datagrams"] == 244
    (s,) = doc["streams"]
    missing = [k for k in STREAM_KEYS if k not in s]
    assert not missing, missing
    assert (s["kind"], s["ssrc"], s["codec"], s["clock_rate"], s["clock_source"]) == (
        "rtp", 0x0A7328F3, "G729", 8000, "static")
    # rtpproxy's own analysis of this recording: 565 sent, 244 received
    assert (s["packets"], s["expected"], s["lost"], s["missing"], s["duplicates"]) == (244, 565, 321, 321, 0)
    assert s["loss_fraction"] == pytest.approx(321 / 565)
    assert s["mos"] < 2.0 and s["r_factor"] < 40  # 57 % loss can never sound good
    series = s["series"]
    assert len(series["packets"]) == len(series["loss_fraction"]) >= 5
    assert sum(series["packets"]) == 244
    assert doc["verdict"]["pattern"] == "bursty-loss"


def test_duplicates_do_not_hide_loss_and_the_table_shows_what_is_missing():
    doc = _json(FIXTURES / "rtpproxy__dups.a.pcap")
    (s,) = doc["streams"]
    assert (s["lost"], s["missing"], s["duplicates"]) == (-1, 0, 1)  # Wireshark's -1, and the truth
    text = _cs("analyze", str(FIXTURES / "rtpproxy__dups.a.pcap")).stdout
    row = next(line for line in text.splitlines() if "0xAE9DD7AF" in line)
    assert row.split()[6:8] == ["384", "0"]  # pkts, lost (= missing)


def test_markdown_and_csv_have_one_row_per_stream():
    md = _cs("analyze", "--format", "markdown", str(FIXTURES / "rtpproxy__DLT_NULL.a.pcap")).stdout
    rows = [line for line in md.splitlines() if line.startswith("| s")]
    assert len(rows) == 3
    out = _cs("analyze", "--format", "csv", str(FIXTURES / "rtpproxy__DLT_NULL.a.pcap")).stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert sorted(int(r["packets"]) for r in table) == [51, 249, 300]
    assert all(r["lost"] == "0" for r in table)


def test_unreadable_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    p = _cs("analyze", str(bad))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("rtpproxy__*.pcap")))
def test_every_fixture_matches_tshark_run_here(tshark, name):
    """Packets and lost exactly, max delta within 0.01 ms, jitter within 1 % of tshark's."""
    path = FIXTURES / name
    # the recorded command line carries the decode-as option Wireshark needed
    first = (FIXTURES / (name + ".tshark-rtp.txt")).read_text().splitlines()[0]
    decode_as = [a for a in shlex.split(first) if a.startswith("udp.port==")]
    cmd = [tshark, "-q", "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams", "-r", str(path)]
    for d in decode_as:
        cmd += ["-d", d]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    theirs = [m.groupdict() for m in map(ROW.match, out.splitlines()) if m]
    assert theirs, out
    ours = _json(path)["streams"]
    for w in theirs:
        o = next(s for s in ours if s.get("ssrc") == int(w["ssrc"], 16)
                 and s["src_port"] == int(w["sport"]) and s["dst_port"] == int(w["dport"]))
        assert o["packets"] == int(w["pkts"])
        assert o["lost"] == int(w["lost"])
        assert o["delta_max_ms"] == pytest.approx(float(w["dmax"]), abs=0.01)
        if float(w["jmax"]) > 0:
            assert o["jitter_mean_ms"] == pytest.approx(float(w["jmean"]), rel=0.01, abs=0.002)
            assert o["jitter_max_ms"] == pytest.approx(float(w["jmax"]), rel=0.01, abs=0.002)
