"""``callscope info``: the summary it prints, and captures cut off mid-record."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zlib

import pytest

from callscope.capture import read_capture
from callscope.capture.contents import summarize
from callscope.errors import TruncatedCaptureWarning


def udp_frame(sport: int, dport: int, payload: bytes) -> bytes:
    """Ethernet / IPv4 10.0.0.1 -> 10.0.0.2 / UDP (checksums zero: not verified by readers)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return bytes(6) + bytes(5) + b"\x01" + b"\x08\x00" + ip + udp + payload


def tcp_frame() -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return bytes(12) + b"\x08\x00" + ip + struct.pack("!HHIIBBHHH", 5060, 5060, 0, 0, 0x50, 2, 0, 0, 0)


def pcap(frames: list[bytes], step_us: int = 20_000) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k, f in enumerate(frames):
        sec, us = divmod(k * step_us, 10**6)
        out.append(struct.pack("<IIII", 1_700_000_000 + sec, us, len(f), len(f)) + f)
    return b"".join(out)


def pcapng(frames: list[bytes]) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), block(1, struct.pack("<HHI", 1, 0, 0))]
    for k, f in enumerate(frames):
        t = 1_700_000_000_000_000 + k * 20_000
        out.append(block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f))
    return b"".join(out)


def call_frames() -> list[bytes]:
    """100 RTP-sized datagrams on one flow, 50 on another, 3 TCP segments."""
    frames = [udp_frame(4000, 5000, bytes(160)) for _ in range(100)]
    frames += [udp_frame(6000, 7000, bytes(20)) for _ in range(50)]
    return frames + [tcp_frame()] * 3


def callscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callscope", *args], capture_output=True, text=True, timeout=60)


def test_info_json_counts_packets_flows_and_other_kinds(tmp_path):
    path = tmp_path / "call.pcap"
    path.write_bytes(pcap(call_frames()))
    run = callscope("info", "--format", "json", str(path))
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    (out,) = json.loads(run.stdout)
    assert (out["format"], out["byte_order"], out["compressed"]) == ("pcap", "little", False)
    assert out["link_types"] == ["Ethernet (1)"]
    assert (out["packets"], out["udp_datagrams"], out["flow_count"]) == (153, 150, 2)
    assert out["other"] == {"tcp": 3}
    assert out["duration_s"] == pytest.approx(152 * 0.02)
    busiest = out["flows"][0]
    assert (busiest["src"], busiest["src_port"], busiest["dst"], busiest["dst_port"]) == (
        "10.0.0.1", 4000, "10.0.0.2", 5000)
    assert (busiest["packets"], busiest["bytes"], busiest["mean_size"]) == (100, 16000, 160.0)
    assert busiest["packets_per_s"] == pytest.approx(50.0)
    assert out["flows"][1]["packets"] == 50


def test_info_text_lists_each_capture(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcapng.gz"
    a.write_bytes(pcap(call_frames()))
    b.write_bytes(gzip.compress(pcapng(call_frames()[:10])))
    run = callscope("info", "--top", "1", str(a), str(b))
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "format      pcap, little-endian" in text
    assert "format      pcapng (gzip), little-endian" in text
    assert "UDP         150 datagrams in 2 flows" in text
    assert "UDP         10 datagrams in 1 flows" in text
    assert "other       tcp 3" in text
    assert text.count("10.0.0.1:4000") == 2  # --top 1: only the busiest flow of each


CUTS = {
    "pcap inside a record": ("pcap", lambda data, n: data[: 24 + n * (16 + 202) + 16 + 50]),
    "pcap inside a record header": ("pcap", lambda data, n: data[: 24 + n * (16 + 202) + 7]),
    "pcapng inside a block": ("pcapng", lambda data, n: data[: 28 + 20 + n * (32 + 204) + 100]),
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_capture_cut_off_mid_record_keeps_everything_before_the_cut(tmp_path, cut):
    container, cutter = CUTS[cut]
    frames = [udp_frame(4000, 5000, bytes(160)) for _ in range(80)]  # 202-byte frames
    data = pcap(frames) if container == "pcap" else pcapng(frames)
    path = tmp_path / f"cut.{container}"
    path.write_bytes(cutter(data, 61))
    with pytest.warns(TruncatedCaptureWarning, match="capture is cut off at byte"):
        cap = read_capture(path)
    assert len(cap.datagrams) == 61
    assert cap.info.truncated
    assert cap.info.packets == 61

    run = callscope("info", "--format", "json", str(path))
    assert run.returncode == 0
    (out,) = json.loads(run.stdout)
    assert out["udp_datagrams"] == 61
    assert out["truncated"] is True
    lines = run.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("callscope: warning: ") and "cut off" in lines[0]


def test_gzip_capture_cut_off_keeps_everything_decompressed_before_the_cut(tmp_path):
    frames = [udp_frame(4000, 5000, bytes([k % 256]) * 160) for k in range(20_000)]
    whole = pcap(frames)
    packed = gzip.compress(whole, compresslevel=1)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[: len(packed) // 2])
    d = zlib.decompressobj(wbits=31)
    available = len(d.decompress(packed[: len(packed) // 2]))
    complete = (available - 24) // (16 + len(frames[0]))
    with pytest.warns(TruncatedCaptureWarning, match="compressed stream ends early"):
        summary = summarize(path)
    assert summary.info.udp_datagrams == complete > 5000
    assert summary.info.compressed
