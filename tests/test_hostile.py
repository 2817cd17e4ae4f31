"""Hostile and huge captures: bounded memory and time, one-line errors, safe output.

Each test builds its capture from the failure class it guards against (see
issue 17), with the project's pcap writer or with struct where a field has
to hold a value the writer would never write.
"""

from __future__ import annotations

import gzip
import struct
import sys
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import orjson
import pytest

import callscope
from callscope.capture.fragments import MAX_PENDING_BYTES, Reassembler
from callscope.capture.reader import GZIP_MAX_RATIO, read_capture
from callscope.errors import CorruptCaptureError
from callscope.media.sip import MAX_SIP_BYTES, parse_sdp, parse_sip
from callscope.metrics.timeline import MIN_WINDOW_BUDGET, WINDOWS_PER_PACKET
from callscope.report.jsonout import report_dict
from hostile_captures import (
    NS,
    A,
    B,
    ether_ipv4,
    opaque_rows,
    raw_pcap,
    rtp_rows,
    sdp,
    sip_invite,
    udp,
    write_datagrams,
)

YEAR_NS = 365 * 86400 * NS
T0 = 1_700_000_000 * NS


from conftest import run_cli  # noqa: E402,F401


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("callscope: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], err


def peak_bytes(fn) -> tuple[object, int]:
    """Result of ``fn()`` and the peak of memory traced meanwhile (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ memory from small files


def test_streams_years_apart_give_json_proportional_to_packets(tmp_path):
    rows = []
    for k in range(12):  # 12 streams of 60 packets, each 3 years after the one before
        rows += rtp_rows(60, T0 + k * 3 * YEAR_NS, ssrc=0x100 + k, sport=4000 + 2 * k)
        rows += rtp_rows(3, T0 + k * 3 * YEAR_NS + 2 * YEAR_NS, ssrc=0x100 + k, sport=4000 + 2 * k, seq0=1060)
    rows.sort(key=lambda r: r[0])
    path = write_datagrams(tmp_path / "years.pcap", rows)
    report, peak = peak_bytes(lambda: callscope.analyze(path))
    doc = orjson.dumps(report_dict(report))
    assert len(report.streams) == 12
    for s in report.streams:
        tl = report.metrics[s.id].timeline
        assert tl.start_s.size <= max(MIN_WINDOW_BUDGET, WINDOWS_PER_PACKET * len(s.packets))
        assert tl.window_s > 1.0  # coarser windows, and the series says which width
    assert len(doc) < 3_000_000  # was 1.8 GB of JSON for a 414 KB capture
    assert peak < 400 << 20


def test_opaque_stream_with_a_clock_jump_does_not_allocate_per_second_of_the_jump(tmp_path):
    rows = opaque_rows(400, T0) + [(r[0] + 60 * YEAR_NS, *r[1:]) for r in opaque_rows(400, T0, seed=8)]
    path = write_datagrams(tmp_path / "jump.pcap", rows)
    report, peak = peak_bytes(lambda: callscope.analyze(path))
    (s,) = report.streams
    assert s.kind == "opaque"
    m = report.metrics[s.id]
    assert 800 <= m.expected <= max(1 << 20, 64 * 800)  # was ~10^11 slots: 116 GiB
    assert peak < 400 << 20
    orjson.dumps(report_dict(report))


def test_gzip_bomb_is_refused_with_one_line_at_once(tmp_path, capsys):
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = struct.pack("<IIII", 0, 0, 0, 0) * 65536  # empty records: 1 MB that compresses ~1000x
    parts = [co.compress(header)] + [co.compress(block) for _ in range(200)] + [co.flush()]
    bomb = tmp_path / "bomb.pcap.gz"
    bomb.write_bytes(b"".join(parts))
    start = time.perf_counter()
    with pytest.raises(CorruptCaptureError, match="decompression bomb"):
        read_capture(bomb)
    assert time.perf_counter() - start < 10
    code, _, err = run_cli(capsys, "info", str(bomb))
    assert_one_error_line(code, err, f"more than {GZIP_MAX_RATIO} times")


def test_ordinary_gzip_capture_is_within_the_budget(tmp_path):
    plain = write_datagrams(tmp_path / "call.pcap", rtp_rows(3000, T0))
    packed = tmp_path / "call.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert len(read_capture(packed).datagrams) == 3000


def test_huge_sip_message_is_parsed_in_bounded_time():
    head = b"INVITE sip:bob@x SIP/2.0\r\nCall-ID: big\r\nContent-Type: application/sdp\r\n"
    message = head + b"X-Pad: " + b"a" * (64 << 20) + b"\r\n\r\n" + sdp("4000").encode()
    start = time.perf_counter()
    m = parse_sip(message, 1, 0)
    assert time.perf_counter() - start < 20.0  # a hang guard: 64 MB once took 100 s
    assert m.call_id == "big" and m.media == ()  # the body lies past MAX_SIP_BYTES
    assert len(message) > MAX_SIP_BYTES


# ------------------------------------------------------------------ time


def _fragment(ident: int, offset8: int, more: bool, data: bytes) -> bytes:
    flags = (0x2000 if more else 0) | offset8
    return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(data), ident, flags, 64, 17, 0, A, B) + data


@pytest.mark.timeout(60)
def test_fragment_reassembly_of_every_fragment_id_finishes():
    """80,000 first fragments, every 16-bit id in use (65k ids once took 119 s,
    quadratic in the ids). The speed itself is the benchmark's business; this
    guards against the hang, with a generous timeout."""
    r = Reassembler()
    r.add([(i, i, _fragment(i & 0xFFFF, 0, True, b"x" * 16)) for i in range(80_000)])


def test_fragments_still_reassemble_and_overlaps_stay_within_the_byte_budget():
    r = Reassembler()
    payload = udp(4000, 5000, bytes(range(256)) * 8)  # 2056 bytes
    first, second = payload[:1480], payload[1480:]
    out = r.add([(1, 10, _fragment(7, 0, True, first)), (2, 20, _fragment(7, 185, False, second))])
    assert len(out) == 1 and int(out.udp_payload_len[0]) == 2048 and int(out.frame[0]) == 2
    # overlapping pieces of never-completed datagrams: memory held stays bounded
    many = [(i, i, _fragment(i % 5000, (i // 5000) * 8, True, b"y" * 1400)) for i in range(60_000)]
    r.add(many)
    assert r._held <= MAX_PENDING_BYTES


# ------------------------------------------------------------------ silently wrong numbers


def test_ip_total_length_zero_with_absurd_original_length_gives_no_negative_bytes(tmp_path):
    frame = ether_ipv4(udp(4000, 5000, b"\x80\x00" + b"z" * 170, length=0), total_length=0)
    recs = [(1_700_000_000 + i, 0, len(frame), 0xFFFFFFFF, frame) for i in range(50)]
    path = raw_pcap(tmp_path / "tso.pcap", recs)
    d = read_capture(path).datagrams
    assert len(d) == 50
    assert (d.udp_payload_len >= 0).all() and (d.udp_payload_len <= 65535 - 28).all()
    assert (d.frame_len > 0).all()
    report = callscope.analyze(path)
    doc = report_dict(report)
    assert all((s.get("bitrate_kbps") or 0) >= 0 for s in doc["streams"])


# ------------------------------------------------------------------ tracebacks -> results


def test_frames_out_of_time_order_are_analyzed_as_arrivals(tmp_path):
    rtp = rtp_rows(500, T0)
    opq = opaque_rows(500, T0 + 3 * NS)
    ordered = write_datagrams(tmp_path / "ordered.pcap", sorted(rtp + opq, key=lambda r: r[0]))
    # two halves joined the wrong way round, as `cat b.pcap a.pcap` would
    merged = sorted(rtp + opq, key=lambda r: r[0])
    shuffled = write_datagrams(tmp_path / "catted.pcap", merged[500:] + merged[:500])
    a, b = callscope.analyze(ordered), callscope.analyze(shuffled)
    assert [s.kind for s in a.streams] == [s.kind for s in b.streams] == ["rtp", "opaque"]
    for sa, sb in zip(a.streams, b.streams, strict=True):
        assert np.all(np.diff(sb.packets.time) >= 0)
        assert a.metrics[sa.id].lost == b.metrics[sb.id].lost
        assert a.metrics[sa.id].expected == b.metrics[sb.id].expected


def test_chaotic_timestamps_give_a_result(tmp_path):
    rng = np.random.default_rng(3)
    rows = rtp_rows(400, T0) + opaque_rows(400, T0)
    rows = [(T0 + int(rng.integers(0, 600 * NS)), *r[1:]) for r in rows]
    report = callscope.analyze(write_datagrams(tmp_path / "chaos.pcap", rows))
    assert report.verdict
    orjson.dumps(report_dict(report))


@pytest.mark.parametrize("port", ["70000", "4²00", "99999999999999999999", "-5"])
def test_impossible_sdp_ports_are_ignored_not_fatal(tmp_path, port):
    (media,) = parse_sdp(sdp(port))[1]
    assert media.port == 0
    rows = [(T0 - NS, A, B, 5060, 5060, sip_invite("p@x", sdp(port)))] + rtp_rows(200, T0)
    report = callscope.analyze(write_datagrams(tmp_path / "sdp.pcap", rows))
    assert len(report.streams) == 1 and report.streams[0].codec == "PCMU"


def test_sdp_numbers_must_be_ascii_digits():
    _, (m,) = parse_sdp(sdp("4000", rtpmap="9⁶ opus/48000", pts="0 ²"))
    assert m.port == 4000 and m.payload_types == (0,) and m.rtpmap == ()
    assert parse_sip(b"SIP/2.0 2\xc2\xb200 OK\r\nCall-ID: a\r\n\r\n", 1, 0).status is None


def _mathtext_capture(tmp_path):
    codec = "$\\frac{$x^{"  # malformed TeX: mathtext raised on it
    rows = [(T0 - NS, A, B, 5060, 5060, sip_invite("m@x", sdp("5000", rtpmap=f"96 {codec}/8000", pts="96")))]
    rows += rtp_rows(300, T0, pt=96)
    return write_datagrams(tmp_path / "mathtext.pcap", rows), codec


def test_codec_name_with_dollars_is_plotted_as_text(tmp_path, capsys):
    path, codec = _mathtext_capture(tmp_path)
    report = callscope.analyze(path)
    assert report.streams[0].codec == codec
    code, out, err = run_cli(capsys, "plot", str(path), "-o", str(tmp_path / "plots"))
    assert code == 0, err
    assert any(p.suffix == ".png" for p in (tmp_path / "plots").iterdir())
    code, _, err = run_cli(capsys, "analyze", str(path), "--plot", str(tmp_path / "p2"))
    assert code == 0, err


@pytest.mark.parametrize("args, needle", [
    (("--window", "0"), "--window"),
    (("--window", "-1"), "--window"),
    (("--window", "nan"), "not a finite number"),
    (("--window", "inf"), "--window"),
    (("--delay-ms", "-1e308"), "--delay-ms"),
    (("--delay-ms", "nan"), "not a finite number"),
    (("--decode-as", "70000"), "--decode-as"),
])
def test_out_of_range_options_are_one_line_exit_2(capsys, args, needle):
    code, _, err = run_cli(capsys, "analyze", "fixtures/rtpproxy__lost.a.pcap", *args)
    assert_one_error_line(code, err, needle)


def test_output_paths_that_cannot_be_written_fail_before_the_work(tmp_path, capsys):
    cap = "fixtures/rtpproxy__lost.a.pcap"
    regular = tmp_path / "file"
    regular.write_text("x")
    cases = [
        (("plot", cap, "-o", str(regular / "sub")), "is a file, not a directory"),
        (("plot", cap, "-o", "/proc/callscope-plots"), "cannot create"),
        (("plot", cap, "-o", "/dev/full"), "not a directory"),
        (("analyze", cap, "--plot", str(regular)), "is a file"),
        (("compare", cap, cap, "--plot", str(tmp_path / "missing" / "x.png")), "does not exist"),
        (("compare", cap, cap, "--plot", str(regular / "x.png")), "is a file"),
        (("batch", cap, "--csv", str(regular / "x.csv")), "x.csv"),
        (("batch", cap, "--jsonl", "/proc/x.jsonl"), "cannot"),
        (("batch", cap, "--cache", str(regular)), "is a file"),
    ]
    for args, needle in cases:
        code, out, err = run_cli(capsys, *args)
        assert_one_error_line(code, err, needle)
        assert out == ""


def test_full_device_on_stdout_is_one_line(tmp_path):
    import subprocess

    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "callscope", "analyze", "fixtures/rtpproxy__lost.a.pcap",
                               "--format", "json"], stdout=full, stderr=subprocess.PIPE, text=True,
                              env={**__import__("os").environ})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["callscope: error: No space left on device"]


@pytest.mark.parametrize("content", [
    b"{not json", b"[1, 2]", b'{"params": {}}', b'{"label": 3}', b'{"label": "clean", "params": [1]}',
    b'{"label": "clean", "streams": [{"src": "a", "src_port": "x", "dst": "b", "dst_port": 1, "direction": "a->b"}]}',
    b"\xff\xfe\x00", b"[" * 100_000,
])
def test_malformed_truth_sidecar_is_one_line(tmp_path, capsys, content):
    (tmp_path / "c.pcap").write_bytes(open("fixtures/rtpproxy__lost.a.pcap", "rb").read())
    (tmp_path / "c.truth.json").write_bytes(content)
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path))
    assert_one_error_line(code, err, "c.truth.json", "not a ground-truth sidecar")


# ------------------------------------------------------------------ warnings


def test_library_warnings_do_not_reach_stderr_but_callscope_warnings_do(capsys):
    from callscope.cli.common import one_line_warnings
    from callscope.errors import TruncatedCaptureWarning

    with one_line_warnings():
        np.polyfit(np.ones(5), np.arange(5.0), 3)  # RankWarning: poorly conditioned
        np.float64(1.0) / np.float64(0.0)
        warnings.warn("cut off at byte 9", TruncatedCaptureWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err == "callscope: warning: cut off at byte 9\n"


def test_sequence_running_against_the_clock_gives_a_result(tmp_path):
    # 50 consecutive sequence numbers stamped at random over 200 s (fewer than
    # RFC 3550's MAX_MISORDER, so every one counts as reordered, not lost): in
    # sequence order the stream's clock runs backwards, and jitter detrending
    # asked for an array of negative size.
    rng = np.random.default_rng(5)
    rows = rtp_rows(50, T0)
    rows = [(T0 + int(x * NS), *r[1:]) for r, x in zip(rows, rng.uniform(0, 200, len(rows)), strict=True)]
    rows[0], rows[-1] = (T0 + 200 * NS, *rows[0][1:]), (T0, *rows[-1][1:])
    report = callscope.analyze(write_datagrams(tmp_path / "backwards.pcap", rows))
    assert len(report.streams) == 1
    assert report.metrics[report.streams[0].id].missing == 0
    orjson.dumps(report_dict(report))


def test_sip_datagrams_of_megabytes_cost_neither_memory_nor_time(tmp_path):
    # IPv4 total length 0 (segmentation offload) lets a frame's IP packet run
    # to the end of a record of up to 64 MB; SIP over it is read as at most
    # one IPv4 packet's worth.
    body = sip_invite("huge@x", sdp("5000")) + b"a" * (12 << 20)
    frame = ether_ipv4(udp(5060, 5060, body, length=0), total_length=0)
    recs = [(1_700_000_000 + i, 0, len(frame), len(frame), frame) for i in range(6)]
    path = raw_pcap(tmp_path / "bigsip.pcap", recs, snaplen=(1 << 26) - 1)
    start = time.perf_counter()
    report, peak = peak_bytes(lambda: callscope.analyze(path))
    assert time.perf_counter() - start < 10
    assert report.inventory.sip.messages == 6
    assert peak < 300 << 20


def test_sequence_numbers_skipping_far_beyond_real_loss_do_not_allocate_per_number(tmp_path):
    from callscope.media.discover import MAX_SEQ_SLOTS

    skipping = write_datagrams(tmp_path / "skip.pcap", rtp_rows(30_000, T0, seq_step=50, size=20))
    report, peak = peak_bytes(lambda: callscope.analyze(skipping))
    (s,) = report.streams
    assert 30_000 * 50 > MAX_SEQ_SLOTS
    assert s.kind == "opaque" and "analyzed by its cadence" in s.notes[-1]
    assert peak < 300 << 20  # 1.5 million sequence slots would have taken ~350 MB
    lossy = write_datagrams(tmp_path / "lossy.pcap", rtp_rows(5_000, T0, seq_step=5))
    (s,) = callscope.analyze(lossy).streams
    assert s.kind == "rtp"  # 80 % loss is loss, not a reason to stop reading sequence numbers


def test_the_delay_floor_of_an_opaque_stream_with_a_clock_jump_is_per_window_held(tmp_path):
    # The fuzzer's nDPI__telegram with mutated timestamps: hidden_loss kept one
    # float per 2 s window of the whole span, 8 GiB for a 34-year jump.
    from callscope.diagnose.queue_delay import hidden_loss
    from callscope.diagnose.trace import Trace

    n = 600
    time_s = np.arange(n) * 0.02
    time_s[300:] += 34 * YEAR_NS / 1e9
    delay = np.zeros(n)
    trace = Trace(stream_id="s1", opaque=True, ptime=0.02, time=time_s, send=np.arange(n) * 0.02,
                  received=np.ones(n, bool), size=np.full(n, 80.0), delay=delay, capture_end=float(time_s[-1]))
    found, peak = peak_bytes(lambda: hidden_loss(trace))
    assert found == 0.0
    assert peak < 8 << 20  # was 8 GiB
    # and a clock that runs backwards does not index past the windows
    trace = Trace(stream_id="s1", opaque=True, ptime=0.02, time=time_s[::-1].copy(), send=np.arange(n) * 0.02,
                  received=np.ones(n, bool), size=np.full(n, 80.0), delay=delay, capture_end=float(time_s[0]))
    assert hidden_loss(trace) == 0.0
