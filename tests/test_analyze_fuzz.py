"""Hostile captures through the whole pipeline: only CallscopeError, bounded memory.

The reader's own fuzz tests stop at the datagram table; these go on through
media discovery, metrics, diagnosis and the report, in a child process whose
address space is capped so that a runaway allocation fails the test instead
of the machine.
"""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES

MEMORY_CAP = 3 << 30  # bytes of address space for the child


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          preexec_fn=_capped, timeout=300, **kw)


def _shift_record_time(src, dst, record: int, seconds: int) -> None:
    """Copy a little-endian µs pcap, moving one record's timestamp by ``seconds``."""
    b = bytearray(src.read_bytes())
    off = 24
    for _ in range(record):
        off += 16 + struct.unpack_from("<I", b, off + 8)[0]
    ts = struct.unpack_from("<I", b, off)[0]
    struct.pack_into("<I", b, off, ts + seconds)
    dst.write_bytes(bytes(b))


@pytest.mark.parametrize("opaque", [False, True], ids=["rtp", "opaque"])
def test_a_clock_jump_inside_a_stream_stays_bounded(tmp_path, opaque):
    if opaque:
        from callscope.synth import simulate, write_capture

        src = tmp_path / "call.pcap"
        write_capture(simulate("clean", seed=3, duration=10.0, opaque=True), src)
    else:
        src = FIXTURES / "rtpproxy__lost.a.pcap"
    bad = tmp_path / "jump.pcap"
    _shift_record_time(src, bad, 120, 10 * 365 * 86400)  # one packet ten years late
    p = _run(["-m", "callscope", "analyze", "--format", "json", str(bad)])
    assert p.returncode == 0, p.stderr[-500:]
    doc = json.loads(p.stdout)
    assert sum(s["packets"] for s in doc["streams"]) >= 100
    for s in doc["streams"]:
        assert len(s["series"]["packets"]) <= 200_000


def test_mutated_captures_only_raise_callscope_errors(tmp_path):
    script = textwrap.dedent(f"""
        import random, warnings
        from pathlib import Path
        import callscope
        from callscope.errors import CallscopeError
        from callscope.report.jsonout import report_dict
        from callscope.report.text import text_report
        warnings.simplefilter("ignore")
        rng = random.Random(20261129)
        sources = sorted(Path({str(FIXTURES)!r}).glob("*.pcap"))
        for i in range(40):
            src = rng.choice(sources)
            b = bytearray(src.read_bytes())
            for _ in range(rng.choice([1, 5, 50, 500])):
                b[rng.randrange(24, len(b))] = rng.randrange(256)
            path = Path({str(tmp_path)!r}) / f"m{{i}}.pcap"
            path.write_bytes(bytes(b))
            try:
                r = callscope.analyze(path)
                report_dict(r)
                text_report(r)
            except CallscopeError:
                pass
        print("ok")
    """)
    p = _run(["-c", script])
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
