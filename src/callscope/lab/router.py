"""The router's controller: cross traffic, scheduled nft changes and a media relay.

Run inside the router namespace by the lab::

    ip netns exec cs-lab-r python -m callscope.lab.router CONFIG.json

- Cross traffic: per direction a Poisson process of ``base_kbit`` plus on/off
  bursts at ``on_kbit`` (exponential on and off times), UDP from the router
  to the receiving endpoint's sink port. It leaves by the same egress veth
  and the same root qdisc as the call, so it shares the bottleneck; the
  endpoints' capture filter keeps it out of the captures, and the sink
  counts what arrived, so the qdisc's drops can be split exactly into the
  call's and the cross traffic's.
- Schedule: at each (time, nft argv) the controller runs ``nft`` (gates on
  for a time, rules added mid-call). Each run's actual time is logged.
- Relay: a TURN-like forwarder on 198.18.3.1 (ports 50000-50003) for calls
  that start relayed and then move to a direct path.

It stops by itself at ``stop_at`` (wall clock).
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from itertools import count
from typing import Any, cast

import numpy as np

from callscope.lab.endpoint import coarse_wait, fine_wait, large_receive_buffer, realtime

SO_SNDBUFFORCE = 32  # Linux <asm-generic/socket.h>; not exported by the socket module
RELAY_PORTS = (50000, 50001, 50002, 50003)  # A side RTP/RTCP, B side RTP/RTCP


def cross_schedule(spec: dict[str, Any], duration: float, rng: np.random.Generator) -> np.ndarray:
    """Departure times (s) of cross traffic: Poisson base plus on/off bursts.

    Burst packets leave in clumps of ``clump`` back to back (as a TCP sender's
    window does), at the burst's average rate: the queue behind them is what
    gives the call its background jitter.
    """
    size_bits = 8.0 * (float(spec["size"]) + 28)
    out = []
    base_pps = float(spec["base_kbit"]) * 1000.0 / size_bits
    if base_pps > 0:
        n = rng.poisson(base_pps * duration)
        out.append(np.sort(rng.uniform(0.0, duration, n)))
    on_pps = float(spec.get("on_kbit", 0.0)) * 1000.0 / size_bits
    if on_pps > 0:
        t = rng.exponential(float(spec["off_mean_s"]))
        while t < duration:
            length = rng.exponential(float(spec["on_mean_s"]))
            clump = max(1, int(spec.get("clump", 1)))
            out.append(np.repeat(np.arange(t, min(t + length, duration), clump / on_pps), clump))
            t += length + rng.exponential(float(spec["off_mean_s"]))
    return np.sort(np.concatenate(out)) if out else np.zeros(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m callscope.lab.router CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        cfg = json.load(f)
    t0, stop_at = float(cfg["t0"]), float(cfg["stop_at"])
    rng = np.random.default_rng(int(cfg["seed"]))
    offset = time.time() - time.perf_counter()
    events: list[tuple[float, int, str, Any]] = []
    order = count()
    log: dict[str, Any] = {"schedule": [], "cross": [], "realtime": realtime()}

    xsocks = []
    for i, spec in enumerate(cfg.get("cross", [])):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
        s.bind((spec["src"], 0))
        s.setblocking(False)
        xsocks.append(s)
        times = cross_schedule(spec, float(spec["stop_s"]) - float(spec["start_s"]), rng)
        times += float(spec["start_s"])
        log["cross"].append({"direction": spec["direction"], "planned": int(len(times)), "ok": 0,
                             "errors": {}})
        for t in times:
            heapq.heappush(events, (t0 + t, next(order), "x", i))
    for t, args in cfg.get("schedule", []):
        heapq.heappush(events, (t0 + float(t), next(order), "nft", args))

    sel = selectors.DefaultSelector()
    relay: dict[int, socket.socket] = {}
    if cfg.get("relay"):
        r = cfg["relay"]
        for p in RELAY_PORTS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            large_receive_buffer(s)  # a relay socket that overflows would drop call packets
            s.bind((r["addr"], p))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, p)
            relay[p] = s
        # A's traffic arrives on 50000/50001 and leaves from 50002/50003 to B, and back.
        route = {50000: (50002, r["b"], r["b_port"]), 50001: (50003, r["b"], r["b_port"] + 1),
                 50002: (50000, r["a"], r["a_port"]), 50003: (50001, r["a"], r["a_port"] + 1)}
        log["relayed"] = {str(p): 0 for p in RELAY_PORTS}

    payloads = [bytes(int(spec["size"])) for spec in cfg.get("cross", [])]
    while True:
        now = time.perf_counter() + offset
        if now >= stop_at:
            break
        due = events[0][0] if events else stop_at
        wait = max(0.0, min(due, stop_at) - now)
        if relay:
            for key, _ in sel.select(timeout=coarse_wait(wait)):
                p = key.data
                while True:
                    try:
                        data, _ = cast(socket.socket, key.fileobj).recvfrom(65535)  # only sockets registered
                    except (BlockingIOError, InterruptedError):
                        break
                    out, host, port = route[p]
                    try:
                        relay[out].sendto(data, (host, port))
                    except OSError:
                        pass
                    log["relayed"][str(p)] += 1
            fine_wait(due - (time.perf_counter() + offset))
        elif wait > 0:
            time.sleep(wait)
        now = time.perf_counter() + offset
        while events and events[0][0] <= now:
            sched, _, kind, arg = heapq.heappop(events)
            if kind == "x":
                spec = cfg["cross"][arg]
                entry = log["cross"][arg]
                try:
                    xsocks[arg].sendto(payloads[arg], (spec["dst"], int(spec["dst_port"])))
                    entry["ok"] += 1
                except OSError as e:
                    code = errno.errorcode.get(e.errno or 0, str(e.errno))
                    entry["errors"][code] = entry["errors"].get(code, 0) + 1
            else:
                started = time.time()
                rc = subprocess.run(arg, capture_output=True, text=True).returncode
                log["schedule"].append({"planned": sched, "ran": started, "rc": rc, "argv": arg})
    tmp = cfg["log"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(log, f)
    os.replace(tmp, cfg["log"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
