"""Mutation fuzzing of the whole pipeline on real captures.

Every case takes a real capture (``../shared/captures`` and ``fixtures/``),
applies one to three structure-aware mutations, and runs it through
``callscope.analyze`` plus every serialisation of the result (JSON document
through orjson, text, Markdown, CSV) or, in ``report`` mode, through the HTML
report with its plots and audio. Workers are separate processes with an
address-space cap (``RLIMIT_AS``) and a per-case timeout; a worker that hangs
or dies is replaced and its case recorded.

Outcomes of a case:

``ok``
    a result came back;
``error``
    a :class:`callscope.errors.CallscopeError` (the one-line-and-exit-2
    contract: not a failure);
``traceback``
    any other exception, grouped by signature (type + innermost frame);
``crash``
    the worker died (a signal, e.g. a segfault);
``hang``
    the case ran past ``--timeout`` seconds.

Mutations: truncation, bit flips, byte overwrites with boundary values,
record / block length fields (pcap ``incl_len`` / ``orig_len``, pcapng block
and option lengths), pcapng block and option corruption, splices of two
captures, record timestamp mutations (reversed, jumps of years, chaos),
header mutations inside packets (IPv4 total length / IHL / fragment field,
UDP length, RTP version / sequence / timestamp / SSRC), record duplication
and gzip wrapping.

Usage
-----
Short seeded run (what the test suite runs)::

    python benchmarks/fuzz.py --cases 300 --seed 1

The long run quoted in the issue's closing note (about an hour on 2 cores)::

    nice python benchmarks/fuzz.py --cases 10000 --workers 2 --seed 17
    nice python benchmarks/fuzz.py --mode report --cases 1000 --workers 2 --seed 18

Exit status: 0 when no case produced a traceback, crash or hang, 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_DIRS = (ROOT.parent / "shared" / "captures", ROOT / "fixtures")
#: address space each worker may map (numpy and matplotlib alone map ~1 GB)
DEFAULT_MEMORY_MB = 3072
DEFAULT_TIMEOUT_S = 60.0
FAILURES = ("traceback", "crash", "hang")

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
INTERESTING_16 = (0, 1, 7, 8, 9, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)


def seed_files(dirs=SEED_DIRS) -> list[Path]:
    """Every pcap / pcapng file in the seed directories."""
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix in (".pcap", ".pcapng") or p.name.endswith(".pcap.gz"))
    return out


# -- structure of a capture ---------------------------------------------------


def records(data: bytes) -> tuple[str, str, list[tuple[int, int]]]:
    """(format, byte order, [(record offset, record length)]) of a pcap or pcapng file."""
    if data[:4] in PCAP_MAGICS:
        e = PCAP_MAGICS[data[:4]]
        out, off = [], 24
        while off + 16 <= len(data):
            incl = struct.unpack_from(e + "I", data, off + 8)[0]
            if off + 16 + incl > len(data):
                break
            out.append((off, 16 + incl))
            off += 16 + incl
        return "pcap", e, out
    if data[:4] == PCAPNG_SHB and len(data) >= 12:
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        out, off = [], 0
        while off + 12 <= len(data):
            blen = struct.unpack_from(e + "I", data, off + 4)[0]
            if blen < 12 or off + blen > len(data):
                break
            out.append((off, blen))
            off += blen
        return "pcapng", e, out
    return "", "<", []


def packet_start(fmt: str, e: str, data: bytes, off: int) -> int | None:
    """Offset of a record's packet bytes (None for non-packet pcapng blocks)."""
    if fmt == "pcap":
        return off + 16
    btype = struct.unpack_from(e + "I", data, off)[0]
    return off + 28 if btype in (2, 6) else (off + 12 if btype == 3 else None)


# -- mutations ------------------------------------------------------------------


def m_truncate(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    return b[: rng.randrange(0, max(len(b), 1))]


def m_bitflip(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    for _ in range(rng.choice((1, 2, 4, 16, 64))):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return b


def m_bytes(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    for _ in range(rng.choice((1, 3, 8))):
        i = rng.randrange(len(b))
        width = rng.choice((1, 2, 4))
        v = rng.choice(INTERESTING_32) & ((1 << (8 * width)) - 1)
        b[i:i + width] = v.to_bytes(width, rng.choice(("little", "big")))[: len(b) - i]
    return b


def m_lengths(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    fmt, e, recs = records(bytes(b))
    if not recs:
        return m_bytes(rng, b, other)
    for _ in range(rng.choice((1, 1, 2, 5))):
        off, _ = rng.choice(recs)
        if fmt == "pcap":
            field = off + rng.choice((8, 12))
        else:
            field = off + rng.choice((4, 4, 20, 24))
        if field + 4 <= len(b):
            struct.pack_into(e + "I", b, field, rng.choice(INTERESTING_32 + (rng.randrange(1 << 32),)))
    return b


def m_pcapng_blocks(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    """Corrupt pcapng block types, interface ids, IDB link types and options."""
    fmt, e, recs = records(bytes(b))
    if fmt != "pcapng" or not recs:
        return m_lengths(rng, b, other)
    off, blen = rng.choice(recs)
    btype = struct.unpack_from(e + "I", b, off)[0]
    what = rng.randrange(5)
    if what == 0:
        struct.pack_into(e + "I", b, off, rng.choice((0, 1, 2, 3, 5, 6, 0x0A0D0D0A, 0xDEADBEEF)))
    elif what == 1 and btype == 6 and blen >= 32:
        struct.pack_into(e + "I", b, off + 8, rng.choice((0, 1, 2, 255, 0xFFFFFFFF)))
    elif what == 2 and btype == 1 and blen >= 20:
        struct.pack_into(e + "H", b, off + 8, rng.choice((0, 1, 101, 113, 276, 0xFFFF)))
    elif what == 3 and btype == 1:
        # an if_tsresol / if_tsoffset option with a hostile value at the first option slot
        if blen >= 28:
            code = rng.choice((9, 14, 0, 0xFFFF))
            struct.pack_into(e + "HH", b, off + 16, code, rng.choice((0, 1, 8, 0xFFFF)))
            b[off + 20] = rng.choice((0, 9, 19, 20, 63, 64, 0x80 | 63, 0xFF))
    else:
        # duplicate a block (e.g. a second IDB or SHB mid-file)
        b[off:off] = b[off:off + blen]
    return b


def m_splice(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    if not other:
        return m_bitflip(rng, b, other)
    i = rng.randrange(len(b))
    j = rng.randrange(len(other))
    return b[:i] + other[j:j + rng.randrange(1, 1 << 16)] + b[i:]


def m_timestamps(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    fmt, e, recs = records(bytes(b))
    recs = [r for r in recs if fmt == "pcap" or struct.unpack_from(e + "I", b, r[0])[0] in (2, 6)]
    if not recs:
        return m_bytes(rng, b, other)
    style = rng.randrange(4)
    picked = recs if style in (2, 3) else rng.sample(recs, min(len(recs), rng.choice((1, 3, 10))))
    for k, (off, _) in enumerate(picked):
        pos = off + (0 if fmt == "pcap" else 12)
        hi, lo = struct.unpack_from(e + "II", b, pos)
        if style == 0:  # jumps of hours to years
            hi = (hi + rng.choice((1, -1)) * rng.choice((3600, 86400 * 3, 86400 * 365 * 5))) % (1 << 32)
        elif style == 1:
            hi, lo = rng.randrange(1 << 32), rng.randrange(1 << 32)
        elif style == 2:  # frames out of time order
            hi = (hi - 2 * k) % (1 << 32) if rng.random() < 0.5 else hi
            lo = rng.randrange(1 << 20)
        else:  # every record a random offset: chaos
            hi = (hi + rng.randrange(-100, 100)) % (1 << 32)
        struct.pack_into(e + "II", b, pos, hi, lo)
    return b


def m_headers(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    """Hostile values in IPv4 / UDP / RTP header fields of Ethernet frames."""
    fmt, e, recs = records(bytes(b))
    starts = [s for s in (packet_start(fmt, e, bytes(b), off) for off, _ in recs) if s is not None]
    starts = [s for s in starts if s + 54 <= len(b) and b[s + 12:s + 14] == b"\x08\x00"]
    if not starts:
        return m_bytes(rng, b, other)
    for s in rng.sample(starts, min(len(starts), rng.choice((1, 5, 50)))):
        ip = s + 14
        field = rng.randrange(8)
        if field == 0:
            struct.pack_into("!H", b, ip + 2, rng.choice(INTERESTING_16))  # total length
        elif field == 1:
            b[ip] = 0x40 | rng.randrange(16)  # IHL
        elif field == 2:
            struct.pack_into("!H", b, ip + 6, rng.choice((0x2000, 0x2001, 0x1FFF, 0x3FFF, rng.randrange(1 << 16))))
        elif field == 3:
            struct.pack_into("!H", b, ip + 24, rng.choice(INTERESTING_16))  # UDP length (IHL 5)
        elif field == 4:
            b[ip + 28] = rng.randrange(256)  # RTP V/P/X/CC
        elif field == 5:
            struct.pack_into("!H", b, ip + 30, rng.randrange(1 << 16))  # RTP sequence
        elif field == 6:
            struct.pack_into("!I", b, ip + 32, rng.choice((0, 0xFFFFFFFF, rng.randrange(1 << 32))))  # RTP ts
        else:
            struct.pack_into("!I", b, ip + 36, rng.randrange(1 << 32))  # SSRC
    return b


def m_duplicate(rng: random.Random, b: bytearray, other: bytes) -> bytearray:
    _fmt, _e, recs = records(bytes(b))
    if len(recs) < 2:
        return m_truncate(rng, b, other)
    off, n = rng.choice(recs[1:])
    chunk = bytes(b[off:off + n])
    return b[:off] + chunk * rng.choice((2, 10, 200)) + b[off:]


MUTATIONS = {
    "truncate": m_truncate, "bitflip": m_bitflip, "bytes": m_bytes, "lengths": m_lengths,
    "pcapng": m_pcapng_blocks, "splice": m_splice, "timestamps": m_timestamps, "headers": m_headers,
    "duplicate": m_duplicate,
}


def make_case(seed: int, index: int, seeds: list[Path]) -> tuple[str, bytes, bool]:
    """The mutated bytes of case ``index`` (deterministic for a seed), and whether to gzip them."""
    rng = random.Random(f"{seed}:{index}")
    base = seeds[rng.randrange(len(seeds))]
    data = base.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    other = seeds[rng.randrange(len(seeds))].read_bytes()
    b = bytearray(data)
    names = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choice(list(MUTATIONS))
        names.append(name)
        if b:
            b = MUTATIONS[name](rng, b, other)
    gz = rng.random() < 0.08
    return f"{base.name}:{'+'.join(names)}{'+gzip' if gz else ''}", bytes(b), gz


# -- running a case -------------------------------------------------------------


def signature(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}:{tb[-1].name}" if tb else "?"
    return f"{type(exc).__name__} at {where}"


def run_case(path: str, mode: str) -> tuple[str, str]:
    """Run one capture through the pipeline in this process: (outcome, detail)."""
    import warnings

    import orjson

    import callscope
    from callscope.errors import CallscopeError
    from callscope.report import text
    from callscope.report.jsonout import report_dict

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = callscope.analyze(path)
            if mode == "report":
                from callscope.report.html import render_html

                render_html(report)
            else:
                orjson.dumps(report_dict(report), default=str)
                text.text_report(report)
                text.markdown_report(report)
                text.csv_report(report)
    except CallscopeError as e:
        return "error", str(e).splitlines()[0][:200]
    except Exception as e:  # noqa: BLE001 - what the harness is looking for
        return "traceback", signature(e)
    raw = sorted({f"{w.category.__name__}: {str(w.message)[:80]}" for w in caught
                  if not w.category.__module__.startswith("callscope")})
    return "ok", "; ".join(raw)


def _worker(conn, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    import matplotlib

    matplotlib.use("Agg")
    import callscope.analysis  # noqa: F401 - imported once, before the first case is timed

    while True:
        job = conn.recv()
        if job is None:
            return
        path, mode = job
        outcome, detail = run_case(path, mode)
        conn.send((outcome, detail, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


class Worker:
    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.start()

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, self.memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.case: tuple | None = None
        self.started = 0.0

    def submit(self, case: tuple, path: str, mode: str) -> None:
        self.case, self.started = case, time.monotonic()
        self.conn.send((path, mode))

    def restart(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.start()


def fuzz(cases: int, seed: int, mode: str, workers: int, timeout: float, memory_mb: int,
         seeds: list[Path], verbose: bool = False, keep: Path | None = None) -> dict:
    """Run ``cases`` mutations; a summary dict (counts, signatures, peak RSS)."""
    outcomes: Counter = Counter()
    signatures: dict[str, list[str]] = {}
    warnings_seen: Counter = Counter()
    peak_kb = 0
    slowest = 0.0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="callscope-fuzz-") as tmp:
        pool = [Worker(memory_mb) for _ in range(workers)]
        todo = iter(range(cases))
        busy: dict[int, tuple] = {}

        def record(case, outcome: str, detail: str) -> None:
            outcomes[outcome] += 1
            if outcome in FAILURES:
                signatures.setdefault(f"{outcome}: {detail}", []).append(case[1])
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"case-{case[0]}").write_bytes(Path(case[2]).read_bytes())
            elif outcome == "ok" and detail:
                for w in detail.split("; "):
                    warnings_seen[w] += 1
            if verbose:
                print(f"{case[0]:6d} {outcome:9s} {case[1]}  {detail[:120]}", flush=True)

        def feed(i: int) -> bool:
            k = next(todo, None)
            if k is None:
                return False
            name, data, gz = make_case(seed, k, seeds)
            path = os.path.join(tmp, f"w{i}.pcap" + (".gz" if gz else ""))
            with open(path, "wb") as f:
                f.write(gzip.compress(data, 1) if gz else data)
            case = (k, name, path)
            pool[i].submit(case, path, mode)
            busy[i] = case
            return True

        for i in range(workers):
            feed(i)
        while busy:
            for i in list(busy):
                w = pool[i]
                if w.conn.poll(0.02):
                    try:
                        outcome, detail, rss = w.conn.recv()
                    except EOFError:
                        code = w.proc.exitcode
                        record(busy.pop(i), "crash", f"worker died (exit {code})")
                        w.restart()
                    else:
                        peak_kb = max(peak_kb, rss)
                        slowest = max(slowest, time.monotonic() - w.started)
                        record(busy.pop(i), outcome, detail)
                    if not feed(i):
                        continue
                elif not w.proc.is_alive():
                    record(busy.pop(i), "crash", f"worker died (exit {w.proc.exitcode})")
                    w.restart()
                    feed(i)
                elif time.monotonic() - w.started > timeout:
                    record(busy.pop(i), "hang", f"over {timeout:.0f} s")
                    w.restart()
                    feed(i)
        for w in pool:
            w.conn.send(None)
            w.proc.join(5)
    return {
        "mode": mode, "cases": cases, "seed": seed, "seconds": round(time.monotonic() - t0, 1),
        "outcomes": dict(outcomes), "failures": sum(outcomes[k] for k in FAILURES),
        "signatures": {k: {"count": len(v), "example": v[0]} for k, v in
                       sorted(signatures.items(), key=lambda kv: -len(kv[1]))},
        "library_warnings": dict(warnings_seen.most_common(20)),
        "peak_rss_mb": round(peak_kb / 1024, 1), "slowest_case_s": round(slowest, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("analyze", "report"), default="analyze",
                    help="analyze: API + JSON/text/Markdown/CSV; report: the HTML report with plots and audio")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per case")
    ap.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="RLIMIT_AS of each worker")
    ap.add_argument("--seeds", type=Path, nargs="*", help="seed directories (default: ../shared/captures, fixtures)")
    ap.add_argument("--keep", type=Path, help="copy every failing case here")
    ap.add_argument("--json", type=Path, help="write the summary here too")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = ap.parse_args(argv)
    seeds = seed_files(tuple(args.seeds) if args.seeds else SEED_DIRS)
    if not seeds:
        print("fuzz: no seed captures found", file=sys.stderr)
        return 2
    summary = fuzz(args.cases, args.seed, args.mode, args.workers, args.timeout, args.memory_mb, seeds,
                   verbose=args.verbose, keep=args.keep)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
