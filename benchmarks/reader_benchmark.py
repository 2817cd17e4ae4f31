"""Throughput and memory of callscope's capture reader against dpkt, scapy and tshark.

Usage::

    python benchmarks/reader_benchmark.py [--packets 1000000] [--big-gb 2] [--dir /tmp]

What it does, in one run:

1. Writes (numpy-vectorised) a classic pcap of ``--packets`` RTP-over-UDP
   datagrams: Ethernet / IPv4 / UDP / RTP with 160-byte payloads (G.711 at
   20 ms), 400 concurrent streams interleaved in time: about 230 bytes a
   record, ~230 MB for a million.
2. Decodes it, each contender in a fresh subprocess, and reports packets/s
   and peak RSS (the child's own high-water mark):

   - callscope: ``iter_datagrams`` (file -> columnar UDP table per chunk);
   - dpkt: ``dpkt.pcap.Reader`` + Ethernet/IP/UDP objects, collecting the same
     fields (frame, time, addresses, ports, payload);
   - scapy: ``PcapReader`` on the first ``--scapy-packets`` records, rate
     extrapolated;
   - tshark: ``tshark -r FILE -q`` (dissects everything, prints nothing).

3. Memory target: writes a ``--big-gb`` capture by repeating the records of the
   first file and iterates it with ``iter_datagrams``, discarding each chunk;
   peak RSS must stay under 250 MB.

Targets: callscope >= 10x dpkt's packets/s; < 250 MB peak RSS for 2 GB.
The temporary captures are deleted at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAYLOAD = 160  # G.711 20 ms (RFC 3551 §4.5.14: 8000 samples/s, 1 byte each)
RTP_HEADER = 12  # RFC 3550 §5.1, no CSRC, no extension
FRAME = 14 + 20 + 8 + RTP_HEADER + PAYLOAD  # Ethernet + IPv4 + UDP + RTP
RECORD = 16 + FRAME  # pcap record header (draft-ietf-opsawg-pcap §5)
STREAMS = 400
PTIME_NS = 20_000_000
SPEED_TARGET = 10.0
MEMORY_TARGET_MB = 250.0


def records(first: int, n: int, t0_ns: int = 1_700_000_000_000_000_000) -> np.ndarray:
    """Records ``first .. first + n`` as an (n, RECORD) uint8 array, built column by column."""
    k = np.arange(first, first + n, dtype=np.int64)
    stream = k % STREAMS
    seq = k // STREAMS
    t = t0_ns + seq * PTIME_NS + stream * (PTIME_NS // STREAMS)
    r = np.zeros((n, RECORD), np.uint8)

    def put(col: int, values: np.ndarray, width: int, order: str) -> None:
        r[:, col:col + width] = np.ascontiguousarray(values.astype(f"{order}u{width}")).view(np.uint8).reshape(n, width)

    put(0, t // 1_000_000_000, 4, "<")
    put(4, (t % 1_000_000_000) // 1000, 4, "<")
    put(8, np.full(n, FRAME), 4, "<")
    put(12, np.full(n, FRAME), 4, "<")
    e = 16  # Ethernet II
    r[:, e:e + 6] = (2, 0, 0, 0, 0, 2)
    r[:, e + 6:e + 12] = (2, 0, 0, 0, 0, 1)
    put(e + 12, np.full(n, 0x0800), 2, ">")
    ip = e + 14  # IPv4, RFC 791 §3.1
    r[:, ip] = 0x45
    r[:, ip + 1] = 0xB8  # DSCP EF
    put(ip + 2, np.full(n, FRAME - 14), 2, ">")
    put(ip + 4, seq & 0xFFFF, 2, ">")
    r[:, ip + 8] = 64
    r[:, ip + 9] = 17
    put(ip + 12, 0x0A000000 + stream, 4, ">")
    put(ip + 16, np.full(n, 0xC0000201), 4, ">")
    udp = ip + 20  # RFC 768
    put(udp, 20000 + 2 * stream, 2, ">")
    put(udp + 2, 30000 + 2 * stream, 2, ">")
    put(udp + 4, np.full(n, 8 + RTP_HEADER + PAYLOAD), 2, ">")
    rtp = udp + 8  # RFC 3550 §5.1
    r[:, rtp] = 0x80
    r[:, rtp + 1] = 0  # PCMU
    put(rtp + 2, seq & 0xFFFF, 2, ">")
    put(rtp + 4, (seq * 160) & 0xFFFFFFFF, 4, ">")
    put(rtp + 8, 0x1000 + stream, 4, ">")
    r[:, rtp + 12:] = ((k[:, None] + np.arange(PAYLOAD)) & 0x7F).astype(np.uint8) | 0x80
    return r


def pcap_header() -> bytes:
    return np.array([0xA1B2C3D4], "<u4").tobytes() + np.array([2, 4], "<u2").tobytes() + \
        np.array([0, 0, 65535, 1], "<u4").tobytes()


def write_capture(path: Path, packets: int, block: int = 1 << 16) -> None:
    with open(path, "wb") as fh:
        fh.write(pcap_header())
        for first in range(0, packets, block):
            fh.write(records(first, min(block, packets - first)).tobytes())


def write_big(path: Path, source: Path, size_bytes: int) -> int:
    """A capture of about ``size_bytes`` repeating the records of ``source``; returns its packet count."""
    body = source.read_bytes()[24:]
    per = len(body) // RECORD
    n = 0
    with open(path, "wb") as fh:
        fh.write(pcap_header())
        written = 24
        while written < size_bytes:
            fh.write(body)
            written += len(body)
            n += per
    return n


# -- the contenders, each run in its own process ------------------------------


def run_callscope(path: str, limit: int) -> dict:
    from callscope.capture import CaptureReader

    t0, c0 = time.perf_counter(), time.process_time()
    reader = CaptureReader(path)
    n = chunks = 0
    for chunk in reader:
        n += len(chunk)
        chunks += 1
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "datagrams": n,
            "packets": reader.info.packets, "chunks": chunks}


def run_dpkt(path: str, limit: int) -> dict:
    import dpkt

    t0, c0 = time.perf_counter(), time.process_time()
    cols: dict[str, list] = {k: [] for k in ("frame", "time", "src", "dst", "sport", "dport", "payload")}
    packets = 0
    with open(path, "rb") as fh:
        for frame, (ts, buf) in enumerate(dpkt.pcap.Reader(fh), 1):
            packets = frame
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            udp = ip.data
            if not isinstance(udp, dpkt.udp.UDP):
                continue
            cols["frame"].append(frame)
            cols["time"].append(ts)
            cols["src"].append(ip.src)
            cols["dst"].append(ip.dst)
            cols["sport"].append(udp.sport)
            cols["dport"].append(udp.dport)
            cols["payload"].append(udp.data)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "datagrams": len(cols["frame"]), "packets": packets}


def run_scapy(path: str, limit: int) -> dict:
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader

    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    packets = 0
    with PcapReader(path) as reader:
        for frame, p in enumerate(reader, 1):
            packets = frame
            if UDP in p:
                u = p[UDP]
                rows.append((frame, p.time, p[IP].src, p[IP].dst, u.sport, u.dport, bytes(u.payload)))
            if frame >= limit:
                break
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "datagrams": len(rows), "packets": packets}


WORKERS = {"callscope": run_callscope, "dpkt": run_dpkt, "scapy": run_scapy}


def measure(name: str, path: Path, limit: int = 0) -> dict:
    """Run one contender in a fresh interpreter; its result plus its own peak RSS."""
    cmd = [sys.executable, __file__, "--worker", name, str(path), str(limit)]
    wall = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - wall
    return result


def measure_tshark(tshark: str, path: Path) -> dict:
    """``tshark -r FILE -q`` under a small wrapper that reports the child's peak RSS.

    The wrapper is a fresh interpreter of ~10 MB, so the high-water mark
    tshark inherits from it across fork and exec is far below its own.
    """
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, tshark, "-r", str(path), "-q"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {"seconds": float(out[0]), "cpu_seconds": float(out[1]), "rss_mb": int(out[2]) / 1024}


def peak_rss_mb() -> float:
    """This process's peak resident set size since exec (Linux VmHWM).

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used for workers: Linux carries
    the parent's high-water mark across fork and exec into it.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(name: str, path: str, limit: int) -> None:
    result = WORKERS[name](path, limit)
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--scapy-packets", type=int, default=20_000)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--worker", nargs=3, metavar=("NAME", "PATH", "LIMIT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker[0], args.worker[1], int(args.worker[2]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="callscope-bench-", dir=args.dir))
    small, big = work / "rtp.pcap", work / "big.pcap"
    ok = True
    try:
        t = time.perf_counter()
        write_capture(small, args.packets)
        size_mb = small.stat().st_size / 1e6
        print(f"wrote {args.packets} RTP datagrams, {STREAMS} streams, {size_mb:.0f} MB "
              f"in {time.perf_counter() - t:.1f} s")

        results = {"callscope": measure("callscope", small), "dpkt": measure("dpkt", small),
                   "scapy": measure("scapy", small, args.scapy_packets)}
        tshark = shutil.which("tshark")
        if tshark:
            results["tshark"] = measure_tshark(tshark, small)
            results["tshark"]["packets"] = args.packets
        assert results["callscope"]["datagrams"] == results["dpkt"]["datagrams"] == args.packets
        print(f"\n{'decoder':<10} {'packets':>9} {'wall s':>7} {'packets/s':>11} {'vs dpkt':>8} "
              f"{'CPU s':>7} {'per CPU s':>11} {'vs dpkt':>8} {'peak RSS':>9}")
        dpkt = results["dpkt"]
        for name, r in results.items():
            rate, cpu_rate = r["packets"] / r["seconds"], r["packets"] / r["cpu_seconds"]
            print(f"{name:<10} {r['packets']:>9} {r['seconds']:>7.2f} {rate:>11,.0f} "
                  f"{rate / (dpkt['packets'] / dpkt['seconds']):>7.1f}x {r['cpu_seconds']:>7.2f} "
                  f"{cpu_rate:>11,.0f} {cpu_rate / (dpkt['packets'] / dpkt['cpu_seconds']):>7.1f}x "
                  f"{r['rss_mb']:>6.0f} MB")
        ours = results["callscope"]
        speedup = (ours["packets"] / ours["seconds"]) / (dpkt["packets"] / dpkt["seconds"])
        ok &= speedup >= SPEED_TARGET
        print(f"target: callscope >= {SPEED_TARGET:.0f}x dpkt (wall clock) -> {speedup:.1f}x "
              f"{'OK' if speedup >= SPEED_TARGET else 'MISSED'}")

        if args.big_gb > 0:
            t = time.perf_counter()
            n_big = write_big(big, small, int(args.big_gb * 1e9))
            print(f"\nwrote {big.stat().st_size / 1e9:.2f} GB ({n_big} packets) in {time.perf_counter() - t:.1f} s")
            r = measure("callscope", big)
            assert r["datagrams"] == n_big
            rate = r["packets"] / r["seconds"]
            mem_ok = r["rss_mb"] < MEMORY_TARGET_MB
            ok &= mem_ok
            print(f"callscope iter_datagrams: {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU), {rate:,.0f} packets/s, "
                  f"{r['chunks']} chunks, peak RSS {r['rss_mb']:.0f} MB")
            print(f"target: peak RSS < {MEMORY_TARGET_MB:.0f} MB for {args.big_gb:g} GB -> "
                  f"{'OK' if mem_ok else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
