"""End-to-end speed and memory of ``callscope analyze`` against tshark's RTP analysis.

Usage::

    python benchmarks/compare_tshark.py [--repeat 3] [--with-10m] [--workdir DIR]

What it does, in one run:

1. Writes (once, kept in ``--workdir``) simulated captures of about 10k, 100k,
   1M and, with ``--with-10m``, 10M RTP packets: ``callscope synth jitter
   --streams S`` with ``--packets-per-stream`` packets per stream (at least
   10 streams), G.711 at 20 ms, 2 % random loss and gamma-distributed jitter
   (mean 10 ms) that also reorders packets. The 1M capture holds 100
   concurrent streams, the 10M one 1000.
2. For each capture, ``--repeat`` times, alternating (so that load from other
   processes on the machine hits both alike), each in a fresh subprocess:

   - ``callscope analyze --format json FILE``: the whole pipeline (read,
     media discovery, metrics, diagnosis, JSON), start-up included;
   - ``tshark -q -o rtp.heuristic_rtp:TRUE -z rtp,streams -r FILE``.

   Wall time and the child's peak RSS (``os.wait4`` rusage) per run.
   callscope's bytecode is compiled first (``compileall``), as ``pip
   install`` leaves it: without it (an editable install under
   ``PYTHONDONTWRITEBYTECODE``) every run compiles every module again,
   about 40 ms.
3. Checks that both found the same streams (source, destination, ports,
   SSRC) with the same packet and lost counts (Wireshark's table parsed as
   ``/work/shared/conformance/check`` does).
4. For context, times the pure-Python decoders on the first
   ``--peer-packets`` packets of the 100k capture: scapy ``rdpcap`` and dpkt,
   each extracting the RTP header fields (SSRC, sequence number, timestamp)
   of every datagram.

Prints, per size: median wall time of each, the ratio, packets/s, peak RSS of
each, and whether the streams agree; then the targets and whether they were
met. ``--json FILE`` also writes every run.

Targets: at 1M packets callscope >= 10x faster than tshark with identical
stream packet/loss counts and <= 0.5x its peak RSS; at 10k not slower than
tshark; the 10M run <= 11x the 1M time and below 1 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: (label, packets) of the captures written; the last one only with --with-10m
SIZES = (("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000), ("10M", 10_000_000))
MIN_STREAMS = 10
PTIME_MS = 20
LOSS = 0.02  # Bernoulli loss probability of the synth "jitter" scenario
JITTER_MS = 10.0  # mean extra delay (gamma distributed) of the synth "jitter" scenario
SPEED_TARGET = 10.0  # callscope / tshark packets per second at 1M
RSS_TARGET = 0.5  # callscope / tshark peak RSS at 1M
LINEAR_TARGET = 11.0  # 10M time / 1M time
RSS_10M_LIMIT_MB = 1024.0

#: A row of ``tshark -z rtp,streams`` (as in /work/shared/conformance/check).
TSHARK_ROW = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+"
    r"(?P<dst>\S+)\s+(?P<dport>\d+)\s+(?P<ssrc>0x[0-9A-Fa-f]+)\s+(?P<payload>.*?)\s+"
    r"(?P<pkts>\d+)\s+(?P<lost>-?\d+)\s+\((?P<lostpct>[-\d.]+)%\)\s+"
    r"(?P<dmin>[\d.]+)\s+(?P<dmean>[\d.]+)\s+(?P<dmax>[\d.]+)\s+"
    r"(?P<jmin>[\d.]+)\s+(?P<jmean>[\d.]+)\s+(?P<jmax>[\d.]+)\s*(?P<problem>X?)\s*$"
)


@dataclass(frozen=True)
class Run:
    """One timed subprocess."""

    tool: str
    wall_s: float
    max_rss_mb: float
    returncode: int


@dataclass(frozen=True)
class Agreement:
    """How the two tools' stream tables compare.

    ``explained`` lists streams only callscope reports because tshark hands
    their UDP port to another protocol's dissector (e.g. 25826 collectd,
    26000 quake), which heuristic RTP never overrides.
    """

    tshark_streams: int
    callscope_streams: int
    matched: int
    differences: tuple[str, ...]
    explained: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not self.differences and self.matched == self.tshark_streams == self.callscope_streams - len(self.explained)


@dataclass(frozen=True)
class SizeResult:
    label: str
    path: str
    packets: int
    streams: int
    callscope: tuple[Run, ...]
    tshark: tuple[Run, ...]
    agreement: Agreement

    @property
    def callscope_s(self) -> float:
        return statistics.median(r.wall_s for r in self.callscope)

    @property
    def tshark_s(self) -> float:
        return statistics.median(r.wall_s for r in self.tshark)

    @property
    def callscope_rss_mb(self) -> float:
        return max(r.max_rss_mb for r in self.callscope)

    @property
    def tshark_rss_mb(self) -> float:
        return max(r.max_rss_mb for r in self.tshark)


def pcap_packets(path: Path) -> int:
    """Records in a classic little-endian pcap, by walking the record headers."""
    n = 0
    with open(path, "rb") as fh:
        fh.seek(24)
        while True:
            head = fh.read(16)
            if len(head) < 16:
                return n
            incl = struct.unpack_from("<I", head, 8)[0]
            fh.seek(incl, os.SEEK_CUR)
            n += 1


def write_capture(workdir: Path, label: str, packets: int, per_stream: int, seed: int) -> Path:
    """The simulated capture of about ``packets`` packets (written once, then reused)."""
    streams = max(MIN_STREAMS, packets // per_stream)
    per = packets // streams
    path = workdir / f"rtp-{label}-{streams}x{per}-s{seed}.pcap"
    if path.exists():
        return path
    duration = per * PTIME_MS / 1000
    cmd = [sys.executable, "-m", "callscope", "synth", "jitter", "-o", str(path), "--streams", str(streams),
           "--duration", str(duration), "--seed", str(seed), "--ptime", str(PTIME_MS),
           "--param", f"loss={LOSS}", "--param", f"jitter_ms={JITTER_MS}"]
    print(f"writing {path.name} ({streams} streams x {per} packets) ...", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def compile_bytecode() -> None:
    """Byte-compile the callscope package the benchmark runs (what an installed copy has)."""
    import importlib.util

    spec = importlib.util.find_spec("callscope")
    for location in spec.submodule_search_locations or ():
        subprocess.run([sys.executable, "-m", "compileall", "-q", location], check=True, stdout=subprocess.DEVNULL)


def timed(tool: str, cmd: list[str], stdout_path: Path) -> Run:
    """Run ``cmd`` in a fresh process; wall time and that child's own peak RSS."""
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux
    return Run(tool, wall, usage.ru_maxrss / 1024.0, proc.returncode)


def tshark_streams(text: str) -> dict[tuple, dict]:
    out = {}
    for line in text.splitlines():
        m = TSHARK_ROW.match(line)
        if m:
            key = (m["src"], int(m["sport"]), m["dst"], int(m["dport"]), int(m["ssrc"], 16))
            out[key] = {"packets": int(m["pkts"]), "lost": int(m["lost"])}
    return out


def callscope_streams(document: dict) -> dict[tuple, dict]:
    out = {}
    for s in document.get("streams", []):
        if s.get("kind") != "rtp":
            continue
        ssrc = s["ssrc"]
        ssrc = int(ssrc, 16) if isinstance(ssrc, str) else int(ssrc)
        key = (s["src"], int(s["src_port"]), s["dst"], int(s["dst_port"]), ssrc)
        out[key] = {"packets": int(s["packets"]), "lost": int(s["lost"])}
    return out


def tshark_protocols(tshark: str, capture: Path, key: tuple) -> str:
    """How tshark dissects the first packet of one flow (``frame.protocols``)."""
    src, sport, dst, dport, _ = key
    flt = f"ip.src=={src} && udp.srcport=={sport} && ip.dst=={dst} && udp.dstport=={dport}"
    proc = subprocess.Popen([tshark, "-r", str(capture), "-o", "rtp.heuristic_rtp:TRUE", "-Y", flt, "-T", "fields",
                             "-e", "frame.protocols"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    return line


def compare_streams(callscope_json: Path, tshark_text: Path, tshark: str, capture: Path) -> Agreement:
    ours = callscope_streams(json.loads(callscope_json.read_text()))
    theirs = tshark_streams(tshark_text.read_text(errors="replace"))
    diffs, explained = [], []
    matched = 0
    for key, t in sorted(theirs.items()):
        o = ours.get(key)
        if o is None:
            diffs.append(f"only in tshark: {key}")
            continue
        matched += 1
        for field in ("packets", "lost"):
            if o[field] != t[field]:
                diffs.append(f"{key}: {field} {o[field]} != tshark {t[field]}")
    for key in sorted(set(ours) - set(theirs)):
        protocols = tshark_protocols(tshark, capture, key)
        if protocols and not protocols.endswith(":rtp"):
            explained.append(f"{key}: tshark dissects it as {protocols.rsplit(':', 1)[-1]}")
        else:
            diffs.append(f"only in callscope: {key}")
    return Agreement(len(theirs), len(ours), matched, tuple(diffs), tuple(explained))


def bench_size(label: str, path: Path, repeat: int, callscope: list[str], tshark: list[str],
               scratch: Path) -> SizeResult:
    cs_out = scratch / f"{label}.callscope.json"
    ts_out = scratch / f"{label}.tshark.txt"
    cs_runs, ts_runs = [], []
    for i in range(repeat):
        # alternate which goes first, so neither always runs on a warmer cache
        order = [("callscope", callscope, cs_out, cs_runs), ("tshark", tshark, ts_out, ts_runs)]
        if i % 2:
            order.reverse()
        for tool, base, out, runs in order:
            run = timed(tool, [*base, str(path)], out)
            if run.returncode != 0:
                raise SystemExit(f"{tool} failed on {path} (exit {run.returncode})")
            runs.append(run)
            print(f"  {label} {tool:9s} run {i + 1}: {run.wall_s:7.2f} s  {run.max_rss_mb:7.0f} MB", flush=True)
    agreement = compare_streams(cs_out, ts_out, tshark[0], path)
    return SizeResult(label, str(path), pcap_packets(path), agreement.tshark_streams,
                      tuple(cs_runs), tuple(ts_runs), agreement)


def _peer_script(kind: str, path: Path, packets: int) -> str:
    """Source of a child process that decodes the first ``packets`` records with scapy or dpkt."""
    if kind == "scapy":
        body = f"""
from scapy.all import rdpcap, UDP
from scapy.layers.rtp import RTP
pkts = rdpcap({str(path)!r}, count={packets})
fields = [(r.sourcesync, r.sequence, r.timestamp)
          for r in (RTP(bytes(p[UDP].payload)) for p in pkts if UDP in p)]
"""
    else:
        body = f"""
import dpkt
fields = []
with open({str(path)!r}, "rb") as fh:
    for k, (ts, buf) in enumerate(dpkt.pcap.Reader(fh)):
        if k == {packets}:
            break
        ip = dpkt.ethernet.Ethernet(buf).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
            r = dpkt.rtp.RTP(ip.data.data)
            fields.append((r.ssrc, r.seq, r.ts))
"""
    return "import time\nstart = time.perf_counter()\n" + body + "print(len(fields), time.perf_counter() - start)\n"


def bench_peers(path: Path, packets: int) -> list[tuple[str, int, float, float]]:
    """(decoder, packets decoded, seconds, peak RSS MB) of scapy and dpkt on a slice."""
    out = []
    for kind in ("scapy", "dpkt"):
        proc = subprocess.Popen([sys.executable, "-c", _peer_script(kind, path, packets)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not stdout.strip():
            print(f"  {kind}: not available", flush=True)
            continue
        n, seconds = stdout.split()
        out.append((kind, int(n), float(seconds), usage.ru_maxrss / 1024.0))
    return out


def report(results: list[SizeResult], peers: list[tuple[str, int, float, float]]) -> list[str]:
    """The table and the verdict on each target, as lines."""
    lines = [
        f"{'size':>5} {'packets':>9} {'streams':>7} | {'callscope s':>11} {'tshark s':>9} {'speed-up':>8} | "
        f"{'callscope pkt/s':>15} {'tshark pkt/s':>12} | {'callscope MB':>12} {'tshark MB':>9} {'RSS ratio':>9} | same streams",
    ]
    for r in results:
        a = r.agreement
        same = "yes" if a.identical else f"NO ({len(a.differences)} differences)"
        if a.explained:
            same += f", +{len(a.explained)} on ports tshark gives other dissectors"
        lines.append(
            f"{r.label:>5} {r.packets:>9} {r.streams:>7} | {r.callscope_s:>11.2f} {r.tshark_s:>9.2f} "
            f"{r.tshark_s / r.callscope_s:>7.1f}x | {r.packets / r.callscope_s:>15,.0f} "
            f"{r.packets / r.tshark_s:>12,.0f} | {r.callscope_rss_mb:>12.0f} {r.tshark_rss_mb:>9.0f} "
            f"{r.callscope_rss_mb / r.tshark_rss_mb:>9.2f} | {same} ({a.matched}/{a.tshark_streams})"
        )
        lines += [f"        {d}" for d in (a.differences + a.explained)[:5]]
    for kind, n, seconds, rss in peers:
        lines.append(f"{kind:>5} decoding only (RTP fields), first {n} packets: {seconds:.2f} s, "
                     f"{n / seconds:,.0f} pkt/s, {rss:.0f} MB")
    by = {r.label: r for r in results}
    lines.append("targets:")
    if "1M" in by:
        m = by["1M"]
        speed = m.tshark_s / m.callscope_s
        rss = m.callscope_rss_mb / m.tshark_rss_mb
        lines.append(f"  1M: speed-up {speed:.1f}x (>= {SPEED_TARGET:g}x): {_ok(speed >= SPEED_TARGET)}; "
                     f"identical packets/lost: {_ok(m.agreement.identical)}; "
                     f"RSS ratio {rss:.2f} (<= {RSS_TARGET:g}): {_ok(rss <= RSS_TARGET)}")
    if "10k" in by:
        s = by["10k"]
        lines.append(f"  10k: callscope {s.callscope_s:.2f} s vs tshark {s.tshark_s:.2f} s "
                     f"(not slower): {_ok(s.callscope_s <= s.tshark_s)}")
    if "1M" in by and "10M" in by:
        growth = by["10M"].callscope_s / by["1M"].callscope_s
        lines.append(f"  10M: {growth:.1f}x the 1M time (<= {LINEAR_TARGET:g}x): {_ok(growth <= LINEAR_TARGET)}; "
                     f"peak RSS {by['10M'].callscope_rss_mb:.0f} MB (< {RSS_10M_LIMIT_MB:g}): "
                     f"{_ok(by['10M'].callscope_rss_mb < RSS_10M_LIMIT_MB)}")
    return lines


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs per tool and size")
    ap.add_argument("--with-10m", action="store_true", help="also the 10M-packet capture (~2.3 GB)")
    ap.add_argument("--sizes", default=None,
                    help="comma-separated subset of 10k,100k,1M,10M (default: all but 10M)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/callscope-bench"),
                    help="where the captures are written and kept for the next run")
    ap.add_argument("--packets-per-stream", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--peer-packets", type=int, default=20_000,
                    help="packets scapy and dpkt decode (0: skip them)")
    ap.add_argument("--json", type=Path, default=None, help="write every run here")
    args = ap.parse_args(argv)

    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark not found (apt-get install tshark)", file=sys.stderr)
        return 2
    wanted = args.sizes.split(",") if args.sizes else [label for label, _ in SIZES[:3]]
    if args.with_10m and "10M" not in wanted:
        wanted.append("10M")
    args.workdir.mkdir(parents=True, exist_ok=True)
    scratch = args.workdir / "out"
    scratch.mkdir(exist_ok=True)
    callscope = [sys.executable, "-m", "callscope", "analyze", "--format", "json"]
    tshark_cmd = [tshark, "-q", "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams", "-r"]

    compile_bytecode()
    results = []
    for label, packets in SIZES:
        if label not in wanted:
            continue
        path = write_capture(args.workdir, label, packets, args.packets_per_stream, args.seed)
        results.append(bench_size(label, path, args.repeat, callscope, tshark_cmd, scratch))
    peers = []
    if args.peer_packets:
        source = next((r.path for r in results if r.packets >= args.peer_packets), None)
        if source is not None:
            peers = bench_peers(Path(source), args.peer_packets)

    print()
    for line in report(results, peers):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(
            {"results": [dict(asdict(r), agreement=asdict(r.agreement)) for r in results],
             "peers": [dict(zip(("decoder", "packets", "seconds", "max_rss_mb"), p, strict=True)) for p in peers]},
            indent=2))
    return 0 if all(r.agreement.identical for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
