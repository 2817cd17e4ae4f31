"""SRTCP decrypted with known keys feeds the RTCP metrics exactly as plain RTCP does: a simulated
call with RTCP reports and BYEs, encrypted at every suite, analysed with its keys gives the plain
capture's round-trip times, reported loss and jitter, sender info and BYEs; a wrong key is counted
and reported; without keys nothing changes."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pylibsrtp")

from audio_rtp import run_cli  # noqa: E402
from callscope.analysis import analyze  # noqa: E402
from callscope.capture.writer import ipv4_to_int, write_pcap  # noqa: E402
from callscope.media.srtp import SUITES, KeySelector, SrtpKey, protect_packets  # noqa: E402
from callscope.synth import simulate  # noqa: E402
from callscope.synth.packets import Kind  # noqa: E402

SUITE = "AES_CM_128_HMAC_SHA1_80"
PT_RR, PT_BYE = 201, 203  # RFC 3550 §12.1


def _key(suite: str, seed: int) -> SrtpKey:
    return SrtpKey(suite, bytes((seed * 29 + 11 * i) & 0xFF for i in range(SUITES[suite][1])))


def _b64(k: SrtpKey) -> str:
    return base64.b64encode(k.key).decode()


def _bye(ssrc: int, reason: bytes = b"hangup") -> bytes:
    """An empty RR then a BYE with a reason (RFC 3550 §6.1: a compound packet starts with SR or RR)."""
    rr = struct.pack("!BBHI", 0x80, PT_RR, 1, ssrc)
    text = bytes([len(reason)]) + reason
    text += b"\x00" * (-len(text) % 4)
    return rr + struct.pack("!BBHI", 0x81, PT_BYE, 1 + len(text) // 4, ssrc) + text


class Call:
    """A simulated two-way call with loss, RTCP SR/RR every ~5 s and a BYE from each side,
    as datagrams that can be written in the clear or with SRTP/SRTCP."""

    def __init__(self, seed: int = 5):
        sim = simulate("clean", seed=seed, duration=16.0, background_loss=0.04)
        rows = sim.captured()
        self.items = []  # (time_ns, src, dst, sport, dport, kind, payload)
        for r in rows.tolist():
            a = int(sim.payload_start[r])
            self.items.append((sim.epoch_ns + int(round(float(sim.capture_time[r]) * 1e9)), int(sim.src[r]),
                               int(sim.dst[r]), int(sim.sport[r]), int(sim.dport[r]), int(sim.kind[r]),
                               sim.data[a : a + int(sim.size[r])].tobytes()))
        self.ssrcs = [s.ssrc for s in sim.streams if s.kind == "rtp"]
        end = max(t for t, *_ in self.items)
        for s in sim.streams:
            if s.kind == "rtcp":  # each side says BYE on its RTCP port after media ends
                self.items.append((end + 10_000_000 * (s.index - 1), ipv4_to_int(s.src), ipv4_to_int(s.dst),
                                   s.src_port, s.dst_port, int(Kind.RTCP), _bye(s.ssrc)))
        self.items.sort(key=lambda x: x[0])
        self.rtcp_packets = sum(k == Kind.RTCP for *_, k, _p in self.items)

    def muxed(self) -> Call:
        """The same call with RTCP on the RTP ports (RFC 5761 rtcp-mux)."""
        other = object.__new__(Call)
        other.__dict__.update(self.__dict__)
        other.items = [(t, s, d, sp - 1, dp - 1, k, p) if k == Kind.RTCP else (t, s, d, sp, dp, k, p)
                       for t, s, d, sp, dp, k, p in self.items]
        return other

    def write(self, path, keys: dict[int, SrtpKey] | None = None, damage=None) -> None:
        """The call as a pcap; with ``keys`` (SSRC -> key) every RTP and RTCP packet protected, then
        ``damage(index, kind, payload) -> payload`` applied."""
        payloads = [p for *_, p in self.items]
        if keys:
            for ssrc, k in keys.items():
                for rtcp in (False, True):
                    at = [i for i, (*_, kind, p) in enumerate(self.items)
                          if (kind == Kind.RTCP) == rtcp and kind in (Kind.RTP, Kind.RTCP)
                          and struct.unpack_from("!I", p, 4 if rtcp else 8)[0] == ssrc]
                    for i, q in zip(at, protect_packets([payloads[i] for i in at], k, rtcp=rtcp), strict=True):
                        payloads[i] = q
        if damage is not None:
            payloads = [damage(i, x[5], p) for i, (x, p) in enumerate(zip(self.items, payloads, strict=True))]
        lens = np.array([len(p) for p in payloads], np.int64)
        cols = list(zip(*[x[:5] for x in self.items], strict=True))
        write_pcap(path, np.array(cols[0], np.int64), np.array(cols[1], np.uint32), np.array(cols[2], np.uint32),
                   np.array(cols[3], np.uint16), np.array(cols[4], np.uint16),
                   np.frombuffer(b"".join(payloads), np.uint8), np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)


@pytest.fixture(scope="module")
def call() -> Call:
    return Call()


@pytest.fixture(scope="module")
def plain(call, tmp_path_factory):
    path = tmp_path_factory.mktemp("srtcp") / "plain.pcap"
    call.write(path)
    return analyze(path)


def _rtcp_numbers(report) -> tuple:
    r = report.inventory.rtcp
    return r.sender_reports, r.report_blocks, r.byes, r.cnames, r.voip_metrics


def test_the_plain_call_has_the_rtcp_numbers_the_comparison_needs(plain):
    r = plain.inventory.rtcp
    assert r.encrypted == 0 and len(r.byes) == 2 and len(r.sender_reports) >= 4
    rtts = [b.rtt_s for b in r.report_blocks if b.rtt_s is not None]
    assert len(rtts) >= 2 and all(0.005 < x < 0.2 for x in rtts)
    assert any(b.fraction_lost > 0 for b in r.report_blocks) and any(b.jitter > 0 for b in r.report_blocks)
    assert all(m.emodel.ta_ms is not None for m in plain.metrics.values())  # RTT/2 in the delay term


@pytest.mark.parametrize("suite", list(SUITES))
def test_decrypted_srtcp_gives_the_plain_calls_rtcp_metrics(call, plain, tmp_path, suite):
    keys = {ssrc: _key(suite, n) for n, ssrc in enumerate(call.ssrcs)}
    path = tmp_path / "srtp.pcap"
    call.write(path, keys)
    blind = analyze(path)
    assert blind.inventory.rtcp.encrypted == call.rtcp_packets
    assert blind.inventory.rtcp.report_blocks == () and blind.inventory.rtcp.byes == ()

    report = analyze(path, srtp_keys=[(KeySelector(ssrc=s), k) for s, k in keys.items()])
    assert _rtcp_numbers(report) == _rtcp_numbers(plain)
    assert report.inventory.rtcp.encrypted == 0
    for sid, m in plain.metrics.items():
        assert report.metrics[sid].emodel.ta_ms == m.emodel.ta_ms
    counts = {r.ssrc: r for r in report.inventory.rtcp.srtcp}
    assert sorted(counts) == sorted(call.ssrcs)
    assert sum(r.packets for r in counts.values()) == call.rtcp_packets
    for r in counts.values():
        assert (r.decrypted, r.auth_failures, r.suite, r.finding) == (r.packets, 0, suite, None)
        assert len(r.stream_ids) == 1


def test_wrong_key_is_counted_and_reported_not_a_traceback(call, plain, tmp_path, capsys):
    a, b = call.ssrcs
    good, bad = _key(SUITE, 1), _key(SUITE, 7)
    path = tmp_path / "srtp.pcap"
    call.write(path, {a: good, b: _key(SUITE, 2)})
    code, out, err = run_cli(capsys, "analyze", path, "--format", "json",
                             "--srtp-key", f"{a:#010x}={SUITE}:{_b64(good)}",
                             "--srtp-key", f"{b:#010x}={SUITE}:{_b64(bad)}")
    assert code == 0 and "Traceback" not in err
    doc = json.loads(out)
    jsonschema = pytest.importorskip("jsonschema")
    from callscope.report.jsonout import load_schema

    jsonschema.validate(doc, load_schema())  # the srtcp entries are part of the written contract
    srtcp = {r["ssrc"]: r for r in doc["rtcp"]["srtcp"]}
    n_b = srtcp[b]["packets"]
    assert (srtcp[b]["decrypted"], srtcp[b]["auth_failures"]) == (0, n_b)
    assert srtcp[a]["auth_failures"] == 0 and srtcp[a]["decrypted"] == srtcp[a]["packets"]
    finding = f"SRTCP authentication failed on 100 % of packets ({n_b} of {n_b}) with the {SUITE} key from option: wrong key?"
    assert srtcp[b]["finding"] == finding
    stream_b = next(s for s in doc["streams"] if s["ssrc"] == b)
    assert finding in stream_b["notes"]
    # the side with the right key still gives its reports; the other side's stay encrypted
    assert doc["rtcp"]["encrypted"] == n_b
    assert {blk["reporter_ssrc"] for blk in doc["rtcp"]["report_blocks"]} == {a}

    code, out, err = run_cli(capsys, "analyze", path, "--srtp-key", f"{b:#010x}={SUITE}:{_b64(bad)}")
    assert code == 0 and f"SRTCP:\n  0x{b:08x} ({stream_b['id']}): {finding}" in out


def test_keys_from_sdes_and_from_a_keys_file_by_rtp_five_tuple(call, plain, tmp_path, capsys):
    """SRTCP runs on the RTP port + 1 (RFC 3550 §11): a key given for the RTP 5-tuple, or offered in
    SDP for the RTP port, is the key of the SRTCP of the same SSRC."""
    a, b = call.ssrcs
    keys = {a: _key("AES_256_CM_HMAC_SHA1_32", 3), b: _key("AES_256_CM_HMAC_SHA1_32", 4)}
    path = tmp_path / "srtp.pcap"
    call.write(path, keys)
    streams = {s.ssrc: s for s in plain.inventory.streams}
    lines = [f"{s.src}:{s.src_port}>{s.dst}:{s.dst_port}=AES_256_CM_HMAC_SHA1_32:{_b64(keys[ssrc])}"
             for ssrc, s in streams.items()]
    (tmp_path / "keys.txt").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(capsys, "analyze", path, "--format", "json", "--srtp-keys", tmp_path / "keys.txt")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rtcp"]["encrypted"] == 0
    assert [r["decrypted"] for r in doc["rtcp"]["srtcp"]] == [r["packets"] for r in doc["rtcp"]["srtcp"]]
    assert len(doc["rtcp"]["report_blocks"]) == len(plain.inventory.rtcp.report_blocks)

    # the same keys as SDES a=crypto lines of the SIP in the capture: no option needed
    sdp = [f"m=audio {s.src_port} RTP/SAVP 0\r\nc=IN IP4 {s.src}\r\n"
           f"a=crypto:1 AES_256_CM_HMAC_SHA1_32 inline:{_b64(keys[ssrc])}\r\n" for ssrc, s in streams.items()]
    body = f"v=0\r\no=- 1 1 IN IP4 {streams[a].src}\r\ns=-\r\nt=0 0\r\n{''.join(sdp)}"
    sip = (f"UPDATE sip:b@{streams[a].dst} SIP/2.0\r\nCall-ID: keys-1\r\nCSeq: 2 UPDATE\r\n"
           f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    t0 = call.items[0][0] - 1_000_000
    call.items.insert(0, (t0, ipv4_to_int(streams[a].src), ipv4_to_int(streams[a].dst), 5060, 5060,
                          int(Kind.SIP), sip))
    try:
        call.write(path, keys)
    finally:
        call.items.pop(0)
    report = analyze(path)
    assert report.inventory.rtcp.encrypted == 0
    assert {r.key_source for r in report.inventory.rtcp.srtcp} == {"sdes"}
    def numbers(blocks):  # frame numbers and times moved by the SIP datagram added before the call
        return [(b.reporter_ssrc, b.source_ssrc, b.fraction_lost, b.cumulative_lost, b.jitter, b.lsr, b.dlsr,
                 None if b.rtt_s is None else round(b.rtt_s, 9)) for b in blocks]

    assert numbers(report.inventory.rtcp.report_blocks) == numbers(plain.inventory.rtcp.report_blocks)


def test_plain_rtcp_is_untouched_by_keys(plain, call, tmp_path):
    path = tmp_path / "plain.pcap"
    call.write(path)
    report = analyze(path, srtp_keys=[(KeySelector(ssrc=call.ssrcs[0]), _key(SUITE, 1))])
    assert report.inventory.rtcp == plain.inventory.rtcp


def test_html_report_tables_srtcp_and_says_the_wrong_key(call, tmp_path, capsys):
    a, b = call.ssrcs
    path = tmp_path / "srtp.pcap"
    call.write(path, {a: _key(SUITE, 1), b: _key(SUITE, 2)})
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", path, "-o", out, "--no-plots",
                           "--srtp-key", f"{a:#010x}={SUITE}:{_b64(_key(SUITE, 1))}",
                           "--srtp-key", f"{b:#010x}={SUITE}:{_b64(_key(SUITE, 9))}")
    assert code == 0, err
    html = out.read_text()
    report = analyze(path, srtp_keys=[(KeySelector(ssrc=a), _key(SUITE, 1)), (KeySelector(ssrc=b), _key(SUITE, 9))])
    good, bad = (next(r for r in report.inventory.rtcp.srtcp if r.ssrc == x) for x in (a, b))
    assert f"<td>{good.stream_ids[0]} SRTCP</td>" in html and f"<td>{bad.stream_ids[0]} SRTCP</td>" in html
    assert f"<div>{bad.stream_ids[0]} SRTCP: {bad.finding}</div>" in html and good.finding is None
    assert _b64(_key(SUITE, 9)) not in html


def test_corrupted_srtcp_is_counted_and_the_rest_still_reports(call, plain, tmp_path):
    keys = {ssrc: _key(SUITE, n) for n, ssrc in enumerate(call.ssrcs)}
    rtcp_at = [i for i, x in enumerate(call.items) if x[5] == Kind.RTCP]
    hit = set(rtcp_at[1:3])

    def flip(i, kind, p):  # one bit of the encrypted part: the tag no longer matches
        return p[:10] + bytes([p[10] ^ 0x01]) + p[11:] if i in hit else p

    path = tmp_path / "damaged.pcap"
    call.write(path, keys, damage=flip)
    report = analyze(path, srtp_keys=[(KeySelector(ssrc=s), k) for s, k in keys.items()])
    r = report.inventory.rtcp
    assert sum(x.auth_failures for x in r.srtcp) == 2 and r.encrypted == 2
    assert sum(x.decrypted for x in r.srtcp) == call.rtcp_packets - 2
    damaged = [x for x in r.srtcp if x.auth_failures]
    assert all("corrupted packets, or an index or key change" in x.finding for x in damaged)
    frames = {i + 1 for i in hit}  # pcap frame numbers count from 1
    kept = [b for b in plain.inventory.rtcp.report_blocks if b.frame not in frames]
    assert [replace(b, rtt_s=None) for b in kept] == [replace(b, rtt_s=None) for b in r.report_blocks]
    # a report echoing a lost SR has no round trip; every other one keeps the plain call's
    lost_srs = {(s.ssrc, s.ntp_middle) for s in plain.inventory.rtcp.sender_reports if s.frame in frames}
    for p, q in zip(kept, r.report_blocks, strict=True):
        assert q.rtt_s == (None if (p.source_ssrc, p.lsr) in lost_srs else p.rtt_s)
    assert any((p.source_ssrc, p.lsr) in lost_srs for p in kept)


def test_rtcp_mux_srtcp_on_the_rtp_port_decrypts_too(call, tmp_path):
    """RFC 5761: RTCP on the RTP port; SRTCP there must neither be taken for SRTP nor stay encrypted."""
    mux = call.muxed()
    mux.write(tmp_path / "plain.pcap")
    plain = analyze(tmp_path / "plain.pcap")
    assert len(plain.inventory.rtcp.report_blocks) > 0
    keys = {ssrc: _key("AEAD_AES_128_GCM", n) for n, ssrc in enumerate(call.ssrcs)}
    mux.write(tmp_path / "srtp.pcap", keys)
    report = analyze(tmp_path / "srtp.pcap", srtp_keys=[(KeySelector(ssrc=s), k) for s, k in keys.items()])
    assert _rtcp_numbers(report) == _rtcp_numbers(plain)
    assert [len(s.packets) for s in report.inventory.streams] == [len(s.packets) for s in plain.inventory.streams]
