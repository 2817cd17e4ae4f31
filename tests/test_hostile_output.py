"""Batch that loses nothing, and capture text escaped in every output (issue 17)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import callscope
from callscope import batch as core
from callscope.report.text import csv_report, markdown_report, text_report
from hostile_captures import NS, A, B, rtp_rows, sdp, sip_invite, write_datagrams
from test_hostile import assert_one_error_line, run_cli

T = 1_700_000_000 * NS


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A short RTP call capture."""
    return write_datagrams(tmp_path_factory.mktemp("good") / "call.pcap", rtp_rows(250, T))


def _hostile_sip_capture(path: Path, call_id: str, codec: str) -> Path:
    rows = [(T - NS, A, B, 5060, 5060, sip_invite(call_id, sdp("5000", rtpmap=f"96 {codec}/8000", pts="96")))]
    return write_datagrams(path, rows + rtp_rows(250, T, pt=96))


# ------------------------------------------------------------------ escaping


def test_terminal_output_shows_control_sequences_escaped(tmp_path, capsys):
    call_id = "x\x1b]0;owned\x07\x1b[2J@host"  # retitle the window, clear the screen
    path = _hostile_sip_capture(tmp_path / "esc.pcap", call_id, "PCMU")
    report = callscope.analyze(path)
    assert report.inventory.sip.calls[0].call_id == call_id
    text = text_report(report)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07\\x1b[2J" in text
    code, out, _ = run_cli(capsys, "analyze", str(path))
    assert code == 0 and "\x1b" not in out and "\\x1b" in out


def test_csv_cells_that_look_like_formulas_are_neutralised(tmp_path, capsys):
    codec = '=HYPERLINK("x","y")'
    path = _hostile_sip_capture(tmp_path / "formula.pcap", "f@x", codec)
    rows = list(csv.DictReader(io.StringIO(csv_report(callscope.analyze(path)))))
    assert rows[0]["codec"] == "'" + codec
    # numbers stay numbers: a negative value is not text from the capture
    assert all(not v.startswith("'-") for r in rows for k, v in r.items() if k != "codec")
    code, out, _ = run_cli(capsys, "analyze", str(path), "--format", "csv")
    assert code == 0 and ",=HYPERLINK" not in out and "'=HYPERLINK" in out


def test_markdown_output_escapes_capture_text(tmp_path):
    codec = "<marquee>*x*|"
    path = _hostile_sip_capture(tmp_path / "md.pcap", "m@x", codec)
    md = markdown_report(callscope.analyze(path))
    assert "<marquee>" not in md and "\\<marquee\\>\\*x\\*\\|" in md


def test_batch_markdown_summary_and_junit_escape_file_names(tmp_path, good, capsys):
    work = tmp_path / "in"
    work.mkdir()
    name = "<img src=x onerror=alert(1)>.pcap"
    (work / name).write_bytes(good.read_bytes())
    (work / "broken <b>.pcap").write_bytes(b"<script>alert(1)</script> not a capture")
    summary, junit = tmp_path / "s.md", tmp_path / "j.xml"
    code, _, err = run_cli(capsys, "batch", str(work), "--jobs", "1", "--summary", str(summary),
                           "--junit", str(junit), "--allow-errors")
    assert code == 0, err
    text = summary.read_text()
    outside_code = "".join(text.split("`")[::2])  # what is not inside a code span
    assert "<img" not in outside_code and "<script" not in outside_code and "<b>" not in outside_code
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert sorted(c.get("name") for c in cases) == sorted([name, "broken <b>.pcap"])


# ------------------------------------------------------------------ non-UTF-8 names


def test_non_utf8_file_name_keeps_every_batch_output(tmp_path, good, capsys):
    work = tmp_path / "in"
    work.mkdir()
    raw = os.fsencode(work) + b"/caf\xe9.pcap"
    with open(raw, "wb") as fh:
        fh.write(good.read_bytes())
    (work / "ok.pcap").write_bytes(good.read_bytes())
    out = {k: tmp_path / f"r.{k}" for k in ("jsonl", "csv", "junit", "summary")}
    code, stdout, err = run_cli(capsys, "batch", str(work), "--jobs", "1",
                                *(a for k, p in out.items() for a in (f"--{k}", str(p))))
    assert code == 0, err
    assert "caf\\xe9.pcap" in stdout
    records = [json.loads(line) for line in out["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == ["caf\\xe9.pcap", "ok.pcap"]
    assert len(list(csv.DictReader(out["csv"].open(encoding="utf-8")))) == 2
    assert len(ET.parse(out["junit"]).getroot().find("testsuite").findall("testcase")) == 2
    assert "caf\\\\xe9.pcap" in out["summary"].read_text(encoding="utf-8") or \
        "caf\\xe9.pcap" in out["summary"].read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    code, out_text, _ = run_cli(capsys, "analyze", os.fsdecode(raw))
    assert code == 0 and "caf\\xe9.pcap" in out_text
    code, out_json, _ = run_cli(capsys, "analyze", os.fsdecode(raw), "--format", "json")
    assert code == 0 and json.loads(out_json)["capture"]["path"].endswith("caf\\xe9.pcap")
    code, out_json, _ = run_cli(capsys, "info", os.fsdecode(raw), "--format", "json")
    assert code == 0 and json.loads(out_json)[0]["path"].endswith("caf\\xe9.pcap")
    code, out_text, _ = run_cli(capsys, "info", os.fsdecode(raw))
    assert code == 0 and "caf\\xe9.pcap" in out_text


# ------------------------------------------------------------------ batch loses nothing


def test_corrupt_cache_entries_are_reanalyzed_not_fatal(tmp_path, good, capsys):
    work = tmp_path / "in"
    work.mkdir()
    for i in (0, 2):
        (work / f"c{i}.pcap").write_bytes(good.read_bytes())
    (work / "c1.pcap").write_bytes(write_datagrams(tmp_path / "x.pcap", rtp_rows(260, T)).read_bytes())
    cache = tmp_path / "cache"
    args = ("batch", str(work), "--jobs", "1", "--cache", str(cache))
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    entries = sorted(p for p in cache.rglob("*.json"))
    assert len(entries) == 2  # c0 and c2 share their content
    entries[0].write_text(json.dumps({"score": "not a score", "error": 5}))  # wrong types
    entries[1].unlink()
    entries[1].mkdir()  # a directory where the entry belongs
    jsonl = tmp_path / "r.jsonl"
    code, stdout, err = run_cli(capsys, *args, "--jsonl", str(jsonl))
    assert code == 0, err
    assert len(jsonl.read_text().splitlines()) == 3
    assert "(0 from cache, 3 analyzed)" in stdout
    assert all(p.is_file() for p in cache.rglob("*.json"))  # the damaged entries were rewritten
    code, stdout, _ = run_cli(capsys, *args)
    assert "(3 from cache, 0 analyzed)" in stdout


def test_a_killed_worker_costs_only_its_capture(tmp_path, good, monkeypatch):
    work = tmp_path / "in"
    work.mkdir()
    for i in range(6):
        (work / f"c{i}.pcap").write_bytes(good.read_bytes())
    (work / "die.pcap").write_bytes(good.read_bytes())
    real = core.score_capture

    def score(path, options):
        if Path(path).name == "die.pcap":
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or `kill -9` would
        return real(path, options)

    monkeypatch.setattr(core, "score_capture", score)  # inherited by the forked workers
    results = list(core.run(core.find_captures([work]), jobs=2))
    by_name = {Path(r.path).name: r for r in results}
    assert len(results) == 7 and len(by_name) == 7
    assert by_name["die.pcap"].score is None and "killed by SIGKILL" in by_name["die.pcap"].error
    assert all(r.score is not None for n, r in by_name.items() if n != "die.pcap")


def test_outputs_refuse_symlinks_fifos_and_devices_and_leave_them_alone(tmp_path, good, capsys):
    target = tmp_path / "real.csv"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.xml"
    os.mkfifo(fifo)
    for option, path, needle in (("--csv", link, "symbolic link"), ("--junit", fifo, "not a regular file"),
                                 ("--junit", Path("/dev/full"), "not a regular file"),
                                 ("--summary", Path("/dev/null"), "not a regular file")):
        code, out, err = run_cli(capsys, "batch", str(good), option, str(path))
        assert_one_error_line(code, err, needle)
    assert target.read_text() == "keep me" and link.is_symlink()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode) and stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_unwritable_outputs_are_refused_before_any_capture_is_analyzed(tmp_path, good, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the batch ran before its outputs were checked")

    monkeypatch.setattr(core, "run", never)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for option in ("--csv", "--jsonl", "--junit", "--summary"):
        code, _, err = run_cli(capsys, "batch", str(good), option, str(blocker / "out"))
        assert_one_error_line(code, err, "is a file, not a directory")
    code, _, err = run_cli(capsys, "batch", str(good), "--cache", "/proc/callscope-cache")
    assert_one_error_line(code, err, "cannot create")


def test_outputs_are_replaced_whole_through_a_temporary_file(tmp_path, good, capsys):
    table = tmp_path / "r.csv"
    table.write_text("old\n")
    before = os.stat(table).st_ino
    code, _, _ = run_cli(capsys, "batch", str(good), "--csv", str(table))
    assert code == 0
    assert table.read_text().startswith("path,status") and os.stat(table).st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
