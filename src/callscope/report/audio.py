"""What the listener heard: a G.711 stream decoded to a WAV file, losses included.

Payload bytes are not part of the metrics, so the capture is read again and the
stream's datagrams are picked out by frame number, checked against the stream's
ports and SSRC. Received packets are decoded and laid out by RTP timestamp
(for G.711 one timestamp tick is one sample, RFC 3551 §4.5.14); what a packet
that never came, or came too late for the playout buffer, should have filled
is rendered as silence or as a repetition of the last frame played. Frequent
evenly spaced short gaps are what "metallic" or "robotic" sounds like; long
gaps are dropouts.

Only G.711 (PCMU, PT 0 and PCMA, PT 8) is decoded: it needs two 256-entry
tables. Opus and G.729 need a native codec library (libopus, bcg729) that is
not a dependency of callscope, and most Opus media in captures is SRTP-
encrypted anyway.
"""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass

import numpy as np

from callscope.capture.datagrams import str_to_address
from callscope.capture.reader import Capture
from callscope.errors import CallscopeError
from callscope.media.demux import gather
from callscope.media.rtp import RTP_HEADER_LEN, parse_headers
from callscope.media.stream import MediaStream

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
#: A timestamp step further than this from the arrival-time step is a sender
#: re-basing its clock (RFC 3550 §5.1 allows a random start, restarts repeat
#: it), not real silence: it is closed up to the arrival gap so that one bad
#: timestamp cannot turn a 10 s call into a 3-hour file.
MAX_TIMESTAMP_JUMP_S = 10.0
CONCEAL_MODES = ("silence", "repeat")
SUPPORTED_CODECS = {"PCMU": PT_PCMU, "PCMA": PT_PCMA}


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
        Per sample: a pause the sender made (silence suppression: the next
        sequence number carries a later timestamp), rendered as silence.
        Samples neither played nor sender-silent were concealed.
    codec : str
        ``"PCMU"`` or ``"PCMA"``.
    conceal : str
        How gaps were filled: ``"silence"`` or ``"repeat"``.
    packets_played, packets_late, duplicates : int
        Packets decoded; packets that arrived after their playout time and were
        dropped; extra copies ignored.
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

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def concealed_s(self) -> float:
        """Seconds of audio that had to be made up (lost or late packets)."""
        return float(np.count_nonzero(self.concealed)) / self.sample_rate

    @property
    def concealed(self) -> np.ndarray:
        """Per sample: made up for a lost or late packet."""
        return ~self.played & ~self.sender_silent


def is_decodable(stream: MediaStream) -> bool:
    """True for a clear-text G.711 RTP stream (what :func:`render_stream` accepts)."""
    try:
        g711_law(stream)
    except CallscopeError:
        return False
    return True


def g711_law(stream: MediaStream) -> str:
    """``"PCMU"`` or ``"PCMA"`` for a stream that can be decoded; CallscopeError otherwise."""
    if stream.kind != "rtp" or stream.ssrc is None:
        raise CallscopeError(f"stream {stream.id} is not RTP: there is no payload to decode")
    if stream.encrypted:
        raise CallscopeError(f"stream {stream.id} is encrypted (SRTP or opaque media): its audio cannot be decoded")
    name = (stream.codec or "").upper()
    for law, pt in SUPPORTED_CODECS.items():
        if name == law or (not name and stream.payload_type == pt):
            return law
    raise CallscopeError(
        f"stream {stream.id} carries {stream.codec or f'payload type {stream.payload_type}'}; "
        "only G.711 (PCMU, PCMA) can be decoded to audio"
    )


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


def _select_packets(capture: Capture, stream: MediaStream, law: str) -> tuple[np.ndarray, ...]:
    """Frame, arrival time, sequence number, timestamp, payload start and length of its audio packets.

    The stream's frames, kept when the 5-tuple (for plain UDP; TURN-relayed
    media is addressed to the relay) and the RTP SSRC and payload type match.
    """
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
    keep = hdr.valid & (hdr.ssrc == np.uint32(stream.ssrc)) & (hdr.pt == SUPPORTED_CODECS[law])
    pad = np.where((hdr.b0 & RTP_PADDING_BIT) != 0, last.astype(np.int64), 0)
    body_start = start + hdr.header_len
    body_len = length - hdr.header_len - pad
    keep &= body_len > 0
    time_s = (dg.time_ns[rows] - capture.start_ns) / 1e9
    return dg.frame[rows][keep], time_s[keep], hdr.seq[keep], hdr.ts[keep], body_start[keep], body_len[keep]


def _positions(ts_sorted: np.ndarray, time_sorted: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sample offset of each packet, with absurd timestamp jumps closed up."""
    pos = ts_sorted - ts_sorted[0]
    if pos.size < 2:
        return pos
    step = np.diff(pos)
    arrival_step = np.rint(np.diff(time_sorted) * G711_RATE).astype(np.int64)
    jump = np.abs(step - arrival_step) > MAX_TIMESTAMP_JUMP_S * G711_RATE
    step = np.where(jump, np.maximum(arrival_step, n[:-1]), step)
    return np.concatenate([[0], np.cumsum(step)])


def render_stream(
    capture: Capture,
    stream: MediaStream,
    *,
    conceal: str = "silence",
    late: np.ndarray | None = None,
) -> Rendering:
    """Decode one G.711 stream as a listener would have heard it.

    Parameters
    ----------
    capture : Capture
        The capture the stream was found in (``callscope.capture.read_capture``).
    stream : MediaStream
        A PCMU or PCMA stream of that capture.
    conceal : {"silence", "repeat"}
        Fill each gap with silence, or with the last frame played repeated
        (the simplest packet-loss concealment, ITU-T G.711 Appendix I repeats
        pitch periods of it with attenuation).
    late : bool array, optional
        Per packet of ``stream.packets``: discarded by the playout buffer as
        too late (``PacketMetrics.late_fixed`` or ``late_adaptive`` of
        :mod:`callscope.metrics`). None: every packet is played.

    Returns
    -------
    Rendering

    Raises
    ------
    CallscopeError
        The stream is not G.711 RTP or its payload is encrypted.
    """
    if conceal not in CONCEAL_MODES:
        raise CallscopeError(f"conceal must be one of {', '.join(CONCEAL_MODES)}, not {conceal!r}")
    law = g711_law(stream)
    from callscope.metrics.sequence import extend_timestamps

    frame, time_s, seq, ts, body_start, body_len = _select_packets(capture, stream, law)
    if time_s.size == 0:
        raise CallscopeError(f"stream {stream.id} has no {law} packets with payload in the capture")
    ext_ts = extend_timestamps(ts)
    if late is None:
        late = np.zeros(frame.size, bool)
    else:
        late = np.isin(frame, stream.packets.frame[np.asarray(late, bool)])

    # First copy of each timestamp wins; later copies are duplicates.
    _, first = np.unique(ext_ts, return_index=True)
    is_first = np.zeros(ext_ts.size, bool)
    is_first[first] = True
    use = np.flatnonzero(is_first & ~late)
    use = use[np.argsort(ext_ts[use], kind="stable")]
    n = body_len[use]
    pos = _positions(ext_ts[use], time_s[use], n)

    total = int((pos + n).max()) if use.size else 0
    samples = np.zeros(total, np.int16)
    played = np.zeros(total, bool)
    dst, src = _sample_indices(pos, body_start[use], n)
    samples[dst] = g711_decode(capture.datagrams.data[src], law)
    played[dst] = True

    # A gap between packets with consecutive sequence numbers is the sender
    # pausing (silence suppression, RFC 3551 §4.1), not loss: nothing to conceal.
    next_seq = (seq[use][1:].astype(np.int64) - seq[use][:-1].astype(np.int64)) % SEQ_MOD == 1
    gap_start, gap_end = pos[:-1] + n[:-1], pos[1:]
    silent_gap = next_seq & (gap_end > gap_start)
    sender_silent = np.zeros(total + 1, np.int64)
    np.add.at(sender_silent, gap_start[silent_gap], 1)
    np.add.at(sender_silent, gap_end[silent_gap], -1)
    sender_silent = np.cumsum(sender_silent[:-1]) > 0

    if conceal == "repeat" and total:
        frame_start = np.zeros(total, np.int64)
        frame_start[dst] = np.repeat(pos, n) if n.size else 0
        _repeat_last_frame(samples, played, frame_start, ~played & ~sender_silent)
    return Rendering(
        samples=samples,
        sample_rate=G711_RATE,
        played=played,
        sender_silent=sender_silent & ~played,
        codec=law,
        conceal=conceal,
        packets_played=int(use.size),
        packets_late=int(np.count_nonzero(late & is_first)),
        duplicates=int(ext_ts.size - first.size),
    )


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


def _write(target, rendering: Rendering) -> None:
    with wave.open(target, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rendering.sample_rate)
        w.writeframes(rendering.samples.astype("<i2").tobytes())


def write_wav(path: str | os.PathLike, rendering: Rendering) -> None:
    """Write a rendering as a 16-bit mono PCM WAV file."""
    _write(os.fspath(path), rendering)


def wav_bytes(rendering: Rendering) -> bytes:
    """A rendering as the bytes of a 16-bit mono PCM WAV file."""
    buf = io.BytesIO()
    _write(buf, rendering)
    return buf.getvalue()
