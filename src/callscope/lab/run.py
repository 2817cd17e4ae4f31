"""Run a lab scenario: build the namespaces, impair, capture both ends, tear down, write truth.

Everything the lab creates is named with the ``cs-lab`` prefix and lives in
three network namespaces; teardown deletes them by name in a ``finally``
(also on an error, SIGINT or SIGTERM), after killing whatever still runs
inside them. A run starts by removing any stale lab namespaces a killed run
left behind (:func:`clean`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from callscope.capture.reader import read_datagrams
from callscope.errors import CallscopeError
from callscope.lab import topology as topo
from callscope.lab.readings import with_readings
from callscope.lab.scenario import (
    A_RTP,
    A_RTP_2,
    A_SIP,
    B_RTP,
    B_RTP_2,
    B_SIP,
    DIRECTIONS,
    EGRESS,
    NFT_FAMILY,
    NFT_TABLE,
    STUN_PORT,
    Scenario,
    gate_schedule,
    nft_ruleset,
    tc_commands,
)
from callscope.lab.truth import FlowTruth, follow, unmatched_received

#: Seconds between starting the processes and media start (Python start-up, SIP before media).
LEAD_S = 2.0
SIP_LEAD_S = 0.8
TOOLS = ("ip", "nft", "tc", "tcpdump")
#: Patterns whose truth is "packets were lost": with no loss at all the run is clean.
LOSS_PATTERNS = frozenset({"random-loss", "bursty-loss", "intermittent-outage", "policing", "cutoff",
                           "one-way", "congestion"})


#: Held for the whole of a run: the lab's names are fixed, so two runs at once would tear each other down.
LOCK_PATH = Path("/run/lock/callscope-lab.lock")


class LabBusy(CallscopeError):
    """Another lab run holds the lock."""


_held = 0


@contextmanager
def lab_lock() -> Iterator[None]:
    """Hold the lab's lock (re-entrant within this process), or raise :class:`LabBusy` at once."""
    global _held
    if _held:
        _held += 1
        try:
            yield
        finally:
            _held -= 1
        return
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabBusy(f"another callscope lab run is in progress (it holds {LOCK_PATH}): wait for it") from None
        _held = 1
        try:
            yield
        finally:
            _held = 0
            fcntl.flock(f, fcntl.LOCK_UN)


class LabUnavailable(CallscopeError):
    """The lab cannot run here (not Linux, not root, a tool missing, no namespaces)."""


class LabError(CallscopeError):
    """A lab run failed (a command, a process, or the capture)."""


def check_host() -> None:
    """Raise :class:`LabUnavailable` with one line saying what is missing."""
    if not sys.platform.startswith("linux"):
        raise LabUnavailable(f"callscope lab needs Linux network namespaces (this is {sys.platform})")
    if os.geteuid() != 0:
        raise LabUnavailable("callscope lab needs root (network namespaces, nftables, tc): run it as root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise LabUnavailable(f"callscope lab needs {', '.join(missing)}: install iproute2, nftables, tcpdump")


def _run(cmd: topo.Command | list[str], stdin: str | None = None, check: bool = True) -> str:
    argv = cmd.full() if isinstance(cmd, topo.Command) else cmd
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {p.stderr.strip().splitlines()[-1:] or p.returncode}")
    return p.stdout


def lab_namespaces() -> list[str]:
    """The lab's namespaces that exist now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(topo.PREFIX + "-")]


def clean() -> list[str]:
    """Kill every process inside the lab's namespaces and delete them; returns what was removed."""
    removed = []
    for ns in lab_namespaces():
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        removed.append(ns)
    return removed


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM (and SIGHUP) become KeyboardInterrupt, so ``finally`` tears down."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _start_tcpdump(ns: str, dev: str, path: Path) -> tuple[subprocess.Popen, list[str]]:
    argv = ["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-p", "-s", "0", "-B", "8192",
            "--immediate-mode", "-U", "--time-stamp-precision=nano", "-Z", "root", "-w", str(path),
            topo.CAPTURE_FILTER]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10.0
    lines: list[str] = []
    stderr = p.stderr
    assert stderr is not None  # stderr=PIPE
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stderr], [], [], 0.2)
        if ready:
            line = stderr.readline()
            if not line:
                break
            lines.append(line.strip())
            if "listening on" in line:
                return p, argv
        if p.poll() is not None:
            break
    p.kill()
    raise LabError(f"tcpdump on {ns}/{dev} did not start: {' | '.join(lines)[-200:]}")


def _stop_tcpdump(p: subprocess.Popen) -> dict[str, int]:
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    stats = {}
    for key, pat in (("captured", r"(\d+) packets? captured"), ("received_by_filter", r"(\d+) packets? received by filter"),
                     ("dropped_by_kernel", r"(\d+) packets? dropped by kernel")):
        m = re.search(pat, err or "")
        stats[key] = int(m.group(1)) if m else -1
    return stats


def _counters() -> dict[str, Any]:
    nft = json.loads(_run(topo.Command(("nft", "-j", "list", "table", NFT_FAMILY, NFT_TABLE), topo.NS_R)))
    drops = {d: 0 for d in DIRECTIONS}
    rules = []
    chain_dir = {"ab": "a->b", "ba": "b->a"}
    for item in nft.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("chain") not in chain_dir:
            continue
        pk = sum(e["counter"]["packets"] for e in rule["expr"] if isinstance(e, dict) and "counter" in e)
        by = sum(e["counter"]["bytes"] for e in rule["expr"] if isinstance(e, dict) and "counter" in e)
        drops[chain_dir[rule["chain"]]] += pk
        rules.append({"chain": rule["chain"], "handle": rule.get("handle"), "packets": pk, "bytes": by})
    tc: dict[str, Any] = {}
    for d in DIRECTIONS:
        dev = EGRESS[d]
        q = _qdiscs(dev)
        root = [x for x in q if x.get("root")]
        tc[d] = {"dev": dev, "qdiscs": q, "root_drops": int(root[0].get("drops", 0)) if root else 0,
                 "root_kind": root[0].get("kind") if root else None}
    return {"nft_drops": drops, "nft_rules": rules, "tc": tc}


#: Longest wait for the router's queues to empty after the senders stopped (s):
#: a shaper's standing queue still holds packets then (60 packets at 87 % of a
#: 64 kbit/s call drain in about 1.2 s); stopping the captures before they
#: leave would count them as dropped while the kernel counts them as queued.
DRAIN_TIMEOUT_S = 5.0


def _qdiscs(dev: str) -> list[dict[str, Any]]:
    """``tc -s -j qdisc show`` of one router interface: every qdisc with its counters."""
    return json.loads(_run(topo.Command(("tc", "-s", "-j", "qdisc", "show", "dev", dev), topo.NS_R)) or "[]")


def _backlog() -> int:
    """Packets waiting in the router's root qdiscs."""
    return sum(int(x.get("qlen", 0)) for d in DIRECTIONS for x in _qdiscs(EGRESS[d]) if x.get("root"))


def _wait_drained(timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Until every queue in the router is empty (and its last packet captured), or the timeout."""
    deadline = time.monotonic() + timeout_s
    while _backlog() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.1)


def _stream_cfgs(s: Scenario, rng: np.random.Generator) -> tuple[list[dict], list[dict], list[dict]]:
    """Endpoint stream configs (A's, B's) and SIP calls (shared) for the scenario's media."""
    m = s.media
    pt = 0 if m.codec == "pcmu" else 111
    calls = [(0.0, m.duration_s, A_RTP, B_RTP)]
    if m.second_call:
        gap, dur = m.second_call
        start = m.duration_s + gap
        calls.append((start, start + dur, A_RTP_2, B_RTP_2))
    a_streams: list[dict[str, Any]] = []
    b_streams: list[dict[str, Any]] = []
    sip: list[dict[str, Any]] = []
    for i, (start, stop, ap, bp) in enumerate(calls):
        for side, lp, pp, peer, relay_port in (("a", ap, bp, topo.ADDR_B, 50000), ("b", bp, ap, topo.ADDR_A, 50002)):
            cfg = {
                "name": f"{side}{i}", "codec": m.codec, "pt": pt, "local_port": lp, "peer": peer, "peer_port": pp,
                "start_s": start, "stop_s": stop, "ssrc": int(rng.integers(1, 2**32)),
                "seq0": int(rng.integers(0, 2**16)), "ts0": int(rng.integers(0, 2**32)),
                "rtcp": m.rtcp and m.codec != "opaque", "dtx": m.dtx, "ice": m.ice,
                "downshift_at_s": m.downshift_at_s, "send": side == "a" or m.two_way,
                "replay_gaps": None,
            }
            if m.relay_until_s is not None and i == 0:
                cfg["relay"] = {"until_s": m.relay_until_s, "addr": topo.ADDR_RELAY, "port": relay_port}
            (a_streams if side == "a" else b_streams).append(cfg)
        if m.sip:
            sip.append({"call_id": f"{rng.integers(0, 2**63):016x}", "invite_s": start - SIP_LEAD_S,
                        "bye_s": stop + 0.05, "codec": m.codec})
    return a_streams, b_streams, sip


def replay_gaps(path: str | os.PathLike[str], limit: int = 5000) -> list[float]:
    """Inter-departure gaps (s) of the busiest UDP flow of a real capture (the pattern to replay)."""
    from callscope.capture.flows import flow_keys, group_rows

    d = read_datagrams(path)
    if len(d) < 3:
        raise LabError(f"{path}: too few packets to replay a departure pattern")
    _, flow = group_rows(flow_keys(d))
    busiest = np.bincount(flow).argmax()
    t = np.sort(d.time_ns[flow == busiest]) / 1e9
    gaps = np.diff(t)
    gaps = gaps[(gaps > 0) & (gaps < 1.0)]
    return [round(float(g), 6) for g in gaps[:limit]]


def _endpoint_cfgs(s: Scenario, t0: float, stop_rel: float, work: Path) -> tuple[dict, dict]:
    rng = np.random.default_rng(s.seed)
    m = s.media
    a_streams, b_streams, calls = _stream_cfgs(s, rng)
    if m.replay:
        gaps = replay_gaps(m.replay)
        for st in a_streams + b_streams:
            st["replay_gaps"] = gaps
    if m.setup_only:
        a_streams, b_streams = [], []
    common = {"t0": t0, "stop_at": t0 + stop_rel, "sink_port": topo.SINK_PORT}
    a = {**common, "role": "a", "local": topo.ADDR_A, "peer": topo.ADDR_B, "seed": s.seed * 2 + 1,
         "streams": a_streams, "log": str(work / "a.json"),
         "sip_calls": [{**c, "role": "uac", "local_port": A_SIP, "peer_port": B_SIP, "media_port": A_RTP} for c in calls]}
    b = {**common, "role": "b", "local": topo.ADDR_B, "peer": topo.ADDR_A, "seed": s.seed * 2 + 2,
         "streams": b_streams, "log": str(work / "b.json"), "stun_server_port": STUN_PORT,
         "sip_calls": [{**c, "role": "uas", "local_port": B_SIP, "peer_port": A_SIP, "media_port": B_RTP} for c in calls]}
    if m.setup_only:
        a["stun_client"] = {"ports": [A_RTP, A_RTP + 2, A_RTP + 4], "server": topo.ADDR_B,
                            "server_port": STUN_PORT, "start_s": 0.0}
    return a, b


def media_end(s: Scenario) -> float:
    """Seconds after media start when the last call's media and signalling end."""
    m = s.media
    end = m.duration_s
    if m.second_call:
        end = m.duration_s + m.second_call[0] + m.second_call[1]
    return end + 0.3


def run_scenario(s: Scenario, out_dir: str | os.PathLike[str], log: Callable[[str], None] = lambda _: None) -> dict:
    """Run ``s`` in the lab and write ``NAME.pcap`` (+ ``.a.pcap``/``.b.pcap``), ``NAME.truth.json``.

    Returns the truth document. Raises :class:`LabUnavailable` where the lab
    cannot run and :class:`LabError` when a run fails (after tearing down).
    """
    check_host()
    with lab_lock():
        return _run_locked(s, Path(out_dir), log)


def _run_locked(s: Scenario, out: Path, log: Callable[[str], None]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    stale = clean()
    if stale:
        log(f"removed stale lab namespaces: {', '.join(stale)}")
    work = Path(tempfile.mkdtemp(prefix=f".{s.name}.", dir=out))
    pcap_a, pcap_b = out / f"{s.name}.a.pcap", out / f"{s.name}.b.pcap"
    procs: list[subprocess.Popen] = []
    roles: list[str] = []  # the lab module each of procs runs
    dumps: list[subprocess.Popen] = []
    setup = topo.setup_commands()
    ruleset = nft_ruleset(s)
    tcs = tc_commands(s)
    schedule = gate_schedule(s)
    doc: dict[str, Any] = {}
    try:
        with _signals_raise():
            for c in setup:
                _run(c)
            _run(topo.Command(("nft", "-f", "-"), topo.NS_R), stdin=ruleset)
            for c in tcs:
                _run(c)
            before = _counters()
            dump_a, cmd_a = _start_tcpdump(topo.NS_A, topo.DEV_A, pcap_a)
            dumps.append(dump_a)
            dump_b, cmd_b = _start_tcpdump(topo.NS_B, topo.DEV_B, pcap_b)
            dumps.append(dump_b)
            end_rel = media_end(s)
            stop_rel = end_rel + s.media.tail_s
            t0 = time.time() + LEAD_S
            a_cfg, b_cfg = _endpoint_cfgs(s, t0, stop_rel, work)
            r_cfg: dict[str, Any] = {"t0": t0, "stop_at": t0 + end_rel, "seed": s.seed * 2 + 3, "log": str(work / "r.json"),
                     "schedule": [[t, argv] for t, argv in schedule], "cross": []}
            for x in s.cross:
                src, dst = (topo.ADDR_RB, topo.ADDR_B) if x.direction == "a->b" else (topo.ADDR_RA, topo.ADDR_A)
                r_cfg["cross"].append({"direction": x.direction, "src": src, "dst": dst, "dst_port": topo.SINK_PORT,
                                       "base_kbit": x.base_kbit, "on_kbit": x.on_kbit, "on_mean_s": x.on_mean_s,
                                       "off_mean_s": x.off_mean_s, "size": x.size, "clump": x.clump, "start_s": -1.0,
                                       "stop_s": end_rel - 0.3})
            if s.media.relay_until_s is not None:
                r_cfg["relay"] = {"addr": topo.ADDR_RELAY, "a": topo.ADDR_A, "a_port": A_RTP,
                                  "b": topo.ADDR_B, "b_port": B_RTP}
            for name, ns, mod, cfg in (("r", topo.NS_R, "router", r_cfg), ("b", topo.NS_B, "endpoint", b_cfg),
                                       ("a", topo.NS_A, "endpoint", a_cfg)):
                path = work / f"{name}.cfg.json"
                path.write_text(json.dumps(cfg))
                procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m",
                                               f"callscope.lab.{mod}", str(path)], env=os.environ.copy()))
                roles.append(f"callscope.lab.{mod}")
            log(f"{s.name}: running {stop_rel:.1f} s of call")
            deadline = t0 + stop_rel + 15.0
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.time()))
            bad = [role for role, p in zip(roles, procs, strict=True) if p.returncode != 0]
            if bad:
                raise LabError(f"{s.name}: lab process {bad[0]} exited with an error")
            time.sleep(0.3)
            _wait_drained()
            cap_a = _stop_tcpdump(dump_a)
            cap_b = _stop_tcpdump(dump_b)
            dumps.clear()
            after = _counters()
            logs = {k: json.loads((work / f"{k}.json").read_text()) for k in ("a", "b", "r")}
            doc = build_truth(s, pcap_a, pcap_b, before, after, logs,
                              {"a": {**cap_a, "command": " ".join(cmd_a)}, "b": {**cap_b, "command": " ".join(cmd_b)}},
                              setup, ruleset, tcs, schedule, t0)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{s.name}: a lab process did not stop by its deadline") from e
    finally:
        for p in procs + dumps:
            if p.poll() is None:
                p.kill()
                p.wait()
        for c in topo.teardown_commands():
            _run(c, check=False)
        clean()
        shutil.rmtree(work, ignore_errors=True)
    single = out / f"{s.name}.pcap"
    if single.exists():
        single.unlink()
    os.link(pcap_a if s.vantage == "a" else pcap_b, single)
    (out / f"{s.name}.truth.json").write_text(json.dumps(doc, indent=1))
    (out / f"{s.name}.sendlog.json").write_text(json.dumps(logs))
    return doc


def _flows(pcap_a: Path, pcap_b: Path) -> tuple[list[FlowTruth], dict[str, int]]:
    da, db = read_datagrams(pcap_a), read_datagrams(pcap_b)
    flows = follow(da, db, topo.ADDR_A, topo.ADDR_B, "a->b") + follow(db, da, topo.ADDR_B, topo.ADDR_A, "b->a")
    stray = {"a->b": unmatched_received(da, db, topo.ADDR_A, topo.ADDR_B),
             "b->a": unmatched_received(db, da, topo.ADDR_B, topo.ADDR_A)}
    return flows, stray


def _main_flow(flows: list[FlowTruth], direction: str) -> FlowTruth | None:
    media = [f for f in flows if f.direction == direction and f.kind in ("rtp", "opaque")]
    return max(media, key=lambda f: f.sent) if media else None


def build_truth(s: Scenario, pcap_a: Path, pcap_b: Path, before: dict, after: dict, logs: dict,
                captures: dict, setup: list, ruleset: str, tcs: list, schedule: list, t0: float) -> dict:
    """The ``NAME.truth.json`` document: label, accept, params, per-flow truth, verification."""
    flows, stray = _flows(pcap_a, pcap_b)
    verification: dict[str, Any] = {"directions": {}}
    ok = True
    for d in DIRECTIONS:
        truth_dropped = sum(f.dropped for f in flows if f.direction == d)
        nft = after["nft_drops"][d] - before["nft_drops"][d]
        tc = after["tc"][d]["root_drops"] - before["tc"][d]["root_drops"]
        xt = [x for x in logs["r"]["cross"] if x["direction"] == d]
        sink = logs["b" if d == "a->b" else "a"]["sink_received"]
        xt_reached = sum(x["ok"] + x["errors"].get("ENOBUFS", 0) for x in xt)
        xt_dropped = xt_reached - sink if xt else 0
        kernel = nft + tc - xt_dropped
        match = kernel == truth_dropped and stray[d] == 0
        ok &= match
        verification["directions"][d] = {
            "truth_dropped": truth_dropped, "nft_dropped": nft, "qdisc_dropped": tc,
            "cross_traffic_dropped_at_qdisc": xt_dropped, "cross_traffic_sent": xt_reached,
            "cross_traffic_received": sink, "kernel_dropped_call_packets": kernel,
            "received_not_sent": stray[d], "truth_equals_kernel": match,
            # Still queued when the captures stopped (never delivered, never dropped):
            # explains a mismatch the drain wait could not avoid.
            "queued_at_end": sum(int(q.get("qlen", 0)) for q in after["tc"][d]["qdiscs"] if q.get("root")),
        }
    sender_checks = []
    for side in ("a", "b"):
        for st in logs[side]["streams"]:
            ok_sent = sum(1 for x in st["status"] if x == 0)
            captured = [f for f in flows if f.src == (topo.ADDR_A if side == "a" else topo.ADDR_B)
                        and f.src_port == st["local_port"] and f.kind in ("rtp", "opaque")]
            n = sum(f.sent for f in captured)
            sender_checks.append({"stream": st["name"], "sendto_ok": ok_sent, "sendto_failed": len(st["status"]) - ok_sent,
                                  "captured_at_sender": n, "equal": ok_sent == n})
            ok &= ok_sent == n
    for side in ("a", "b"):
        ok &= captures[side]["dropped_by_kernel"] == 0
    verification["sender_logs"] = sender_checks
    late = [np.asarray(st["sent"]) - np.asarray(st["scheduled"]) for side in ("a", "b")
            for st in logs[side]["streams"] if st["sent"]]
    if late:
        ms = np.concatenate(late) * 1e3
        verification["pacing_late_ms"] = {"median": round(float(np.median(ms)), 3),
                                          "p99": round(float(np.percentile(ms, 99)), 3), "max": round(float(ms.max()), 3)}
    verification["ok"] = bool(ok)

    label, accept, params = _label(s, flows)
    impaired = params.get("direction", "a->b")
    main = _main_flow(flows, impaired if impaired in DIRECTIONS else "a->b")
    params.update(_derived_params(s, main, flows))
    streams = []
    for f in flows:
        doc = f.to_json()
        streams.append(doc)
        for r in f.received_as:
            if (r[0], r[1], r[2], r[3]) != (f.src, f.src_port, f.dst, f.dst_port):
                streams.append({"direction": f.direction, "kind": f.kind, "src": r[0], "src_port": r[1],
                                "dst": r[2], "dst_port": r[3], "alias_of": [f.src, f.src_port, f.dst, f.dst_port]})
    single = f"{s.name}.{s.vantage}.pcap"
    return with_readings({
        "schema": 1, "generator": "callscope lab", "scenario": s.name, "seed": s.seed,
        "label": label, "accept": list(accept), "intended_label": s.label, "description": s.description,
        "params": params, "vantage": s.vantage,
        "captures": {"single_point": f"{s.name}.pcap", "same_as": single, "a": pcap_a.name, "b": pcap_b.name,
                     "a_point": "caller's veth (what A sent, what reached A)",
                     "b_point": "callee's veth (what B sent, what reached B)"},
        "media": {k: v for k, v in vars(s.media).items()},
        "topology": {"namespaces": list(topo.NAMESPACES), "a": topo.ADDR_A, "b": topo.ADDR_B,
                     "router": [topo.ADDR_RA, topo.ADDR_RB], "relay": topo.ADDR_RELAY},
        "t0_epoch": t0,
        "commands": {"setup": [str(c) for c in setup], "nft_ruleset": ruleset, "tc": [str(c) for c in tcs],
                     "schedule": [[t, " ".join(a)] for t, a in schedule],
                     "schedule_ran": logs["r"].get("schedule", []),
                     "teardown": [str(c) for c in topo.teardown_commands()]},
        "counters": {"before": before, "after": after},
        "capture": captures,
        "streams": streams,
        "verification": verification,
    })


def _label(s: Scenario, flows: list[FlowTruth]) -> tuple[str, tuple[str, ...], dict]:
    params: dict[str, Any] = dict(s.params)
    direction = params.get("direction", "a->b")
    dirs = DIRECTIONS if direction == "both" else (direction,)
    lost = sum(f.dropped for f in flows if f.direction in dirs and f.kind in ("rtp", "opaque"))
    sent = sum(f.sent for f in flows if f.direction in dirs and f.kind in ("rtp", "opaque"))
    params["true_loss_fraction"] = round(lost / sent, 6) if sent else 0.0
    if s.label not in LOSS_PATTERNS and s.label != "shaping" and lost:
        # A negative that lost packets is no longer a clean negative: say so beside the label.
        params["unintended_loss_packets"] = lost
    if s.label in LOSS_PATTERNS and lost == 0:
        label = "jitter" if s.label == "congestion" else "clean"
        return label, (label,), params
    return s.label, s.accepted, params


def _derived_params(s: Scenario, main: FlowTruth | None, flows: list[FlowTruth]) -> dict[str, float]:
    """Mechanism parameters in the units :mod:`callscope.evaluate` compares (UDP payload bytes)."""
    out: dict[str, float] = {}
    if main is None or main.sent == 0:
        return out
    payload = float(main.payload_len.mean())
    p = s.params
    if s.label == "policing":
        if p.get("unit") == "bytes":
            ip_rate = float(p["nft_rate"])
            out["rate_Bps"] = round(ip_rate * payload / (payload + 28), 1)
            # An nft byte limiter's bucket holds rate x 1 s + burst (nft_limit_init).
            out["burst_bytes"] = round((ip_rate + float(p["nft_burst"])) * payload / (payload + 28), 1)
        else:
            out["rate_Bps"] = round(float(p["nft_rate"]) * payload, 1)
            out["burst_bytes"] = round(float(p["nft_burst"]) * payload, 1)
    elif s.label == "shaping":
        # tc counts whole frames at the egress veth: Ethernet 14 + IP 20 + UDP 8 bytes of header.
        out["rate_Bps"] = round(float(p["rate_bit"]) / 8 * payload / (payload + 42), 1)
    elif s.label in ("cutoff", "one-way") and main.dropped:
        first = int(np.flatnonzero(~main.delivered)[0])
        out["time_s"] = round((main.sent_time_ns[first] - main.sent_time_ns[0]) / 1e9, 4)
        out["bytes"] = float(main.payload_len[:first][main.delivered[:first]].sum())
        out["packets"] = float(np.count_nonzero(main.delivered[:first]))
    return out


def run_corpus(scenarios: list[Scenario], out_dir: str | os.PathLike[str],
               log: Callable[[str], None] = lambda _: None) -> dict:
    """Run ``scenarios`` one after the other (holding the lab for the whole corpus).

    A scenario that fails is reported and the corpus goes on. Returns a
    summary: per run its label, the truth's and the kernel's drop counts per
    direction, whether it was verified, and the seconds it took.
    """
    rows: list[dict[str, Any]] = []
    started = time.time()
    with lab_lock():  # nothing else may run in the lab between two scenarios
        for i, s in enumerate(scenarios, 1):
            t = time.time()
            try:
                doc = run_scenario(s, out_dir)
            except LabError as e:
                log(f"[{i}/{len(scenarios)}] {s.name}: FAILED: {e}")
                rows.append({"scenario": s.name, "intended": s.label, "error": str(e)})
                continue
            v = doc["verification"]
            rows.append({"scenario": s.name, "label": doc["label"], "intended": s.label, "verified": v["ok"],
                         "seconds": round(time.time() - t, 1),
                         "dropped": {d: x["truth_dropped"] for d, x in v["directions"].items()},
                         "kernel": {d: x["kernel_dropped_call_packets"] for d, x in v["directions"].items()}})
            log(f"[{i}/{len(scenarios)}] {s.name}: {doc['label']}, dropped "
                + ", ".join(f"{d} {x['truth_dropped']} (kernel {x['kernel_dropped_call_packets']})"
                            for d, x in v["directions"].items())
                + (", verified" if v["ok"] else ", NOT VERIFIED"))
    return {"scenarios": len(scenarios), "seconds": round(time.time() - started, 1),
            "verified": sum(bool(r.get("verified")) for r in rows),
            "failed": sum("error" in r for r in rows), "runs": rows}


def corpus_index(out_dir: str | os.PathLike[str]) -> str:
    """A Markdown table of every lab truth in ``out_dir``: label, media, per-direction loss, delay, checks."""
    rows = ["| scenario | label | accept | media | sent a->b / b->a | lost a->b / b->a | loss % | "
            "delay p95 ms | truth == kernel | tcpdump drops |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(Path(out_dir).glob("*.truth.json")):
        doc = json.loads(path.read_text())
        if doc.get("generator") != "callscope lab":
            continue
        media = [st for st in doc["streams"] if st.get("kind") in ("rtp", "opaque") and "sent" in st]
        sent = {d: sum(st["sent"] for st in media if st["direction"] == d) for d in DIRECTIONS}
        lost = {d: sum(st["dropped"] for st in media if st["direction"] == d) for d in DIRECTIONS}
        p95 = max((st["delay_ms"]["p95"] for st in media if "delay_ms" in st), default=0.0)
        v = doc["verification"]
        exact = all(x["truth_equals_kernel"] for x in v["directions"].values())
        m = doc["media"]
        loss = " / ".join(f"{100 * lost[d] / sent[d]:.1f}" if sent[d] else "-" for d in DIRECTIONS)
        rows.append(
            f"| {doc['scenario']} | {doc['label']} | {', '.join(doc['accept'])} | {m['codec']} {m['duration_s']} s | "
            f"{sent['a->b']} / {sent['b->a']} | {lost['a->b']} / {lost['b->a']} | {loss} | {p95:.1f} | "
            f"{'yes' if exact else 'NO'} | {doc['capture']['a']['dropped_by_kernel'] + doc['capture']['b']['dropped_by_kernel']} |")
    return "\n".join(rows) + "\n"
