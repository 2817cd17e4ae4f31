"""Test helpers: known signals through real encoders, packetised as RTP, optionally SRTP, written as pcap.

Shared by the audio and SRTP tests. The encoders are FFmpeg's (PyAV); the
decoding under test is callscope's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from callscope.capture.writer import ipv4_to_int, write_pcap

T0_NS = 1_700_000_000 * 10**9
A, B = "10.0.0.1", "10.0.0.2"
PORT_A, PORT_B = 40000, 50000


def chirp(rate: int, seconds: float, f0: float = 200.0, f1: float = 3400.0, amp: float = 0.3) -> np.ndarray:
    """A linear chirp with a slow amplitude wobble, int16."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    env = 0.75 + 0.25 * np.sin(2 * np.pi * 1.3 * t)
    return np.round(amp * 32767 * env * np.sin(phase)).astype(np.int16)


def vowels(rate: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    """A voiced, speech-like signal: a 120-180 Hz glottal pulse train through three formant resonators."""
    from scipy.signal import lfilter

    n = int(rate * seconds)
    t = np.arange(n) / rate
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / rate)
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    x = pulses
    for fc, bw in ((700, 110), (1220, 120), (2600, 160)):
        r = np.exp(-np.pi * bw / rate)
        a = [1, -2 * r * np.cos(2 * np.pi * fc / rate), r * r]
        x = lfilter([1 - r], a, x)
    x = x / np.abs(x).max()
    env = np.clip(np.sin(2 * np.pi * 0.8 * t) * 1.5, 0.1, 1.0)
    return np.round(amp * 32767 * x * env).astype(np.int16)


@dataclass(frozen=True)
class Codec:
    """How a test sends one codec: encoder, rates, payload type, SDP name."""

    name: str  # as callscope reports it
    encoder: str
    rate: int  # audio sample rate
    clock: int  # RTP clock
    frame: int  # samples per packet at ``rate``
    pt: int
    rtpmap: str | None  # SDP encoding name/clock, None: static PT
    bit_rate: int = 0
    #: Waveform SNR floor: the lowest measured over the chirp and the vowels
    #: (PCMU 36.7, PCMA 37.1, opus 15.5, G722 30.4, G723 4.3, AMR 8.9,
    #: G726-16 7.9, -24 10.6, -32 11.5, -40 14.8, AAL2-G726-32 11.5 dB) less 1-3 dB.
    #: ADPCM follows the vowels' sharp glottal pulses poorly (the chirp: 21.9 / 30.1 / 33.5 / 33.7 dB). Parametric coders (G.723.1, AMR) keep the spectrum, not the
    #: waveform, hence their low floors; a broken decoder scores below 0 dB.
    snr_floor_db: float = 0.0


CODECS = {
    "PCMU": Codec("PCMU", "pcm_mulaw", 8000, 8000, 160, 0, None, snr_floor_db=34),
    "PCMA": Codec("PCMA", "pcm_alaw", 8000, 8000, 160, 8, None, snr_floor_db=34),
    "opus": Codec("opus", "libopus", 48000, 48000, 960, 111, "opus/48000/2", 32000, snr_floor_db=13),
    "G722": Codec("G722", "g722", 16000, 8000, 320, 9, None, snr_floor_db=27),
    "G723": Codec("G723", "g723_1", 8000, 8000, 240, 4, None, 6300, snr_floor_db=3),
    "AMR": Codec("AMR", "libopencore_amrnb", 8000, 8000, 160, 97, "AMR/8000", 12200, snr_floor_db=7),
    # G.726 ADPCM: RFC 3551 packing (FFmpeg g726le) on the deprecated static PT 2 and on a dynamic PT,
    # AAL2 packing (g726) under its own name
    "G726-32": Codec("G726-32", "g726le", 8000, 8000, 160, 2, None, 32000, snr_floor_db=9),
    "G726-16": Codec("G726-16", "g726le", 8000, 8000, 160, 100, "G726-16/8000", 16000, snr_floor_db=6),
    "G726-24": Codec("G726-24", "g726le", 8000, 8000, 160, 98, "G726-24/8000", 24000, snr_floor_db=8),
    "G726-40": Codec("G726-40", "g726le", 8000, 8000, 160, 101, "G726-40/8000", 40000, snr_floor_db=12),
    "AAL2-G726-32": Codec("AAL2-G726-32", "g726", 8000, 8000, 160, 99, "AAL2-G726-32/8000", 32000,
                          snr_floor_db=9),
}


def encoder_available(name: str) -> bool:
    try:
        import av

        av.Codec(name, "w")
    except Exception:
        return False
    return True


def encode(codec: Codec, pcm: np.ndarray) -> list[bytes]:
    """One payload per ``codec.frame`` samples (AMR: RFC 4867 §4.4 octet-aligned)."""
    import av

    ctx = av.CodecContext.create(codec.encoder, "w")
    ctx.sample_rate = codec.rate
    ctx.layout = "mono"
    ctx.format = "s16"
    if codec.bit_rate:
        ctx.bit_rate = codec.bit_rate
    ctx.open()
    step = ctx.frame_size or codec.frame
    n_packets = pcm.size // codec.frame
    if step > codec.frame:  # sample-by-sample ADPCM (G.726): one bit stream, cut into packets below
        pcm = np.r_[pcm, np.zeros(-pcm.size % step, pcm.dtype)]
    out: list[bytes] = []
    for i in range(0, pcm.size - step + 1, step):
        f = av.AudioFrame.from_ndarray(pcm[None, i : i + step], format="s16", layout="mono")
        f.sample_rate = codec.rate
        f.pts = i
        out += [bytes(p) for p in ctx.encode(f)]
    out += [bytes(p) for p in ctx.encode(None)]
    if codec.name == "AMR":
        # storage format (ToC octet, RFC 4867 §5.3) -> octet-aligned payload: CMR 15 (none), ToC F=0
        out = [bytes([0xF0, p[0] & 0x7C]) + p[1:] for p in out]
    if step > codec.frame:
        stream, size = b"".join(out), codec.frame * codec.bit_rate // codec.rate // 8
        return [stream[i * size : (i + 1) * size] for i in range(n_packets)]
    per_packet = codec.frame // step
    if per_packet > 1:
        out = [b"".join(out[i : i + per_packet]) for i in range(0, len(out) - per_packet + 1, per_packet)]
    return out


def rtp(seq: int, ts: int, ssrc: int, pt: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def sip_invite(crypto: str | None, codec: Codec, port: int = PORT_A, secure: bool = False) -> bytes:
    """An INVITE from A with an SDP offer (RFC 4566) naming A's media port and, if given, an a=crypto line."""
    proto = "RTP/SAVP" if secure else "RTP/AVP"
    sdp = ["v=0", f"o=- 1 1 IN IP4 {A}", "s=roundtrip", f"c=IN IP4 {A}", "t=0 0",
           f"m=audio {port} {proto} {codec.pt}"]
    if codec.rtpmap:
        sdp.append(f"a=rtpmap:{codec.pt} {codec.rtpmap}")
    if crypto:
        sdp.append(f"a=crypto:1 {crypto}")
    body = "\r\n".join(sdp) + "\r\n"
    head = [f"INVITE sip:b@{B} SIP/2.0", f"Via: SIP/2.0/UDP {A}:5060", f"From: <sip:a@{A}>;tag=1",
            f"To: <sip:b@{B}>", "Call-ID: roundtrip-1", "CSeq: 1 INVITE", "Content-Type: application/sdp",
            f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def write_udp(path, items: list[tuple[float, str, int, str, int, bytes]]) -> None:
    """Write (time s, src, sport, dst, dport, payload) datagrams as a pcap, in time order."""
    items = sorted(items, key=lambda x: x[0])
    data = np.frombuffer(b"".join(x[5] for x in items), np.uint8)
    lens = np.array([len(x[5]) for x in items], np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    write_pcap(
        path,
        np.array([T0_NS + int(round(x[0] * 1e9)) for x in items], np.int64),
        np.array([ipv4_to_int(x[1]) for x in items], np.uint32),
        np.array([ipv4_to_int(x[3]) for x in items], np.uint32),
        np.array([x[2] for x in items], np.uint16),
        np.array([x[4] for x in items], np.uint16),
        data, starts, lens,
    )


def rtp_stream(payloads: list[bytes], codec: Codec, *, ssrc: int = 0x11223344, seq0: int = 1000,
               ts0: int = 5000, drop: tuple[int, ...] = ()) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """RTP packets of the payloads (index ``i`` in ``drop`` not sent), their arrival times and indices."""
    step_ts = codec.frame * codec.clock // codec.rate
    dt = codec.frame / codec.rate
    keep = [i for i in range(len(payloads)) if i not in set(drop)]
    pkts = [rtp(seq0 + i, ts0 + i * step_ts, ssrc, codec.pt, payloads[i], marker=i == 0) for i in keep]
    times = 1.0 + np.array(keep) * dt + 0.0005
    return pkts, times, np.array(keep)


def snr_db(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> tuple[float, int]:
    """SNR of ``decoded`` against ``reference`` at the best lag (codec delay) and least-squares gain."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    n = min(ref.size, dec.size) - max_lag
    best = (-np.inf, 0)
    for lag in range(0, max_lag + 1):
        r, d = ref[: n], dec[lag : lag + n]
        g = float(r @ d) / float(d @ d) if d @ d > 0 else 0.0
        err = r - g * d
        snr = 10 * np.log10(float(r @ r) / max(float(err @ err), 1e-9))
        if snr > best[0]:
            best = (snr, lag)
    return best


from conftest import run_cli  # noqa: E402,F401
