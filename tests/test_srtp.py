"""SRTP: keys from SDES, options and files; wrong keys, truncated tags, rollover and SSRC changes
are counted and reported, never played as noise; libsrtp checked against an independent RFC 3711
implementation for the suites pylibsrtp does not name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

pylibsrtp = pytest.importorskip("pylibsrtp")
pytest.importorskip("av")

from audio_rtp import (  # noqa: E402
    CODECS,
    PORT_A,
    PORT_B,
    A,
    B,
    encode,
    rtp,
    rtp_stream,
    run_cli,
    sip_invite,
    vowels,
    write_udp,
)
from callscope.analysis import analyze  # noqa: E402
from callscope.capture.reader import read_capture  # noqa: E402
from callscope.cli import cli  # noqa: E402
from callscope.errors import CallscopeError  # noqa: E402
from callscope.media.sip import parse_sdp  # noqa: E402
from callscope.media.srtp import (  # noqa: E402
    SUITES,
    SrtpKey,
    decrypt_packets,
    make_key,
    parse_crypto_attribute,
    parse_key_spec,
    protect_packets,
)
from callscope.report.audio import DecryptionFailed, render_stream  # noqa: E402

PCMU = CODECS["PCMU"]
SUITE = "AES_CM_128_HMAC_SHA1_80"


def _key(suite: str = SUITE, seed: int = 1) -> SrtpKey:
    return SrtpKey(suite, bytes((seed * 31 + 5 * i) & 0xFF for i in range(SUITES[suite][1])))


def _b64(k: SrtpKey) -> str:
    return base64.b64encode(k.key).decode()


def _pcmu_payloads(n: int) -> list[bytes]:
    return encode(PCMU, vowels(8000, n * 0.02 + 0.001))[:n]


def _write(path, pkts: list[bytes], times, sip: bytes | None = None) -> None:
    items = [(t, A, PORT_A, B, PORT_B, p) for t, p in zip(times, pkts, strict=True)]
    if sip is not None:
        items.append((0.5, A, 5060, B, 5060, sip))
    write_udp(path, items)


# ------------------------------------------------------------------ keys


def test_crypto_attribute_and_sdp_keep_the_key_but_never_print_it():
    k = _key()
    line = f"1 {SUITE} inline:{_b64(k)}|2^20|1:4"
    assert parse_crypto_attribute(line) == (1, SUITE, _b64(k), (1, 4))
    assert parse_crypto_attribute(f"2 {SUITE} inline:{_b64(k)}")[3] == (0, 0)
    _, media = parse_sdp(f"v=0\r\nc=IN IP4 {A}\r\nm=audio {PORT_A} RTP/SAVP 0\r\na=crypto:{line}\r\n")
    (attr,) = media[0].crypto
    assert attr.value == line
    assert _b64(k) not in str(media[0]) and str(attr) == f"1 {SUITE} inline:(key withheld)"


def test_bad_keys_are_one_line_errors():
    with pytest.raises(CallscopeError, match="needs 30"):
        make_key(SUITE, base64.b64encode(bytes(16)).decode())
    with pytest.raises(CallscopeError, match="unknown SRTP crypto suite"):
        parse_key_spec("s1=AES_CM_64:AAAA")
    with pytest.raises(CallscopeError, match="STREAM=SUITE:BASE64KEY"):
        parse_key_spec("s1")
    with pytest.raises(CallscopeError, match="not valid base64"):
        parse_key_spec(f"s1={SUITE}:!!!")
    with pytest.raises(CallscopeError, match="5-tuple"):
        parse_key_spec(f"10.0.0.1:99999>x={SUITE}:{_b64(_key())}")


def test_bad_key_file_line_names_the_line(tmp_path, capsys):
    f = tmp_path / "keys.txt"
    f.write_text(f"s1={SUITE}:{_b64(_key())}\n\ns2=NOPE:AAAA\n")
    code, out, err = run_cli(capsys, "audio", "missing.pcap", "-o", tmp_path / "x.wav", "--srtp-keys", f)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "keys.txt: line 3: unknown SRTP crypto suite 'NOPE'" in err


# ------------------------------------------------------ independent check


def _aes_cm(key: bytes, iv16: bytes, n: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(key), modes.CTR(iv16)).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def _reference_protect(pkt: bytes, master: bytes, salt: bytes, roc: int, tag_len: int) -> bytes:
    """RFC 3711 §4.1.1 (AES-CM), §4.2.1 (HMAC-SHA1), §4.3.1 (key derivation, kdr 0), by the letter."""
    def derive(label: int, n: int) -> bytes:
        x = int.from_bytes(salt, "big") ^ (label << 48)  # key_id = label || r (r = 0), XOR master salt
        return _aes_cm(master, (x << 16).to_bytes(16, "big"), n)

    k_e, k_a, k_s = derive(0, len(master)), derive(1, 20), derive(2, 14)
    seq, ssrc = struct.unpack("!H", pkt[2:4])[0], struct.unpack("!I", pkt[8:12])[0]
    index = (roc << 16) | seq
    iv = (int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
    body = pkt[12:]
    ks = _aes_cm(k_e, iv.to_bytes(16, "big"), len(body))
    enc = pkt[:12] + bytes(a ^ b for a, b in zip(body, ks, strict=True))
    tag = hmac.new(k_a, enc + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:tag_len]
    return enc + tag


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
                                   "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32"])
def test_libsrtp_agrees_with_an_independent_rfc3711_implementation(suite):
    pytest.importorskip("cryptography")
    k = _key(suite)
    master_len = 32 if "256" in suite else 16
    master, salt = k.key[:master_len], k.key[master_len:]
    pkts = [rtp(65534 + i, 160 * i, 0xCAFEBABE, 0, bytes([i]) * 160) for i in range(4)]  # crosses the rollover
    ref = [_reference_protect(p, master, salt, (65534 + i) >> 16, SUITES[suite][4]) for i, p in enumerate(pkts)]
    assert protect_packets(pkts, k) == ref
    assert decrypt_packets(ref, k).plain == pkts


# ------------------------------------------------------------------ MKI


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_32", "AEAD_AES_256_GCM"])
def test_mki_keys_decrypt_and_other_mkis_are_counted_not_decrypted(suite):
    """RFC 3711 §3.1: the MKI sits before the tag (AES-CM) or after the AEAD ciphertext (RFC 7714
    §8.1), outside what is authenticated; a packet naming another MKI is never decrypted."""
    k = make_key(suite, _b64(_key(suite)), "sdes", (258, 2))
    assert k.mki == b"\x01\x02"
    pkts = [rtp(100 + i, 160 * i, 0xCAFEBABE, 0, bytes([i]) * 160) for i in range(6)]
    enc = protect_packets(pkts, k)
    tag = 0 if "GCM" in suite else SUITES[suite][4]
    assert all(p[len(p) - tag - 2 : len(p) - tag] == b"\x01\x02" for p in enc)
    assert decrypt_packets(enc, k).plain == pkts
    other = enc[:3] + [p[: len(p) - tag - 2] + b"\x00\x07" + p[len(p) - tag :] for p in enc[3:]]
    d = decrypt_packets(other, k)
    assert (d.decrypted, d.auth_failures, d.other_failures) == (3, 0, 3)
    # SRTCP: E flag and index, then the MKI, then the 80-bit tag (RFC 3711 §3.4)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0xCAFEBABE)
    (srtcp,) = protect_packets([rr], k, rtcp=True)
    assert decrypt_packets([srtcp], k, rtcp=True).plain == [rr]
    assert decrypt_packets(protect_packets([rr], replace(k, mki_len=0), rtcp=True), k, rtcp=True).other_failures == 1


def test_mki_from_sdes_and_option_decrypts_the_audio(tmp_path, capsys):
    path = tmp_path / "mki.pcap"
    pkts, times, _ = rtp_stream(_pcmu_payloads(50), PCMU)
    k = make_key(SUITE, _b64(_key()), "sdes", (1, 4))
    offer = sip_invite(f"{SUITE} inline:{_b64(k)}|2^20|1:4", PCMU, secure=True)
    _write(path, protect_packets(pkts, k), times, sip=offer)
    code, out, err = run_cli(capsys, "audio", path, "--stream", "s1", "-o", tmp_path / "a.wav", "--json")
    assert code == 0, err
    srtp = json.loads(out)["outputs"][0]["streams"][0]["srtp"]
    assert (srtp["decrypted"], srtp["auth_failures"], srtp["key_source"]) == (50, 0, "sdes")
    code, out, err = run_cli(capsys, "audio", path, "--stream", "s1", "-o", tmp_path / "b.wav", "--json",
                             "--srtp-key", f"s1={SUITE}:{_b64(k)}|2^31|1:4")
    assert code == 0, err
    assert json.loads(out)["outputs"][0]["streams"][0]["srtp"]["key_source"] == "option"
    code, out, err = run_cli(capsys, "audio", path, "-o", tmp_path / "c.wav", "--srtp-key", f"s1={SUITE}:{_b64(k)}|1:300")
    assert code == 2 and err.strip().endswith("MKI 1:300 does not fit; write VALUE:LENGTH with 1-128 octets, e.g. |1:4")


# ------------------------------------------------------------ failures


def test_wrong_key_is_a_finding_not_noise(tmp_path, capsys):
    path = tmp_path / "wrong.pcap"
    payloads = _pcmu_payloads(100)
    pkts, times, _ = rtp_stream(payloads, PCMU)
    _write(path, protect_packets(pkts, _key()), times)
    report = analyze(path)
    stream = report.inventory.streams[0]
    with pytest.raises(DecryptionFailed) as info:
        render_stream(read_capture(path), stream, keys=[_key(seed=2)])
    d = info.value.decryption
    assert (d.packets, d.decrypted, d.auth_failures) == (100, 0, 100)
    assert "authentication failed on 100 % of packets (100 of 100)" in str(info.value)
    assert "wrong key?" in str(info.value)

    code, out, err = run_cli(capsys, "audio", path, "-o", tmp_path / "w.wav", "--json",
                             "--srtp-key", f"s1={SUITE}:{_b64(_key(seed=2))}")
    assert code == 2
    assert not (tmp_path / "w.wav").exists()
    assert "s1: SRTP authentication failed on 100 % of packets" in err and "Traceback" not in err
    doc = json.loads(out)
    srtp = doc["outputs"][0]["streams"][0]["srtp"]
    assert (srtp["auth_failures"], srtp["decrypted"], srtp["auth_failure_pct"]) == (100, 0, 100.0)
    assert "wrong key?" in srtp["finding"]


def test_truncated_auth_tags_are_counted_and_concealed(tmp_path):
    path = tmp_path / "trunc.pcap"
    payloads = _pcmu_payloads(100)
    pkts, times, _ = rtp_stream(payloads, PCMU)
    enc = protect_packets(pkts, _key())
    cut = (10, 11, 50, 70, 99)
    enc = [p[:-3] if i in cut else p for i, p in enumerate(enc)]
    _write(path, enc, times)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream, keys=[_key()])
    assert (r.decryption.decrypted, r.decryption.auth_failures) == (95, 5)
    assert "corrupted packets" in r.decryption.finding()
    expected = np.zeros(99 * 160, bool)  # the last packet failed: the audio ends before it
    for i in cut[:-1]:
        expected[i * 160 : (i + 1) * 160] = True
    assert np.array_equal(r.concealed, expected)


def test_rollover_across_65535_keeps_decrypting(tmp_path):
    path = tmp_path / "roc.pcap"
    payloads = _pcmu_payloads(200)
    pkts, times, _ = rtp_stream(payloads, PCMU, seq0=65436, drop=(99, 100, 101))  # loss right at the wrap
    _write(path, protect_packets(pkts, _key("AEAD_AES_128_GCM")), times)
    stream = analyze(path).inventory.streams[0]
    r = render_stream(read_capture(path), stream, keys=[_key("AEAD_AES_128_GCM")])
    assert (r.decryption.decrypted, r.decryption.auth_failures) == (197, 0)
    assert r.samples.size == 200 * 160
    assert np.count_nonzero(r.concealed) == 3 * 160


def test_ssrc_change_mid_stream_decrypts_both_with_a_five_tuple_key(tmp_path):
    path = tmp_path / "ssrc.pcap"
    payloads = _pcmu_payloads(200)
    first, t1, _ = rtp_stream(payloads[:100], PCMU, ssrc=0xAAAA0001)
    second, t2, _ = rtp_stream(payloads[100:], PCMU, ssrc=0xBBBB0002, seq0=7, ts0=99)
    k = _key("AES_256_CM_HMAC_SHA1_80")
    _write(path, protect_packets(first + second, k), np.r_[t1, t2 + 2.0])
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{A}:{PORT_A}>{B}:{PORT_B}=AES_256_CM_HMAC_SHA1_80:{_b64(k)}\n")
    res = CliRunner().invoke(cli, ["audio", str(path), "-o", str(tmp_path / "out"), "--json",
                                   "--srtp-keys", str(keys)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    got = {o["streams"][0]["stream_id"]: o["streams"][0] for o in doc["outputs"]}
    assert len(got) == 2
    for entry in got.values():
        assert (entry["srtp"]["decrypted"], entry["srtp"]["auth_failures"]) == (100, 0)
        assert entry["duration_s"] == pytest.approx(2.0)


def test_sdes_keys_of_both_sides_pick_the_one_that_authenticates(tmp_path):
    path = tmp_path / "both.pcap"
    payloads = _pcmu_payloads(50)
    pkts, times, _ = rtp_stream(payloads, PCMU)
    mine, theirs = _key(seed=3), _key(seed=4)
    offer = sip_invite(f"{SUITE} inline:{_b64(theirs)}", PCMU, port=PORT_B, secure=True)
    answer = sip_invite(f"{SUITE} inline:{_b64(mine)}", PCMU, port=PORT_A, secure=True)
    items = [(t, A, PORT_A, B, PORT_B, p) for t, p in zip(times, protect_packets(pkts, mine), strict=True)]
    items += [(0.2, B, 5060, A, 5060, offer), (0.4, A, 5060, B, 5060, answer.replace(b"INVITE sip", b"UPDATE sip"))]
    write_udp(path, items)
    report = analyze(path)
    stream = next(s for s in report.inventory.streams if s.kind == "rtp")
    assert stream.encrypted
    from callscope.report.audio import hear

    h = hear(report, read_capture(path), stream)
    assert h.error is None and h.decryption.decrypted == 50 and h.decryption.key_source == "sdes"


def test_srtp_without_a_key_is_one_line(tmp_path, capsys):
    path = tmp_path / "nokey.pcap"
    pkts, times, _ = rtp_stream(_pcmu_payloads(50), PCMU)
    _write(path, protect_packets(pkts, _key()), times,
           sip=sip_invite(None, PCMU, secure=True))
    code, out, err = run_cli(capsys, "audio", path, "--stream", "s1", "-o", tmp_path / "x.wav")
    assert code == 2
    assert "is encrypted" in err and "--srtp-key s1=SUITE:BASE64KEY" in err
    assert "Traceback" not in err


def test_wrong_key_is_a_finding_in_the_html_report(tmp_path, capsys):
    path = tmp_path / "wrong.pcap"
    pkts, times, _ = rtp_stream(_pcmu_payloads(60), PCMU)
    _write(path, protect_packets(pkts, _key()), times)
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", path, "-o", out, "--srtp-key", f"s1={SUITE}:{_b64(_key(seed=9))}")
    assert code == 0, err
    html = out.read_text()
    assert ('<div class="verdict bad"><div>s1: SRTP authentication failed on 100 % of packets (60 of 60) '
            f"with the {SUITE} key from option: wrong key?</div>") in html
    assert "<audio" not in html and _b64(_key(seed=9)) not in html
