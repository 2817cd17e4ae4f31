"""Where a capture was taken, from the IP TTL: the decoder keeps it, the diagnosis reads it."""

from __future__ import annotations

import struct

import numpy as np

import callscope
from callscope.capture.reader import read_capture
from callscope.capture.writer import write_pcap
from hostile_captures import NS, A, B, raw_pcap, rtp_packets, sdp, sip_invite, udp

T0 = 1_700_000_000 * NS


def _write(path, rows, ttls):
    """``(time_ns, src, dst, sport, dport, payload)`` rows with a TTL each."""
    payloads = [r[5] for r in rows]
    lens = np.array([len(p) for p in payloads], np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    col = list(zip(*[r[:5] for r in rows], strict=True))
    write_pcap(path, np.array(col[0], np.int64), np.array(col[1], np.uint32), np.array(col[2], np.uint32),
               np.array(col[3], np.uint16), np.array(col[4], np.uint16),
               np.frombuffer(b"".join(payloads), np.uint8), starts, lens, ttl=np.array(ttls, np.uint8))
    return path


def test_the_reader_keeps_each_datagrams_ttl_or_hop_limit(tmp_path):
    rows = [(T0 + i * NS, A, B, 4000, 5000, b"x" * 20) for i in range(4)]
    cap = read_capture(_write(tmp_path / "v4.pcap", rows, [64, 63, 128, 1]))
    assert cap.datagrams.ttl.tolist() == [64, 63, 128, 1]
    # IPv6 (the general decoder): the hop limit, byte 7 of the header (RFC 8200 §3)
    payload = udp(4000, 5000, b"y" * 12)
    ip6 = struct.pack("!IHBB", 6 << 28, len(payload), 17, 57) + bytes(15) + b"\x01" + bytes(15) + b"\x02"
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd" + ip6 + payload
    cap = read_capture(raw_pcap(tmp_path / "v6.pcap", [(1_700_000_000, 0, len(frame), len(frame), frame)]))
    assert cap.datagrams.ttl.tolist() == [57]


def _silent_callee(tmp_path, callee_ttl: int):
    """A calls B; B answers sendrecv but never sends media. Captured at B when
    B's packets carry the initial TTL 64 (A's arrive at 63)."""
    answer = sip_invite("ttl-call", sdp("5000")).replace(b"INVITE sip:bob@10.0.0.2 SIP/2.0", b"SIP/2.0 200 OK")
    offer = sip_invite("ttl-call", sdp("4000").replace("10.0.0.2", "10.0.0.1"))
    rows = [(T0, A, B, 5060, 5060, offer), (T0 + NS // 10, B, A, 5060, 5060, answer)]
    ttls = [63, callee_ttl]
    for i, p in enumerate(rtp_packets(1000)):
        rows.append((T0 + NS // 2 + i * 20_000_000, A, B, 4000, 5000, p))
        ttls.append(63)
    return callscope.analyze(_write(tmp_path / f"callee{callee_ttl}.pcap", rows, ttls))


def test_a_silent_party_on_the_captures_own_link_is_not_blocked_one_way(tmp_path):
    report = _silent_callee(tmp_path, 64)
    d = report.diagnosis
    assert d.verdict == "clean", [(f.pattern, f.summary) for f in d.findings]
    assert any("own link" in n and "TTL 64" in n and "TTL 63" in n for n in d.notes), d.notes
    # The same call seen mid-path (both parties' packets lowered by a router):
    # the silent party's direction may have been blocked before the capture.
    d = _silent_callee(tmp_path, 62).diagnosis
    assert d.verdict == "one-way", [(f.pattern, f.summary) for f in d.findings]
    assert not any("own link" in n for n in d.notes)


def test_two_parties_at_an_initial_ttl_place_no_one(tmp_path):
    # A relay and the capture host both send at 64 (the lab's relay legs): no conclusion.
    d = _silent_callee(tmp_path, 64)
    assert d.inventory.sender_ttl["10.0.0.2"] == (64, 64) and d.inventory.sender_ttl["10.0.0.1"] == (63, 63)
    from dataclasses import replace

    from callscope.diagnose.vantage import infer_vantage

    both = replace(d.inventory, sender_ttl={"10.0.0.1": (64, 64), "10.0.0.2": (64, 64)})
    assert infer_vantage(both).local == frozenset()
    mixed = replace(d.inventory, sender_ttl={"10.0.0.1": (63, 64), "10.0.0.2": (64, 64)})
    assert infer_vantage(mixed).local == frozenset()  # a party both near and far decides nothing
