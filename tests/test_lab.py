"""The lab without root: scenario -> exact kernel commands, truth from hand-made capture pairs."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from click.testing import CliRunner

from callscope.capture.reader import read_datagrams
from callscope.capture.writer import ipv4_to_int, write_pcap
from callscope.cli import cli
from callscope.diagnose.findings import PATTERNS
from callscope.lab import run as lab_run
from callscope.lab import topology as topo
from callscope.lab.catalogue import catalogue
from callscope.lab.endpoint import RxStats, media_schedule
from callscope.lab.router import cross_schedule
from callscope.lab.scenario import (
    CrossTraffic,
    Gate,
    Media,
    NftRule,
    Qdisc,
    Scenario,
    gate_command,
    gate_schedule,
    nft_ruleset,
    tc_commands,
)
from callscope.lab.truth import follow, occurrence_keys, unmatched_received


def _policer() -> Scenario:
    return Scenario(
        "p", "policing", Media("pcmu", 10.0),
        rules=(NftRule("a->b", "udp dport 40000", "limit rate over 8000 bytes/second burst 1000 bytes"),
               NftRule("b->a", "udp dport 40002", "limit rate over 40/second burst 5 packets", start_s=3.0)),
        gates=(Gate("a->b", 2.5, 0.3, (40000, 40001)),),
        qdiscs=(Qdisc("a->b", "htb", 80000, burst_bytes=400, limit_packets=20),
                Qdisc("b->a", "tbf", 4_000_000, burst_bytes=12000, limit_bytes=37000)),
    )


def test_ruleset_is_one_table_with_a_counted_chain_per_direction():
    assert nft_ruleset(_policer()) == (
        "table inet callscope {\n"
        "\tset gate_ab { type inet_service; flags timeout; }\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        '\t\tiifname "cs-ra" jump ab\n'
        '\t\tiifname "cs-rb" jump ba\n'
        "\t}\n"
        "\tchain ab {\n"
        "\t\tudp dport @gate_ab counter drop\n"
        "\t\tudp dport 40000 limit rate over 8000 bytes/second burst 1000 bytes counter drop\n"
        "\t}\n"
        "\tchain ba {\n"
        "\t}\n"
        "}\n"
    )


def test_mid_call_rules_and_gates_are_scheduled_nft_commands():
    assert gate_schedule(_policer()) == [
        (2.5, ["nft", "add", "element", "inet", "callscope", "gate_ab", "{ 40000 timeout 300ms, 40001 timeout 300ms }"]),
        (3.0, ["nft", "add", "rule", "inet", "callscope", "ba", "udp", "dport", "40002", "limit", "rate", "over",
               "40/second", "burst", "5", "packets", "counter", "drop"]),
    ]
    forever = gate_command(Gate("b->a", 7.0, None, (40002,)))
    assert forever == ["nft", "add", "element", "inet", "callscope", "gate_ba", "{ 40002 }"]
    lossy = Scenario("g", "bursty-loss", Media(), gates=(Gate("a->b", 1.0, 0.1, (40000,), 700),))
    assert "udp dport @bad_ab_700 numgen random mod 1000 < 700 counter drop" in nft_ruleset(lossy)


def test_qdiscs_go_on_the_routers_egress_veth_of_their_direction():
    assert [str(c) for c in tc_commands(_policer())] == [
        "ip netns exec cs-lab-r tc qdisc replace dev cs-rb root handle 1: htb default 10",
        "ip netns exec cs-lab-r tc class add dev cs-rb parent 1: classid 1:10 htb rate 80000bit ceil 80000bit burst 400",
        "ip netns exec cs-lab-r tc qdisc add dev cs-rb parent 1:10 handle 10: pfifo limit 20",
        "ip netns exec cs-lab-r tc qdisc replace dev cs-ra root handle 1: tbf rate 4000000bit burst 12000 limit 37000",
    ]


def test_topology_stays_in_its_namespaces_with_no_default_route():
    cmds = [str(c) for c in topo.setup_commands()]
    assert not any(" default" in c or "nat" in c or "masquerade" in c for c in cmds)
    # every link is created inside a lab namespace, never on the host
    for c in cmds:
        if c.startswith("ip link add"):
            assert c.count(" netns cs-lab-") == 2
    routes = [c for c in cmds if " route " in c]
    assert routes == [
        "ip -n cs-lab-a route add 198.18.0.0/15 via 198.18.1.1 dev cs-a",
        "ip -n cs-lab-b route add 198.18.0.0/15 via 198.18.2.1 dev cs-b",
    ]
    assert all(ns.startswith("cs-lab-") for ns in topo.NAMESPACES)
    assert [str(c) for c in topo.teardown_commands()] == [f"ip netns del {ns}" for ns in topo.NAMESPACES]


def test_catalogue_covers_every_diagnosis_pattern_with_unique_names():
    scenarios = catalogue(1)
    assert {s.label for s in scenarios} == set(PATTERNS)
    assert len({s.name for s in scenarios}) == len(scenarios)
    assert all(set(s.accepted) <= set(PATTERNS) for s in scenarios)
    # the seed decides the parameters, and only the seed
    assert [s.params for s in catalogue(1)] == [s.params for s in scenarios]
    assert [s.params for s in catalogue(2)] != [s.params for s in scenarios]
    only = catalogue(1, ("policing",))
    assert only and all(s.label == "policing" for s in only)
    assert only == [s for s in scenarios if s.label == "policing"]
    fractions = [s.params["rate_fraction"] for s in only]
    assert min(fractions) == pytest.approx(0.6) and max(fractions) == pytest.approx(0.98)
    assert {s.params["unit"] for s in only} == {"bytes", "packets"}


def test_catalogue_lasts_about_half_an_hour():
    total = sum(s.media.duration_s + s.media.tail_s + (sum(s.media.second_call) if s.media.second_call else 0)
                for s in catalogue(1))
    assert 20 * 60 < total < 35 * 60


def test_pcmu_schedule_is_160_bytes_every_20_ms():
    rng = np.random.default_rng(0)
    times, sizes, steps, _ = media_schedule({"codec": "pcmu", "start_s": 1.0, "stop_s": 3.0}, rng)
    assert len(times) == 100
    np.testing.assert_allclose(np.diff(times), 0.02, atol=1e-9)
    assert set(sizes.tolist()) == {160} and set(steps.tolist()) == {160}


def test_dtx_sends_fewer_smaller_packets_in_pauses():
    rng = np.random.default_rng(1)
    times, sizes, _, _ = media_schedule({"codec": "opaque", "start_s": 0.0, "stop_s": 30.0, "dtx": True}, rng)
    gaps = np.diff(times)
    assert len(times) < 0.8 * 1500  # fewer than a steady 50 pps
    silent = sizes[:-1][gaps > 0.03]  # a packet followed by a DTX interval
    assert silent.size > 50 and silent.max() < sizes[:-1][gaps < 0.03].min()


def test_replayed_departures_keep_the_real_gaps():
    rng = np.random.default_rng(2)
    gaps = [0.001, 0.039, 0.02]
    times, _, steps, _ = media_schedule(
        {"codec": "pcmu", "start_s": 0.0, "stop_s": 1.0, "replay_gaps": gaps}, rng)
    np.testing.assert_allclose(np.diff(times)[:6], gaps * 2)
    assert set(steps.tolist()) == {160}  # RTP timestamps stay nominal


def test_rtcp_report_block_counts_loss_and_jitter_per_rfc3550():
    rx = RxStats(8000)
    for k in range(10):
        if k in (3, 4):
            continue
        rx.update(65530 + k & 0xFFFF, k * 160, 100.0 + k * 0.02 + (0.005 if k == 6 else 0.0))
    block = rx.report_block(0x1234, 101.0)
    ssrc, lost_word, ext, jitter, lsr, dlsr = struct.unpack("!IIIIII", block)
    assert ssrc == 0x1234
    assert lost_word & 0xFFFFFF == 2 and lost_word >> 24 == (2 << 8) // 10
    assert ext == (1 << 16) + (65539 & 0xFFFF)  # wrapped once
    # one 5 ms (40 ts units) excursion and its return: J = 40/16, then J += (40 - J)/16
    assert jitter == int(40 / 16 + (40 - 40 / 16) / 16)


def test_cross_traffic_schedule_has_the_planned_rate():
    rng = np.random.default_rng(3)
    t = cross_schedule({"size": 1200, "base_kbit": 400.0, "on_kbit": 0.0}, 100.0, rng)
    rate_kbit = t.size * 8 * 1228 / 100.0 / 1000
    assert rate_kbit == pytest.approx(400.0, rel=0.05)
    assert np.all(np.diff(t) >= 0)


def _rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq & 0xFF]) * 160


def _pcap(path, rows):
    """rows: (time_s, src, sport, dst, dport, payload)"""
    payloads = [r[5] for r in rows]
    data = np.frombuffer(b"".join(payloads), np.uint8)
    lens = np.array([len(p) for p in payloads])
    write_pcap(path, np.array([int(r[0] * 1e9) for r in rows], np.int64),
               np.array([ipv4_to_int(r[1]) for r in rows], np.uint32),
               np.array([ipv4_to_int(r[3]) for r in rows], np.uint32),
               np.array([r[2] for r in rows], np.uint16), np.array([r[4] for r in rows], np.uint16),
               data, np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64), lens, nanosecond=True)
    return read_datagrams(path)


A, B = topo.ADDR_A, topo.ADDR_B


def test_truth_finds_the_exact_dropped_packets_and_delays(tmp_path):
    sent = [(10 + 0.02 * k, A, 40002, B, 40000, _rtp(k, 7)) for k in range(10)]
    stun = struct.pack("!HHI", 1, 0, 0x2112A442) + b"t" * 12
    # ICE: STUN on the media's own 5-tuple, and a retransmission of the same request
    sent += [(10.05, A, 40002, B, 40000, stun), (10.55, A, 40002, B, 40000, stun)]
    sent += [(10.01, B, 40000, A, 40002, _rtp(100, 9))]  # B's own packet at B's capture side
    sent.sort()
    lost = {3, 4, 8}
    recv = [(t + 0.005 + 0.001 * k, s, sp, d, dp, p) for k, (t, s, sp, d, dp, p) in
            enumerate(r for r in sent if r[1] == A) if not (p[:2] == b"\x80\x00" and p[3] in lost)]
    recv = [r for r in recv if not (r[5] == stun and r[0] > 10.5)]  # the retransmission is lost
    a_side = _pcap(tmp_path / "a.pcap", [r for r in sent if r[1] == A])
    b_side = _pcap(tmp_path / "b.pcap", sorted(recv + [r for r in sent if r[1] == B]))
    flows = {f.kind: f for f in follow(a_side, b_side, A, B, "a->b")}
    rtp = flows["rtp"]
    assert (rtp.sent, rtp.dropped, rtp.ssrc) == (10, 3, 7)
    assert np.flatnonzero(~rtp.delivered).tolist() == [3, 4, 8]
    assert rtp.seq[~rtp.delivered].tolist() == [3, 4, 8]
    assert rtp.dropped_ranges() == [[3, 4, 0.06, 0.08], [8, 8, 0.16, 0.16]]
    doc = rtp.to_json()
    assert doc["delay_ms"]["min"] == pytest.approx(5.0, abs=1e-3)
    # the k-th packet A sent was stamped at B 5 ms + k ms after its departure
    assert doc["delay_us"][:4] == [5000, 6000, 7000, 11000]  # the 4th of A's packets was the STUN request
    stun_flow = flows["stun"]
    assert stun_flow.delivered.tolist() == [True, False]  # first copy arrived, the second did not
    assert unmatched_received(a_side, b_side, A, B) == 0


def test_occurrence_keys_tell_repeated_payloads_apart():
    keys = occurrence_keys(np.array([5, 5, 7, 5], np.uint64))
    assert len(set(keys.tolist())) == 4
    assert keys[2] == 7


def test_a_loss_scenario_that_lost_nothing_is_labelled_clean():
    s = Scenario("x", "policing", Media(), params={"direction": "a->b"})
    label, accept, params = lab_run._label(s, [])
    assert (label, accept, params["true_loss_fraction"]) == ("clean", ("clean",), 0.0)
    congested = Scenario("y", "congestion", Media(), params={"direction": "a->b"})
    assert lab_run._label(congested, [])[0] == "jitter"


def test_cross_traffic_spec_is_plain_data():
    x = CrossTraffic("a->b", 100.0, 500.0)
    assert (x.size, x.on_mean_s) == (1200, 0.5)


def test_without_root_the_lab_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(lab_run.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["lab", "run", "clean_pcmu_call_xt", "-o", "/nonexistent"])
    assert isinstance(result.exception, lab_run.LabUnavailable)
    assert str(result.exception) == "callscope lab needs root (network namespaces, nftables, tc): run it as root"
    with pytest.raises(lab_run.LabUnavailable, match="needs root"):
        lab_run.check_host()


def test_lab_list_names_every_scenario():
    result = CliRunner().invoke(cli, ["lab", "list"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == len(catalogue(1))
    assert "police_packets_98pct" in result.output


def test_burst_cross_traffic_leaves_in_back_to_back_clumps():
    rng = np.random.default_rng(4)
    t = cross_schedule({"size": 1200, "base_kbit": 0.0, "on_kbit": 1000.0, "on_mean_s": 1.0, "off_mean_s": 1.0,
                        "clump": 4}, 60.0, rng)
    assert t.size % 4 == 0 and t.size > 400
    clumps = t.reshape(-1, 4)
    assert np.all(clumps == clumps[:, :1])  # four packets at the same instant


def _truth(label, dropped, delay_us, sent=1300, direction="a->b"):
    stream = {"direction": direction, "kind": "rtp", "sent": sent, "dropped": dropped}
    if delay_us is not None:
        stream["delay_us"] = list(delay_us)
    return {"generator": "callscope lab", "label": label, "accept": [label], "params": {"direction": direction},
            "streams": [stream, {"direction": "b->a", "kind": "rtp", "sent": sent, "dropped": 0,
                                 "delay_us": [30] * sent}]}


def test_a_mechanism_that_left_no_trace_also_reads_as_what_the_capture_shows():
    from callscope.lab.readings import with_readings

    rng = np.random.default_rng(1)
    quiet = 30 + rng.integers(0, 40, 1298)  # microseconds: no queue to speak of
    swings = 30 + 150_000 * np.abs(np.sin(np.arange(1298) / 40.0))  # a queue up to 150 ms
    # two drops in 1,300 (0.15 %) from a shared queue that barely formed: clean or jitter too
    doc = with_readings(_truth("congestion", 2, quiet))
    assert doc["accept"] == ["congestion", "jitter", "clean"]
    assert doc["readings"]["loss_fraction"] == pytest.approx(2 / 1300, abs=1e-6)
    # the same drops behind real queueing: jitter, not clean
    assert with_readings(_truth("congestion", 2, swings))["accept"] == ["congestion", "jitter"]
    # a jitter run whose queue never held a millisecond: clean too; with swings: jitter only
    assert with_readings(_truth("jitter", 0, quiet))["accept"] == ["jitter", "clean"]
    assert with_readings(_truth("jitter", 0, swings))["accept"] == ["jitter"]
    # at or above the clean bound (0.5 %) the label's mechanism is what shows
    assert with_readings(_truth("random-loss", 7, quiet[:1293]))["accept"] == ["random-loss"]
    assert with_readings(_truth("random-loss", 6, quiet[:1294]))["accept"] == ["random-loss", "clean"]
    # throttling labels never gain a reading
    assert with_readings(_truth("policing", 2, quiet))["accept"] == ["policing"]
    # per-packet delays unknown (an old truth): quiet cannot be shown
    assert with_readings(_truth("jitter", 0, None))["accept"] == ["jitter"]


def test_readings_are_idempotent_and_replace_their_own_earlier_additions():
    from callscope.lab.readings import with_readings

    quiet = [40] * 1298
    once = with_readings(_truth("congestion", 2, quiet))
    assert with_readings(once) == once
    # the delays turn out to swing (a corrected truth): the earlier "clean" goes
    once["streams"][0]["delay_us"] = list(30 + 150_000 * np.abs(np.sin(np.arange(1298) / 40.0)))
    assert with_readings(once)["accept"] == ["congestion", "jitter"]


def test_relabel_rewrites_accept_and_the_index_of_a_corpus(tmp_path):
    import json

    doc = _truth("congestion", 2, [40] * 1298)
    doc.update(scenario="congestion_x", media={"codec": "pcmu", "duration_s": 26.0},
               verification={"directions": {"a->b": {"truth_equals_kernel": True}}},
               capture={"a": {"dropped_by_kernel": 0}, "b": {"dropped_by_kernel": 0}})
    (tmp_path / "congestion_x.truth.json").write_text(json.dumps(doc))
    (tmp_path / "other.truth.json").write_text(json.dumps({"label": "clean", "accept": ["clean"]}))  # not the lab's
    out = CliRunner().invoke(cli, ["lab", "relabel", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "accept congestion -> congestion, jitter, clean" in out.output
    assert json.loads((tmp_path / "congestion_x.truth.json").read_text())["accept"] == ["congestion", "jitter", "clean"]
    assert json.loads((tmp_path / "other.truth.json").read_text())["accept"] == ["clean"]
    assert "| congestion_x | congestion | congestion, jitter, clean |" in (tmp_path / "INDEX.md").read_text()
