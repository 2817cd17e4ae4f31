"""What the listener heard: a stream's payloads decoded to a WAV file, losses included.

Payload bytes are not part of the metrics, so the capture is read again and the
stream's datagrams are picked out by frame number, checked against the stream's
ports and SSRC. SRTP payloads are decrypted first when a key is known
(:mod:`callscope.media.srtp`); packets that fail authentication are counted
and treated as lost, never decoded. The received packets then go through the
codec's decoder in RTP-timestamp order (G.711 by table, RFC 3551 §4.5.14;
every other codec by FFmpeg, :mod:`callscope.media.codec`) and are laid out
by timestamp at the decoder's sample rate (G.722's 8 kHz RTP clock carries
16 kHz audio, RFC 3551 §4.5.2; Opus runs at 48 kHz, RFC 7587 §4.1). What a
packet that never came, or came too late for the playout buffer, should have
filled is rendered as silence, as a repetition of the last frame played, or
by the codec's own concealment. Frequent evenly spaced short gaps are what
"metallic" or "robotic" sounds like; long gaps are dropouts.

Budgets: a capture controls timestamps, so the audio never spans more than
the stream's real (arrival) duration allows. A timestamp step far from the
arrival step is a re-based clock and is closed up; any gap longer than
``MAX_GAP_S`` is clipped to it; timestamps that run much faster than arrival
time are replaced by arrival time. Each of these is said in
:attr:`Rendering.notes`.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from callscope.capture.datagrams import str_to_address
from callscope.capture.reader import Capture
from callscope.errors import CallscopeError
from callscope.media.codec import CODECS, PT_CN, PayloadDecoder, codec_key, decoder_name
from callscope.media.demux import gather
from callscope.media.rtp import RTP_HEADER_LEN, parse_headers
from callscope.media.stream import MediaStream

if TYPE_CHECKING:
    from callscope.media.srtp import Decryption

G711_RATE = 8000  # RFC 3551 §4.5.14: G.711 samples at 8 kHz, one octet per sample
PT_PCMU = 0  # RFC 3551 §6 Table 4
PT_PCMA = 8  # RFC 3551 §6 Table 4
SEQ_MOD = 1 << 16  # RFC 3550 §5.1: sequence numbers are 16 bits
RTP_PADDING_BIT = 0x20  # RFC 3550 §5.1: P bit of the first octet
RTP_CC_MASK = 0x0F  # RFC 3550 §5.1: CSRC count
CHANNEL_DATA_HEADER_LEN = 4  # RFC 5766 §11.4: TURN ChannelData header
ULAW_BIAS = 0x84  # ITU-T G.711 Table 2: µ-law segment offset (33 << 2) in 16-bit scale
ALAW_EVEN_BIT_INVERSION = 0x55  # ITU-T G.711 §3.2 / Table 1: even bits inverted on the line
ALAW_SEGMENT_BASE = 0x108  # ITU-T G.711 Table 1: 16-bit decision value offset of segments >= 1
G729_FRAME = 10  # RFC 3551 §4.5.6: 10 octets per 10 ms G.729 frame
G729_SID = 2  # RFC 3551 §4.5.6: a G.729 Annex B comfort-noise frame is 2 octets
#: A timestamp step further than this from the arrival-time step is a sender
#: re-basing its clock (RFC 3550 §5.1 allows a random start, restarts repeat
#: it), not real silence: it is closed up to the arrival gap so that one bad
#: timestamp cannot turn a 10 s call into a 3-hour file.
MAX_TIMESTAMP_JUMP_S = 10.0
#: Longest silence rendered: a longer gap (a stream that paused for minutes,
#: or days between merged captures) is clipped to this and said so.
MAX_GAP_S = 10.0
#: Timestamps whose total span exceeds the arrival span (gaps clipped) by this
#: factor plus ``STRETCH_SLACK_S`` do not describe time: packets are laid out
#: by arrival instead (a 120 s stream must not become hours of audio).
STRETCH_FACTOR = 1.5
STRETCH_SLACK_S = 2.0
CONCEAL_MODES = ("silence", "repeat", "codec")
SUPPORTED_CODECS = {"PCMU": PT_PCMU, "PCMA": PT_PCMA}
#: RFC 3389 §3.1: comfort-noise level is -dBov, relative to the overload
#: point (full scale) of the 16-bit output.
FULL_SCALE = 32767.0


def _ulaw_table() -> np.ndarray:
    """ITU-T G.711 Table 2 (µ-law) expanded to 16-bit linear PCM, indexed by octet."""
    u = ~np.arange(256, dtype=np.uint8)
    exponent = (u >> 4) & 0x07
    mantissa = (u & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 Table 1 (A-law) expanded to 16-bit linear PCM, indexed by octet."""
    a = np.arange(256, dtype=np.uint8) ^ ALAW_EVEN_BIT_INVERSION
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + ALAW_SEGMENT_BASE) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


#: Octet -> 16-bit sample, per law.
G711_TABLES: dict[str, np.ndarray] = {"PCMU": _ulaw_table(), "PCMA": _alaw_table()}


def g711_decode(octets: np.ndarray, law: str) -> np.ndarray:
    """Decode G.711 octets to 16-bit linear PCM.

    Parameters
    ----------
    octets : uint8 array
        Encoded samples, one octet each.
    law : {"PCMU", "PCMA"}
        µ-law (ITU-T G.711 Table 2) or A-law (Table 1).

    Returns
    -------
    int16 array
        The samples, scaled so that full scale of the 14-bit (µ-law) / 13-bit
        (A-law) G.711 range fills 16 bits (±32124 / ±32256).

    Examples
    --------
    >>> g711_decode(np.array([0xFF, 0x7F, 0x00], np.uint8), "PCMU").tolist()
    [0, 0, -32124]
    >>> g711_decode(np.array([0xD5, 0x55, 0xAA], np.uint8), "PCMA").tolist()
    [8, -8, 32256]
    """
    return G711_TABLES[law][np.asarray(octets, np.uint8)]


@dataclass(frozen=True)
class Rendering:
    """One stream as a listener behind a playout buffer would have heard it.

    Attributes
    ----------
    samples : int16
        Mono PCM at ``sample_rate``; sample 0 is the first packet's timestamp.
    sample_rate : int
    played : bool
        Per sample: True where the audio came from a packet that arrived in
        time.
    sender_silent : bool
        Per sample: a pause the sender made (silence suppression / DTX: the
        next sequence number carries a later timestamp, or a comfort-noise
        packet, RFC 3389), rendered as silence or comfort noise. Samples
        neither played nor sender-silent were concealed.
    codec : str
        The codec's name (``"PCMU"``, ``"opus"``, ``"G722"``...).
    conceal : str
        How gaps were filled: ``"silence"``, ``"repeat"`` or ``"codec"``.
    packets_played, packets_late, duplicates : int
        Packets decoded; packets that arrived after their playout time and were
        dropped; extra copies ignored.
    start_s : float
        Arrival time (s since the capture's first frame) of the first packet
        played: where sample 0 sits on the capture's time axis.
    end_s : float
        Arrival time of the last packet played (``end_s - start_s`` is the
        real duration the audio is budgeted against).
    codec_source : str
        How the codec was known: ``"sdp"``, ``"static"``, ``"inferred"``.
    decoder : str
        ``"table"`` (G.711) or the FFmpeg decoder used.
    decode_errors : int
        Packets the decoder rejected (rendered as concealed).
    decryption : Decryption or None
        SRTP counts when the stream was decrypted.
    notes : tuple of str
        What was clipped, replaced or could not be done, in words.
    """

    samples: np.ndarray
    sample_rate: int
    played: np.ndarray
    sender_silent: np.ndarray
    codec: str
    conceal: str
    packets_played: int
    packets_late: int
    duplicates: int
    start_s: float = 0.0
    end_s: float = 0.0
    codec_source: str = "static"
    decoder: str = "table"
    decode_errors: int = 0
    decryption: Decryption | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def concealed_s(self) -> float:
        """Seconds of audio that had to be made up (lost, late or undecodable packets)."""
        return float(np.count_nonzero(self.concealed)) / self.sample_rate

    @property
    def concealed(self) -> np.ndarray:
        """Per sample: made up for a lost or late packet."""
        return ~self.played & ~self.sender_silent


def is_decodable(stream: MediaStream, keys: Sequence | None = None) -> bool:
    """True when :func:`render_stream` can decode the stream here (codec, decoder, key)."""
    try:
        key, _ = codec_key(stream)
        if key not in SUPPORTED_CODECS:
            decoder_name(key)
    except CallscopeError:
        return False
    return not stream.encrypted or bool(keys)


def g711_law(stream: MediaStream) -> str:
    """``"PCMU"`` or ``"PCMA"`` for a G.711 stream; CallscopeError otherwise."""
    key, _ = codec_key(stream)
    if key not in SUPPORTED_CODECS:
        raise CallscopeError(f"stream {stream.id} carries {CODECS[key].name}, not G.711")
    return key


def _inner_offsets(capture: Capture, rows: np.ndarray, transport: str) -> np.ndarray:
    """Offset of the RTP packet inside each UDP payload (TURN framing removed)."""
    if transport == "udp":
        return np.zeros(rows.size, np.int64)
    if transport == "turn-channel":
        return np.full(rows.size, CHANNEL_DATA_HEADER_LEN, np.int64)
    from callscope.media.stun import parse_stun

    # Send/Data indications (RFC 5766 §10) put the RTP packet in a DATA
    # attribute whose offset depends on the attributes before it.
    off = np.full(rows.size, -1, np.int64)
    for k, i in enumerate(rows):
        msg = parse_stun(capture.datagrams.payload(int(i)))
        if msg is not None and msg.data_offset is not None:
            off[k] = msg.data_offset
    return off


@dataclass(frozen=True)
class _Packets:
    """The stream's audio packets in arrival order (parallel arrays)."""

    frame: np.ndarray
    time_s: np.ndarray
    seq: np.ndarray
    ts: np.ndarray
    pt: np.ndarray
    start: np.ndarray  # of the RTP packet in the capture's byte buffer
    length: np.ndarray  # of the RTP packet
    header_len: np.ndarray
    padded: np.ndarray  # P bit (RFC 3550 §5.1); for SRTP the padding is encrypted

    def take(self, keep: np.ndarray) -> _Packets:
        return _Packets(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def _select_packets(capture: Capture, stream: MediaStream) -> _Packets:
    """The stream's frames whose 5-tuple (plain UDP; TURN-relayed media is
    addressed to the relay), SSRC and payload type (its own or comfort noise) match."""
    if stream.ssrc is None or stream.payload_type is None:
        raise CallscopeError(f"stream {stream.id} is not RTP (no SSRC or payload type): nothing to decode")
    ssrc, pt = stream.ssrc, stream.payload_type
    dg = capture.datagrams
    rows = np.flatnonzero(np.isin(dg.frame, stream.packets.frame))
    if stream.transport == "udp":
        same_flow = (
            (dg.sport[rows] == stream.src_port)
            & (dg.dport[rows] == stream.dst_port)
            & (dg.src[rows] == str_to_address(stream.src)).all(axis=1)
            & (dg.dst[rows] == str_to_address(stream.dst)).all(axis=1)
        )
        rows = rows[same_flow]
    off = _inner_offsets(capture, rows, stream.transport)
    rows, off = rows[off >= 0], off[off >= 0]
    start = dg.payload_start[rows] + off
    length = np.maximum(dg.payload_caplen[rows].astype(np.int64) - off, 0)
    head = gather(dg.data, start, length, RTP_HEADER_LEN)
    cc = (head[:, 0] & RTP_CC_MASK).astype(np.int64)
    ext_word = gather(dg.data, start + RTP_HEADER_LEN + 4 * cc, length - RTP_HEADER_LEN - 4 * cc, 4)
    last = gather(dg.data, start + np.maximum(length - 1, 0), (length > 0).astype(np.int64), 1)[:, 0]
    hdr = parse_headers(head, length, ext_word, last)
    keep = hdr.valid & (hdr.ssrc == np.uint32(ssrc)) & np.isin(hdr.pt, [pt, PT_CN])
    keep &= length > hdr.header_len
    time_s = (dg.time_ns[rows] - capture.start_ns) / 1e9
    return _Packets(
        frame=dg.frame[rows], time_s=time_s, seq=hdr.seq, ts=hdr.ts, pt=hdr.pt.astype(np.int64),
        start=start, length=length, header_len=hdr.header_len.astype(np.int64),
        padded=(hdr.b0 & RTP_PADDING_BIT) != 0,
    ).take(keep)


def _bodies_in_clear(data: np.ndarray, p: _Packets) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each payload in the capture's buffer (padding removed)."""
    last = gather(data, p.start + np.maximum(p.length - 1, 0), np.ones(p.start.size, np.int64), 1)[:, 0]
    pad = np.where(p.padded, last.astype(np.int64), 0)
    return p.start + p.header_len, np.maximum(p.length - p.header_len - pad, 0)


def _decrypt(data: np.ndarray, p: _Packets, keys: Sequence) -> tuple[Decryption, np.ndarray, np.ndarray, np.ndarray]:
    """SRTP-decrypt in arrival order: Decryption, payload buffer, starts and lengths (0 = failed)."""
    from callscope.media.srtp import decrypt_stream

    packets = [data[a : a + n].tobytes() for a, n in zip(p.start.tolist(), p.length.tolist(), strict=True)]
    d = decrypt_stream(packets, keys)
    chunks, starts, lengths, at = [], np.zeros(p.start.size, np.int64), np.zeros(p.start.size, np.int64), 0
    for i, plain in enumerate(d.plain):
        if plain is None:
            continue
        hl = int(p.header_len[i])
        pad = plain[-1] if p.padded[i] and len(plain) > hl else 0
        body = plain[hl : len(plain) - pad] if len(plain) - pad > hl else b""
        starts[i], lengths[i] = at, len(body)
        chunks.append(body)
        at += len(body)
    return d, np.frombuffer(b"".join(chunks), np.uint8), starts, lengths


def _positions(ts_out: np.ndarray, time_s: np.ndarray, n: np.ndarray, rate: int) -> tuple[np.ndarray, list[str]]:
    """Sample offset of each packet (timestamp order) within the budgets, and what was changed.

    ``ts_out``: RTP timestamps already in output samples; ``n``: decoded
    samples of each packet.
    """
    notes: list[str] = []
    pos = ts_out - ts_out[0]
    if pos.size < 2:
        return pos, notes
    step = np.diff(pos)
    arrival_step = np.rint(np.diff(time_s) * rate).astype(np.int64)
    max_gap = int(MAX_GAP_S * rate)
    jump = np.abs(step - arrival_step) > MAX_TIMESTAMP_JUMP_S * rate
    if jump.any():
        notes.append(f"{int(jump.sum())} timestamp jumps (clock re-based) closed up to the arrival gap")
    step = np.where(jump, np.maximum(arrival_step, n[:-1]), step)
    arrival_span = int(np.clip(arrival_step, 0, max_gap).sum())
    if step.sum() > STRETCH_FACTOR * arrival_span + STRETCH_SLACK_S * rate:
        notes.append(f"RTP timestamps span {step.sum() / rate:.1f} s but packets arrived over "
                     f"{arrival_span / rate:.1f} s: laid out by arrival time instead")
        step = np.maximum(arrival_step, n[:-1])
    long = step > max_gap
    if long.any():
        notes.append(f"{int(long.sum())} gaps longer than {MAX_GAP_S:g} s clipped to {MAX_GAP_S:g} s "
                     f"({(step[long] - max_gap).sum() / rate:.1f} s left out)")
        step = np.minimum(step, max_gap)
    # Arrival times out of order (a merged or damaged capture) make every
    # step above a long one: the whole must still fit the stream's real span.
    real = min(float(np.ptp(time_s)), float(time_s.size) * MAX_GAP_S) * rate
    if step.sum() > STRETCH_FACTOR * real + STRETCH_SLACK_S * rate:
        notes.append(f"timestamps and arrival times both disordered: the {pos.size} packets are "
                     f"played back to back")
        step = n[:-1].astype(np.int64)
    return np.concatenate([[0], np.cumsum(step)]), notes


class DecryptionFailed(CallscopeError):
    """No packet of the stream authenticated with any key given: ``decryption`` says how many were tried."""

    def __init__(self, message: str, decryption: Decryption):
        super().__init__(message)
        self.decryption = decryption


def render_stream(
    capture: Capture,
    stream: MediaStream,
    *,
    conceal: str = "silence",
    late: np.ndarray | None = None,
    keys: Sequence | None = None,
) -> Rendering:
    """Decode one stream as a listener would have heard it.

    Parameters
    ----------
    capture : Capture
        The capture the stream was found in (``callscope.capture.read_capture``).
    stream : MediaStream
        An RTP stream of that capture in a codec of :data:`callscope.media.codec.CODECS`.
    conceal : {"silence", "repeat", "codec"}
        Fill each gap with silence, with the last frame played repeated (the
        simplest packet-loss concealment; ITU-T G.711 Appendix I repeats pitch
        periods of it with attenuation), or with the codec's own concealment
        where its decoder has one (Opus, RFC 6716 §4.4; the others repeat).
    late : bool array, optional
        Per packet of ``stream.packets``: discarded by the playout buffer as
        too late (``PacketMetrics.late_fixed`` or ``late_adaptive`` of
        :mod:`callscope.metrics`). None: every packet is played.
    keys : sequence of SrtpKey, optional
        Candidate SRTP keys (:func:`callscope.media.srtp.keys_for`): the
        payloads are decrypted with the first that authenticates.

    Returns
    -------
    Rendering

    Raises
    ------
    CallscopeError
        The codec cannot be decoded here, the payload is encrypted and no key
        was given, or (:class:`DecryptionFailed`) no packet authenticated.
    """
    if conceal not in CONCEAL_MODES:
        raise CallscopeError(f"conceal must be one of {', '.join(CONCEAL_MODES)}, not {conceal!r}")
    key, source = codec_key(stream)
    info = CODECS[key]
    if stream.encrypted and not keys:
        raise CallscopeError(
            f"stream {stream.id} is encrypted (SRTP or opaque media): give its key with "
            f"--srtp-key {stream.id}=SUITE:BASE64KEY or --srtp-keys FILE, or capture the SIP that carries a=crypto"
        )
    from callscope.metrics.sequence import extend_timestamps

    g711 = key in SUPPORTED_CODECS
    clock = int(stream.clock_rate or info.clock_rate)
    dec = None if g711 else PayloadDecoder(key, clock)
    p = _select_packets(capture, stream)
    if p.frame.size == 0:
        raise CallscopeError(f"stream {stream.id} has no {info.name} packets with payload in the capture")
    data = capture.datagrams.data
    decryption = None
    if keys:
        decryption, buf, bstart, blen = _decrypt(data, p, keys)
        if decryption.decrypted == 0:
            raise DecryptionFailed(f"stream {stream.id}: {decryption.finding() or 'no packet could be decrypted'}",
                                   decryption)
    else:
        buf = data
        bstart, blen = _bodies_in_clear(data, p)
    ext_ts = extend_timestamps(p.ts)
    late_mask = (np.zeros(p.frame.size, bool) if late is None
                 else np.isin(p.frame, stream.packets.frame[np.asarray(late, bool)]))

    # First copy of each timestamp wins; later copies are duplicates.
    _, first = np.unique(ext_ts, return_index=True)
    is_first = np.zeros(ext_ts.size, bool)
    is_first[first] = True
    use = np.flatnonzero(is_first & ~late_mask & (blen > 0))
    if use.size == 0:
        raise CallscopeError(f"stream {stream.id}: every {info.name} packet was late, duplicated or undecryptable")
    use = use[np.argsort(ext_ts[use], kind="stable")]
    rate = G711_RATE if dec is None else dec.output_rate
    ts_out = (ext_ts[use] - ext_ts[use[0]]) * rate // clock
    seq = p.seq[use].astype(np.int64)
    lost_before = np.r_[False, (np.diff(seq) % SEQ_MOD) > 1]
    cn = (p.pt[use] == PT_CN) & (stream.payload_type != PT_CN)
    notes: list[str] = []
    plc: dict[int, np.ndarray] = {}
    if dec is None:  # G.711
        n = np.where(cn, 0, blen[use])
        src_start = bstart[use]
    else:
        n, src_start, pcm = _decode_all(dec, buf, bstart[use], blen[use], cn, ts_out, lost_before,
                                        conceal == "codec", plc, rate)
        if dec.errors:
            notes.append(f"{dec.errors} packets rejected by the {dec.name} decoder (rendered as concealed)")
    pos, budget_notes = _positions(ts_out, p.time_s[use], n, rate)
    notes += budget_notes
    n_eff = n.copy()
    n_eff[:-1] = np.minimum(n[:-1], np.maximum(np.diff(pos), 0))
    total = int((pos + n_eff).max())
    samples = np.zeros(total, np.int16)
    played = np.zeros(total, bool)
    dst, src = _sample_indices(pos, src_start, n_eff)
    samples[dst] = g711_decode(buf[src], key) if g711 else pcm[src]
    played[dst] = True

    # A gap between packets with consecutive sequence numbers is the sender
    # pausing (silence suppression / DTX, RFC 3551 §4.1), not loss: nothing to conceal.
    gap_start, gap_end = pos[:-1] + n_eff[:-1], pos[1:]
    silent_gap = ~lost_before[1:] & (gap_end > gap_start)
    sender_silent: np.ndarray = np.zeros(total + 1, np.int64)
    np.add.at(sender_silent, gap_start[silent_gap], 1)
    np.add.at(sender_silent, gap_end[silent_gap], -1)
    sender_silent = np.cumsum(sender_silent[:-1]) > 0
    _comfort_noise(samples, buf, bstart[use], pos, cn, int(stream.ssrc or 0))

    fill = ~played & ~sender_silent
    if conceal == "codec" and plc:
        for k, x in plc.items():
            a = int(pos[k - 1] + n_eff[k - 1])
            m = max(min(x.size, int(pos[k]) - a), 0)
            samples[a : a + m] = x[:m]
            fill[a : a + m] = False
    if conceal == "codec" and (g711 or not plc) and fill.any():
        notes.append(f"{info.name} has no decoder concealment here: gaps filled with the last frame repeated")
    if (conceal == "repeat" or conceal == "codec") and total and fill.any():
        frame_start = np.zeros(total, np.int64)
        frame_start[dst] = np.repeat(pos, n_eff)
        _repeat_last_frame(samples, played, frame_start, fill)
    return Rendering(
        samples=samples,
        sample_rate=rate,
        played=played,
        sender_silent=sender_silent & ~played,
        codec=info.name,
        conceal=conceal,
        packets_played=int(np.count_nonzero(n > 0)),
        packets_late=int(np.count_nonzero(late_mask & is_first)),
        duplicates=int(ext_ts.size - first.size),
        start_s=float(p.time_s[use[0]]),
        end_s=float(p.time_s[use].max()),
        codec_source=source,
        decoder="table" if dec is None else dec.name,
        decode_errors=0 if dec is None else dec.errors,
        decryption=decryption,
        notes=tuple(notes),
    )


def _decode_all(dec: PayloadDecoder, buf: np.ndarray, start: np.ndarray, length: np.ndarray, cn: np.ndarray,
                ts_out: np.ndarray, lost_before: np.ndarray, codec_plc: bool, plc: dict, rate: int):
    """Every payload through the decoder in timestamp order: samples, offsets into the PCM, the PCM.

    With ``codec_plc``, before a packet that follows a loss the decoder is
    asked to conceal the missing stretch (as a receiver's decoder does, which
    also primes its state for the packet after the gap); what it made is put
    in ``plc`` under the packet's index.
    """
    n = np.zeros(start.size, np.int64)
    src_start = np.zeros(start.size, np.int64)
    parts, at = [], 0
    max_gap = int(MAX_GAP_S * rate)
    for k in range(start.size):
        if cn[k]:
            continue
        body = buf[int(start[k]) : int(start[k] + length[k])].tobytes()
        if dec.key == "G729" and len(body) % G729_FRAME == G729_SID:
            body = body[:-G729_SID]  # Annex B SID: the sender goes silent after the speech frames
            if not body:
                continue
        if codec_plc and lost_before[k] and k:
            missing = int(min(ts_out[k] - ts_out[k - 1] - n[k - 1], max_gap))
            made = dec.conceal(missing)
            if made is not None and made.size:
                plc[k] = np.clip(np.rint(made * FULL_SCALE), -32768, 32767).astype(np.int16)
        x = dec.decode(body)
        if x is None or x.size == 0:
            continue
        parts.append(x)
        src_start[k], n[k] = at, x.size
        at += x.size
    pcm = np.concatenate(parts) if parts else np.zeros(0)
    return n, src_start, np.clip(np.rint(pcm * FULL_SCALE), -32768, 32767).astype(np.int16)


def _comfort_noise(samples: np.ndarray, buf: np.ndarray, start: np.ndarray, pos: np.ndarray, cn: np.ndarray,
                   seed: int) -> None:
    """Fill from each comfort-noise packet (RFC 3389) to the next packet with white noise at its level."""
    idx = np.flatnonzero(cn[:-1])
    if idx.size == 0:
        return
    rng = np.random.default_rng(seed)
    for k in idx:
        level = int(buf[int(start[k])]) & 0x7F  # RFC 3389 §3.1: noise level, -dBov
        a, b = int(pos[k]), int(pos[k + 1])
        rms = FULL_SCALE * 10 ** (-level / 20)
        samples[a:b] = np.clip(rng.standard_normal(b - a) * rms, -32768, 32767).astype(np.int16)


def _sample_indices(pos: np.ndarray, body_start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output sample index and payload byte index of every decoded sample."""
    if n.size and (n == n[0]).all():
        # Constant frame size (the usual case): one broadcast instead of three repeats.
        offsets = np.arange(int(n[0]))
        return (pos[:, None] + offsets).ravel(), (body_start[:, None] + offsets).ravel()
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return np.repeat(pos, n) + offsets, np.repeat(body_start, n) + offsets


def _repeat_last_frame(samples: np.ndarray, played: np.ndarray, frame_start: np.ndarray, fill: np.ndarray) -> None:
    """Fill the ``fill`` samples with the last played frame before them, cycled (in place)."""
    idx = np.arange(samples.size)
    last = np.maximum.accumulate(np.where(played, idx, -1))
    gap = fill & (last >= 0)
    lp = last[gap]
    fs = frame_start[lp]
    frame_len = lp - fs + 1
    samples[gap] = samples[fs + (idx[gap] - (lp + 1)) % frame_len]


def _channels_to_bytes(channels: np.ndarray) -> bytes:
    return np.ascontiguousarray(channels).astype("<i2").tobytes()


def _write(target, samples: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV; ``samples`` is (n,) for mono or (n, channels)."""
    with wave.open(target, "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(_channels_to_bytes(samples))


def write_wav(path: str | os.PathLike, rendering: Rendering) -> None:
    """Write a rendering as a 16-bit mono PCM WAV file."""
    _write(os.fspath(path), rendering.samples, rendering.sample_rate)


def wav_bytes(rendering: Rendering) -> bytes:
    """A rendering as the bytes of a 16-bit mono PCM WAV file."""
    buf = io.BytesIO()
    _write(buf, rendering.samples, rendering.sample_rate)
    return buf.getvalue()


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """int16 audio from ``rate`` to ``to`` Hz (polyphase, ``scipy.signal.resample_poly``)."""
    if rate == to or samples.size == 0:
        return samples
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, to)
    y = resample_poly(samples.astype(np.float64), to // g, rate // g)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def stereo(left: Rendering, right: Rendering) -> tuple[np.ndarray, int]:
    """Both directions of a call on their own channel, aligned on the capture's time axis.

    Each rendering's sample 0 is placed at its :attr:`Rendering.start_s`;
    the channels share the higher of the two sample rates.

    Returns
    -------
    (samples of shape (n, 2), sample rate)
    """
    rate = max(left.sample_rate, right.sample_rate)
    t0 = min(left.start_s, right.start_s)
    chans = []
    for r in (left, right):
        x = resample(r.samples, r.sample_rate, rate)
        chans.append((int(round((r.start_s - t0) * rate)), x))
    span = int(min(max(off + x.size for off, x in chans), sum(x.size for _, x in chans) + MAX_GAP_S * rate))
    out = np.zeros((span, 2), np.int16)
    for c, (off, x) in enumerate(chans):
        off = min(off, span)
        out[off : off + x.size, c] = x[: span - off]
    return out, rate


def write_stereo_wav(path: str | os.PathLike, left: Rendering, right: Rendering) -> float:
    """Write :func:`stereo` as a 16-bit stereo WAV; returns its duration in seconds."""
    samples, rate = stereo(left, right)
    _write(os.fspath(path), samples, rate)
    return samples.shape[0] / rate


#: Embedded audio: Opus in Ogg at this bit rate when PyAV can encode it
#: (3 kB/s), else 8 kHz WAV (16 kB/s).
EMBED_OPUS_BITRATE = 24000


def embeddable(rendering: Rendering) -> tuple[str, bytes]:
    """A small file of the rendering for a ``data:`` URI: (MIME type, bytes).

    Opus in Ogg (RFC 7845) through PyAV when it is installed, else a WAV
    resampled to 8 kHz (telephone band, what G.711 carries anyway).
    """
    try:
        import av

        buf = io.BytesIO()
        with av.open(buf, "w", format="ogg") as out:
            st = out.add_stream("libopus", rate=48000)
            st.bit_rate = EMBED_OPUS_BITRATE
            st.layout = "mono"
            x = resample(rendering.samples, rendering.sample_rate, 48000)
            frame = av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
            frame.sample_rate = 48000
            for pkt in st.encode(frame):
                out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        return "audio/ogg", buf.getvalue()
    except Exception:  # no PyAV, no libopus encoder: the plain fallback below
        buf = io.BytesIO()
        _write(buf, resample(rendering.samples, rendering.sample_rate, G711_RATE), G711_RATE)
        return "audio/wav", buf.getvalue()


def spectral_flatness(samples: np.ndarray, rate: int) -> float:
    """Median over 32 ms frames of the spectral flatness (geometric / arithmetic mean of the power spectrum).

    About 0.56 for white noise (the expectation of the ratio for exponential
    periodogram bins), far lower for speech and tones; silent frames are skipped.
    """
    nfft = max(int(0.032 * rate), 64)
    x = samples.astype(np.float64)
    frames = x[: x.size // nfft * nfft].reshape(-1, nfft)
    frames = frames[np.abs(frames).max(axis=1) > 64]
    if frames.size == 0:
        return float("nan")
    p = np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=1)) ** 2 + 1e-12
    flat = np.exp(np.log(p).mean(axis=1)) / p.mean(axis=1)
    return float(np.median(flat))


@dataclass(frozen=True)
class Heard:
    """One stream's attempt at being heard: the rendering, or why there is none."""

    stream_id: str
    rendering: Rendering | None
    error: str | None = None
    decryption: Decryption | None = None  # also when every packet failed


def stream_keys(report, stream: MediaStream, given: Sequence = ()) -> list:
    """SRTP keys to try on a stream: those given for it (``--srtp-key``, keys file), then,
    for a stream known to be SRTP, the SDES keys of the capture's SIP."""
    from callscope.media.srtp import keys_for

    return keys_for(stream, given, report.inventory.sip if stream.encrypted else None)


def hear(report, capture: Capture, stream: MediaStream, *, conceal: str = "silence",
         playout: str = "adaptive", keys: Sequence = ()) -> Heard:
    """:func:`render_stream` of one stream of an analyzed capture, errors kept as one line.

    ``playout``: ``"adaptive"`` / ``"fixed"`` drop what that playout buffer
    of the metrics dropped as late, ``"none"`` plays every packet.
    """
    pp = report.metrics[stream.id].per_packet if stream.id in report.metrics else None
    late = None if pp is None else {"adaptive": pp.late_adaptive, "fixed": pp.late_fixed, "none": None}[playout]
    try:
        r = render_stream(capture, stream, conceal=conceal, late=late,
                          keys=stream_keys(report, stream, keys) or None)
    except DecryptionFailed as exc:
        return Heard(stream.id, None, str(exc), exc.decryption)
    except CallscopeError as exc:
        return Heard(stream.id, None, str(exc))
    return Heard(stream.id, r, None, r.decryption)


def worst_first(report, stream_ids: Sequence[str]) -> list[str]:
    """Stream ids ordered from the worst heard (lowest MOS, then most loss) to the best."""
    def badness(sid: str) -> tuple[float, float]:
        m = report.metrics.get(sid)
        if m is None:
            return (5.0, 0.0)
        mos = m.mos if np.isfinite(m.mos) else 5.0
        return (mos, -(m.loss_fraction or 0.0))

    return sorted(stream_ids, key=badness)


def heard_dict(h: Heard) -> dict:
    """One :class:`Heard` as plain values (the ``audio --json`` document's stream entries)."""
    from callscope.media.srtp import counts_dict

    out: dict = {"stream_id": h.stream_id, "error": h.error,
                 "srtp": counts_dict(h.decryption) if h.decryption is not None else None}
    r = h.rendering
    if r is not None:
        out.update(codec=r.codec, codec_source=r.codec_source, decoder=r.decoder, sample_rate=r.sample_rate,
                   duration_s=round(r.duration_s, 4), concealed_s=round(r.concealed_s, 4),
                   sender_silent_s=round(float(np.count_nonzero(r.sender_silent)) / r.sample_rate, 4),
                   conceal=r.conceal, packets_played=r.packets_played, packets_late=r.packets_late,
                   duplicates=r.duplicates, decode_errors=r.decode_errors, start_s=round(r.start_s, 6),
                   span_s=round(r.end_s - r.start_s, 6),
                   notes=list(r.notes))
    return out


def decryption_check(capture: Capture, stream: MediaStream, keys: Sequence):
    """SRTP-decrypt a stream's packets without decoding them: the Decryption, or why not (a line)."""
    try:
        p = _select_packets(capture, stream)
        if p.frame.size == 0:
            return "no packets with payload"
        return _decrypt(capture.datagrams.data, p, keys)[0]
    except CallscopeError as exc:
        return str(exc)
