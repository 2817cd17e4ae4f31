"""callscope batch over a directory of simulated captures: gates, reports, cache, Dask, Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from callscope import batch as core
from callscope.synth import simulate, write_capture


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """clean.pcap, policed.pcap, broken.pcap (cut inside its file header), a text file, truth sidecars."""
    root = tmp_path_factory.mktemp("captures")
    write_capture(simulate("clean", seed=1, duration=10), root / "clean.pcap")
    write_capture(simulate("policing", seed=1, duration=10), root / "sub" / "policed.pcap")
    (root / "broken.pcap").write_bytes((root / "clean.pcap").read_bytes()[:10])
    (root / "notes.txt").write_text("not a capture\n")
    return root


from conftest import run_cli  # noqa: E402,F401


def jsonl(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(r["path"]).name: r for r in records}


def test_directory_finds_captures_by_name_and_magic_and_skips_text_and_truth(corpus, tmp_path):
    nameless = tmp_path / "capture-without-suffix"
    shutil.copy(corpus / "clean.pcap", nameless)
    found = core.find_captures([corpus, nameless])
    assert sorted(p.name for p in found) == [
        "broken.pcap", "capture-without-suffix", "clean.pcap", "policed.pcap"]
    assert [p.name for p in core.find_captures([str(corpus / "**" / "*.pcap")])] == [
        "broken.pcap", "clean.pcap", "policed.pcap"]


def test_report_records_scores_and_the_broken_capture_as_an_error_row(corpus, tmp_path, capsys):
    code, out, err = run_cli(capsys, "batch", str(corpus), "--jobs", "2", "--jsonl", str(tmp_path / "r.jsonl"))
    assert code == 1  # the unreadable capture, no gate configured
    records = jsonl(tmp_path / "r.jsonl")
    assert sorted(records) == ["broken.pcap", "clean.pcap", "policed.pcap"]
    clean, policed, broken = records["clean.pcap"], records["policed.pcap"], records["broken.pcap"]
    assert clean["status"] == "pass" and clean["verdict"] == "clean"
    assert clean["streams"] == 2 and clean["scored_streams"] == 2
    assert clean["worst_mos"] > 4.0 and clean["max_loss_fraction"] == 0.0
    assert policed["verdict"] == "policing" and policed["verdict_confidence"] > 0.5
    assert 0.3 < policed["max_loss_fraction"] < 0.5
    assert policed["worst_mos"] < 2.5
    assert "policing" in [f["pattern"] for f in policed["findings"]]
    assert broken["status"] == "error" and broken["error_type"] == "CorruptCaptureError"
    assert "broken.pcap" in broken["error"] and broken["verdict"] is None
    assert all(r["duration_s"] > 0 for r in (clean, policed))
    assert "3 captures: 2 passed, 0 failed, 1 error (0 from cache, 3 analyzed)" in out
    assert "[3/3]" in err
    assert run_cli(capsys, "batch", str(corpus), "--jobs", "1", "--allow-errors")[0] == 0


@pytest.mark.parametrize(
    ("gate", "code"),
    [
        (["--fail-under-mos", "3.8"], 1),
        (["--fail-under-mos", "1.5"], 0),
        (["--max-loss", "0.05"], 1),
        (["--max-loss", "0.6"], 0),
        (["--max-jitter-ms", "0.1"], 1),
        (["--max-jitter-ms", "50"], 0),
        (["--fail-on", "cutoff,policing"], 1),
        (["--fail-on", "cutoff", "--fail-on", "one-way"], 0),
    ],
)
def test_each_gate_sets_the_exit_code(corpus, capsys, gate, code):
    files = [str(corpus / "clean.pcap"), str(corpus / "sub" / "policed.pcap")]
    assert run_cli(capsys, "batch", *files, "--jobs", "1", *gate)[0] == code


def test_usage_errors_exit_2(corpus, capsys):
    code, _, err = run_cli(capsys, "batch", str(corpus), "--fail-on", "policing,throttled")
    assert code == 2 and "unknown pattern throttled" in err and "codec-downshift" in err
    assert run_cli(capsys, "batch", str(corpus / "missing"))[0] == 2
    assert run_cli(capsys, "batch", str(corpus / "*.nothing"))[0] == 2
    assert run_cli(capsys, "batch", str(corpus), "--jobs", "2", "--dask", "tcp://127.0.0.1:1")[0] == 2
    assert run_cli(capsys, "batch", str(corpus), "--max-loss", "5")[0] == 2


def test_junit_counts_failures_with_evidence_and_errors(corpus, tmp_path, capsys):
    report = tmp_path / "out" / "report.xml"
    code, _, _ = run_cli(capsys, "batch", str(corpus), "--jobs", "1", "--fail-on", "policing",
                         "--fail-under-mos", "3.8", "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors"),
                element.get("skipped")) == ("3", "1", "1", "0")
        assert float(element.get("time")) > 0
    assert suite.get("timestamp") and suite.get("hostname")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert sorted(cases) == ["broken.pcap", "clean.pcap", "policed.pcap"]
    assert cases["clean.pcap"].find("failure") is None and cases["clean.pcap"].find("error") is None
    failures = {f.get("type"): f for f in cases["policed.pcap"].findall("failure")}
    assert sorted(failures) == ["fail-on", "fail-under-mos"]
    assert failures["fail-on"].get("message").startswith("policing (confidence ")
    assert "drop_spacing_cv = " in failures["fail-on"].text
    assert failures["fail-under-mos"].get("message").startswith("worst MOS 1.")
    assert cases["policed.pcap"].get("classname").endswith("sub")
    error = cases["broken.pcap"].find("error")
    assert error.get("type") == "CorruptCaptureError" and "file header" in error.get("message")


def test_markdown_summary_and_csv_have_one_row_per_capture(corpus, tmp_path, capsys):
    summary, table = tmp_path / "summary.md", tmp_path / "r.csv"
    run_cli(capsys, "batch", str(corpus), "--jobs", "1", "--max-loss", "0.02",
            "--summary", str(summary), "--csv", str(table))
    text = summary.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 3
    (policed,) = [r for r in rows if "policed.pcap" in r]
    cells = [c.strip() for c in policed.strip("|").split("|")]
    assert cells[1:3] == ["❌ fail", "policing"]
    assert 30.0 < float(cells[5].rstrip("%")) < 50.0
    assert "Gates: `--max-loss 0.02`" in text
    assert "**max-loss**: loss " in text and "error: " in text
    with table.open() as fh:
        by_name = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert by_name["policed.pcap"]["status"] == "fail" and by_name["clean.pcap"]["status"] == "pass"
    assert by_name["broken.pcap"]["error"].endswith("(10 of 24 bytes)")
    assert by_name["policed.pcap"]["failed_gates"].startswith("loss ")


def test_cache_reanalyses_only_new_or_changed_captures(corpus, tmp_path, capsys):
    work = tmp_path / "captures"
    shutil.copytree(corpus, work)
    cache, out1, out2 = tmp_path / "cache", tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    args = ("batch", str(work), "--jobs", "1", "--cache", str(cache), "--allow-errors")
    _, stdout, _ = run_cli(capsys, *args, "--jsonl", str(out1))
    assert "(0 from cache, 3 analyzed)" in stdout
    _, stdout, _ = run_cli(capsys, *args, "--jsonl", str(out2))
    assert "(3 from cache, 0 analyzed)" in stdout
    first, second = jsonl(out1), jsonl(out2)
    for name in first:
        assert second[name]["cached"] and not first[name]["cached"]
        for key in ("verdict", "worst_mos", "max_loss_fraction", "findings", "error"):
            assert second[name][key] == first[name][key]
    write_capture(simulate("clean", seed=2, duration=10), work / "clean.pcap")
    write_capture(simulate("clean", seed=3, duration=10), work / "new.pcap")
    _, stdout, _ = run_cli(capsys, *args, "--jsonl", str(out2))
    assert "(2 from cache, 2 analyzed)" in stdout
    assert not jsonl(out2)["clean.pcap"]["cached"] and jsonl(out2)["policed.pcap"]["cached"]


@pytest.mark.slow
def test_interrupt_leaves_complete_reports_for_what_finished(corpus, tmp_path):
    work = tmp_path / "many"
    work.mkdir()
    long_call = tmp_path / "long.pcap"
    write_capture(simulate("policing", seed=4, duration=120), long_call)
    for i in range(60):
        os.link(long_call, work / f"call{i:02d}.pcap")
    out = {k: tmp_path / f"r.{k}" for k in ("jsonl", "csv", "junit", "summary")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "callscope", "batch", str(work), "--jobs", "2",
         *(a for k, p in out.items() for a in (f"--{k}", str(p)))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out["jsonl"].exists() and len(out["jsonl"].read_text().splitlines()) >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    finished = [json.loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert 4 <= len(finished) < 60
    assert "interrupted after" in err
    suite = ET.parse(out["junit"]).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(suite.findall("testcase")) == len(finished)
    with out["csv"].open() as fh:
        assert len(list(csv.DictReader(fh))) == len(finished)
    assert f"{len(finished)} captures: " in out["summary"].read_text()
    assert "not scored" in out["summary"].read_text()


@pytest.mark.slow
def test_dask_cluster_gives_the_same_records_as_the_local_pool(corpus, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    local, remote = tmp_path / "local.jsonl", tmp_path / "dask.jsonl"
    code_local, _, _ = run_cli(capsys, "batch", str(corpus), "--jobs", "2", "--fail-under-mos", "3.8",
                               "--jsonl", str(local))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        code_dask, _, _ = run_cli(capsys, "batch", str(corpus), "--dask", cluster.scheduler_address,
                                  "--fail-under-mos", "3.8", "--jsonl", str(remote))
    assert code_local == code_dask == 1
    a, b = jsonl(local), jsonl(remote)
    assert sorted(a) == sorted(b) == ["broken.pcap", "clean.pcap", "policed.pcap"]
    for name in a:
        a[name].pop("duration_s"), b[name].pop("duration_s")
        assert a[name] == b[name]


def test_analyze_gates_exit_1_when_crossed(corpus, capsys):
    policed = str(corpus / "sub" / "policed.pcap")
    code, _, err = run_cli(capsys, "analyze", policed, "--fail-on", "policing")
    assert code == 1 and "gate fail-on failed: policing (confidence" in err
    assert run_cli(capsys, "analyze", policed, "--fail-on", "cutoff", "--max-loss", "0.5")[0] == 0
    assert run_cli(capsys, "analyze", policed, "--fail-under-mos", "3.8")[0] == 1
    assert run_cli(capsys, "analyze", str(corpus / "clean.pcap"), "--fail-under-mos", "3.8")[0] == 0
    assert run_cli(capsys, "analyze", policed, "--fail-on", "robotic")[0] == 2
