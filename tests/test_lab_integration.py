"""The lab for real: three short scenarios in network namespaces, as root (CI has root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from click.testing import CliRunner

from callscope.cli import cli
from callscope.evaluate import evaluate, pair_capture
from callscope.lab import run as lab_run
from callscope.lab.catalogue import background
from callscope.lab.scenario import Gate, Media, NftRule, Scenario, media_dports

pytestmark = pytest.mark.slow


def _namespaces_work() -> str | None:
    try:
        lab_run.check_host()
    except lab_run.LabUnavailable as e:
        return str(e)
    probe = "cs-lab-probe"
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return f"network namespaces cannot be created here: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _scenarios() -> list[Scenario]:
    import numpy as np

    rng = np.random.default_rng(5)
    qd, xt = background(rng, ("a->b", "b->a"))
    police = Scenario(
        "it_police", "policing", Media("pcmu", 8.0), vantage="b",
        rules=(NftRule("a->b", "udp dport 40000", "limit rate over 35/second burst 4 packets"),),
        params={"unit": "packets", "nft_rate": 35, "nft_burst": 4, "direction": "a->b", "start_s": 0.0}, seed=11)
    cut = Scenario(
        "it_cutoff", "cutoff", Media("opus", 10.0), accept=("cutoff", "one-way"),
        gates=tuple(Gate(d, 4.0, None, media_dports(d)[:2]) for d in ("a->b", "b->a")),
        params={"cut_at_s": 4.0, "direction": "a->b"}, seed=12)
    clean = Scenario("it_clean_xt", "clean", Media("pcmu", 8.0), qdiscs=qd, cross=xt, seed=13)
    return [police, cut, clean]


def _leftovers() -> tuple[str, str, str]:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return ns, links, procs


def test_three_real_scenarios_match_the_kernel_counters_and_leave_nothing(tmp_path):
    reason = _namespaces_work()
    if reason:
        pytest.skip(reason)
    docs = {}
    try:
        for s in _scenarios():
            docs[s.name] = lab_run.run_scenario(s, tmp_path)
    except lab_run.LabBusy as e:
        pytest.skip(str(e))
    for name, doc in docs.items():
        v = doc["verification"]
        assert v["ok"], (name, v)
        for d, x in v["directions"].items():
            assert x["truth_dropped"] == x["kernel_dropped_call_packets"], (name, d)
        assert doc["capture"]["a"]["dropped_by_kernel"] == 0 == doc["capture"]["b"]["dropped_by_kernel"]
    police = docs["it_police"]["verification"]["directions"]["a->b"]
    # 50 pps through a 35 pps policer for 8 s: about (50 - 35) x 8 - burst drops, all by nft
    assert 90 < police["nft_dropped"] < 130 and police["qdisc_dropped"] == 0
    cut = docs["it_cutoff"]
    rtp_ab = [st for st in cut["streams"] if st["kind"] == "rtp" and st["direction"] == "a->b"][0]
    assert rtp_ab["dropped_index"][0] == pytest.approx(200, abs=3)  # 4 s of 20 ms frames
    assert rtp_ab["dropped_index"] == list(range(rtp_ab["dropped_index"][0], rtp_ab["sent"]))
    assert cut["params"]["time_s"] == pytest.approx(4.0, abs=0.1)
    clean = docs["it_clean_xt"]
    assert clean["label"] == "clean"
    assert all(x["cross_traffic_sent"] > 0 for x in clean["verification"]["directions"].values())
    ns, links, procs = _leftovers()
    assert "cs-lab" not in ns
    assert "cs-" not in links
    assert "callscope.lab.endpoint" not in procs and "callscope.lab.router" not in procs
    for name in docs:
        assert (tmp_path / f"{name}.pcap").stat().st_ino == (tmp_path / f"{name}.b.pcap").stat().st_ino
        assert json.loads((tmp_path / f"{name}.truth.json").read_text())["label"]
    result = subprocess.run([sys.executable, "-m", "callscope", "evaluate", str(tmp_path)],
                            capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert "3 labelled captures" in result.stdout and "macro-F1" in result.stdout
    # The diagnosis on kernel-made impairments, every run: each read right.
    ev = evaluate([tmp_path])
    assert [(c.path.name, c.correct) for c in ev.cases] == [(f"{n}.pcap", True) for n in sorted(docs)], [
        (c.path.name, c.predicted) for c in ev.cases]
    # ... and from both ends of each call.
    ev2 = evaluate([tmp_path], pair_capture)
    assert [(c.path.name, c.correct) for c in ev2.cases] == [(f"{n}.pcap", True) for n in sorted(docs)], [
        (c.path.name, c.predicted, c.error) for c in ev2.cases]


def test_a_failing_run_tears_everything_down(tmp_path):
    reason = _namespaces_work()
    if reason:
        pytest.skip(reason)
    bad = replace(_scenarios()[0], name="it_bad",
                  rules=(NftRule("a->b", "udp dport 40000", "this is not nft syntax"),))
    try:
        with pytest.raises(lab_run.LabError, match="nft"):
            lab_run.run_scenario(bad, tmp_path)
    except lab_run.LabBusy as e:
        pytest.skip(str(e))
    ns, links, _ = _leftovers()
    assert "cs-lab" not in ns and "cs-" not in links


def test_cli_run_of_an_unknown_scenario_is_a_usage_error(tmp_path):
    reason = _namespaces_work()
    if reason:
        pytest.skip(reason)
    result = CliRunner().invoke(cli, ["lab", "run", "no_such_scenario", "-o", str(tmp_path)])
    assert "no lab scenario 'no_such_scenario'" in str(result.exception)
