"""RTP audio payloads decoded to PCM: G.711 by table, every other codec by FFmpeg.

G.711 needs two 256-entry tables and stays vectorised in
:mod:`callscope.report.audio`. The other voice codecs need their real
decoders; callscope borrows FFmpeg's through PyAV (the optional ``[audio]``
extra: ``pip install 'callscope[audio]'``), whose wheels carry a decoder for
each codec below. A codec decoder is a state machine fed one frame after the
other, so this is the one place where packets go through Python one by one
(a loop over a stream's packets, not an object per packet of the capture).

Which codec a stream carries: the SDP ``a=rtpmap`` name, else the static
payload type (RFC 3551 §6 Table 4), else, for a dynamic payload type whose
timestamps run at 48 kHz, Opus (RFC 7587 §4.1: Opus always uses a 48 kHz
RTP clock, and it is the only common voice codec that does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.errors import CallscopeError


@dataclass(frozen=True)
class CodecInfo:
    """One audio codec as RTP carries it.

    Attributes
    ----------
    name : str
        How reports name it.
    decoders : tuple of str
        FFmpeg decoder names, the first one present is used; empty for G.711.
    output_rate : int or None
        Sample rate of the decoded PCM; None: the RTP clock rate.
    clock_rate : int
        The RTP clock rate the payload format defines (SDP may say otherwise
        for Speex and L16).
    reference : str
        The payload format.
    bits_per_sample : int
        Code size of a sample-by-sample ADPCM codec (G.726: 2 to 5 bits),
        which its RTP name says and FFmpeg's decoder must be told; 0 for
        frame-based codecs.
    """

    name: str
    decoders: tuple[str, ...]
    output_rate: int | None
    clock_rate: int
    reference: str = ""
    bits_per_sample: int = 0


#: Canonical key (upper-case rtpmap encoding name) -> codec.
CODECS: dict[str, CodecInfo] = {
    "PCMU": CodecInfo("PCMU", (), 8000, 8000, reference="RFC 3551 §4.5.14"),
    "PCMA": CodecInfo("PCMA", (), 8000, 8000, reference="RFC 3551 §4.5.14"),
    "OPUS": CodecInfo("opus", ("libopus", "opus"), 48000, 48000, reference="RFC 7587"),
    # RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock runs at 8 kHz
    "G722": CodecInfo("G722", ("g722",), 16000, 8000, reference="RFC 3551 §4.5.2"),
    "G729": CodecInfo("G729", ("g729",), 8000, 8000, reference="RFC 3551 §4.5.6"),
    "G723": CodecInfo("G723", ("g723_1",), 8000, 8000, reference="RFC 3551 §4.5.3"),
    "GSM": CodecInfo("GSM", ("gsm",), 8000, 8000, reference="RFC 3551 §4.5.8"),
    # RFC 3952 §5: 38-octet frames are the 20 ms mode, 50-octet ones the 30 ms mode
    "ILBC": CodecInfo("iLBC", ("ilbc",), 8000, 8000, reference="RFC 3952"),
    "SPEEX": CodecInfo("speex", ("speex",), None, 8000, reference="RFC 5574"),
    "AMR": CodecInfo("AMR", ("amrnb",), 8000, 8000, reference="RFC 4867"),
    # G.726 at 16/24/32/40 kbit/s is 2/3/4/5 bits per 8 kHz sample. RFC 3551
    # §4.5.4 packs the codewords little-endian (the first in the octet's least
    # significant bits, as ITU-T X.420): FFmpeg's g726le. The AAL2-G726-*
    # formats (RFC 3551 §4.5.4's note, ITU-T I.366.2 Annex E) pack them
    # big-endian: FFmpeg's g726.
    **{f"G726-{kbps}": CodecInfo(f"G726-{kbps}", ("g726le",), 8000, 8000, "RFC 3551 §4.5.4", kbps // 8)
       for kbps in (16, 24, 32, 40)},
    **{f"AAL2-G726-{kbps}": CodecInfo(f"AAL2-G726-{kbps}", ("g726",), 8000, 8000, "ITU-T I.366.2 Annex E",
                                      kbps // 8)
       for kbps in (16, 24, 32, 40)},
}
_ALIASES = {"G729A": "G729", "G729B": "G729", "G729AB": "G729", "G723.1": "G723"}
#: RFC 3551 §6 Table 4: static payload types of the codecs above. Payload
#: type 2 was G.721 (RFC 1890), i.e. G.726 at 32 kbit/s; RFC 3551 §4.5.4
#: deprecates it because senders disagreed on the packing, and a sender still
#: using it is decoded with RFC 3551's.
STATIC_PT = {0: "PCMU", 2: "G726-32", 3: "GSM", 4: "G723", 8: "PCMA", 9: "G722", 18: "G729"}
PT_CN = 13  # RFC 3389 §4 / RFC 3551 Table 4: comfort noise
DYNAMIC_PT = range(96, 128)  # RFC 3551 §6
OPUS_CLOCK = 48000  # RFC 7587 §4.1
#: RFC 6716 §3.1 Table 2: frame duration (µs) of each TOC configuration 0..31.
OPUS_FRAME_US = np.array([10000, 20000, 40000, 60000] * 3 + [10000, 20000] * 2 + [2500, 5000, 10000, 20000] * 4)
#: 3GPP TS 26.101 Table 1a: bits of an AMR-NB speech frame per frame type 0..8 (8 = SID).
AMR_FRAME_BITS = (95, 103, 118, 134, 148, 159, 204, 244, 39)
AMR_NO_DATA = 15  # 3GPP TS 26.101 Table 1a: frame type 15, no data


def codec_key(stream) -> tuple[str, str]:
    """Codec key of :data:`CODECS` a stream carries and how it was known.

    Returns
    -------
    (key, source) where source is ``"sdp"`` / ``"static"`` (as the stream's
    codec came), or ``"inferred"`` (dynamic payload type at a 48 kHz clock: Opus).

    Raises
    ------
    CallscopeError
        One line saying what the stream carries and that it cannot be decoded.
    """
    if stream.kind != "rtp" or stream.ssrc is None:
        raise CallscopeError(f"stream {stream.id} is not RTP: there is no payload to decode")
    name = (stream.codec or "").upper()
    name = _ALIASES.get(name, name)
    if name in CODECS:
        return name, stream.clock_source
    if not name and stream.payload_type in STATIC_PT:
        return STATIC_PT[stream.payload_type], "static"
    if not name and stream.payload_type in DYNAMIC_PT and stream.clock_rate == OPUS_CLOCK:
        return "OPUS", "inferred"
    what = stream.codec or f"payload type {stream.payload_type}"
    raise CallscopeError(
        f"stream {stream.id} carries {what}, which callscope cannot decode (decodable: {decodable_names()})"
    )


def decodable_names() -> str:
    """The codecs of :data:`CODECS` by name, a G.726 family in one item (``G726-16/24/32/40``)."""
    names: list[str] = []
    for c in CODECS.values():
        if not c.bits_per_sample:
            names.append(c.name)
            continue
        family, _, rate = c.name.rpartition("-")
        if names and names[-1].startswith(family + "-"):
            names[-1] += f"/{rate}"
        else:
            names.append(c.name)
    return ", ".join(names)


def require_av():
    """The PyAV module, or a CallscopeError saying how to install it."""
    try:
        import av
    except ImportError:
        raise CallscopeError("decoding this codec needs PyAV (FFmpeg): pip install 'callscope[audio]'") from None
    return av


def decoder_name(key: str) -> str:
    """The FFmpeg decoder used for a codec key; CallscopeError when PyAV or the decoder is missing."""
    info = CODECS[key]
    av = require_av()
    for name in info.decoders:
        try:
            av.Codec(name, "r")
        except Exception:  # PyAV raises UnknownCodecError, or ValueError in older releases
            continue
        return name
    raise CallscopeError(f"this PyAV build's FFmpeg has no {info.name} decoder ({', '.join(info.decoders)})")


def available() -> dict[str, str | None]:
    """Per codec key: None when it can be decoded here, else why not (one line)."""
    out: dict[str, str | None] = {}
    for key, info in CODECS.items():
        if not info.decoders:
            out[key] = None
            continue
        try:
            decoder_name(key)
            out[key] = None
        except CallscopeError as exc:
            out[key] = str(exc)
    return out


def _pcm(frame) -> np.ndarray:
    """One decoded PyAV frame as mono float64 in [-1, 1]."""
    a = frame.to_ndarray()
    fmt = frame.format
    if fmt.is_planar:
        x = a.astype(np.float64).mean(axis=0) if a.shape[0] > 1 else a[0].astype(np.float64)
    else:
        ch = max(a.size // max(frame.samples, 1), 1)
        x = a.reshape(-1, ch).astype(np.float64).mean(axis=1)
    if fmt.name.startswith("s16"):
        x /= 32768.0
    elif fmt.name.startswith("s32"):
        x /= 2147483648.0
    return x


def amr_storage_frames(payload: bytes) -> list[bytes] | None:
    """An AMR RTP payload (RFC 4867 §4.3 / §4.4) as storage-format frames (§5.3), or None.

    Octet-aligned mode is tried first (each frame whole octets after one
    CMR octet and one ToC octet per frame); when its sizes do not add up to
    the payload, bandwidth-efficient mode (4-bit CMR, 6-bit ToC entries,
    frames packed bit by bit).
    """
    data = np.frombuffer(payload, np.uint8)
    # octet-aligned: CMR, ToC octets (F bit 0x80 continues), frames
    toc, i = [], 1
    while i < data.size:
        toc.append(int(data[i]))
        i += 1
        if not toc[-1] & 0x80:
            break
    fts = [(t >> 3) & 0x0F for t in toc]
    if all(ft < len(AMR_FRAME_BITS) or ft == AMR_NO_DATA for ft in fts):
        sizes = [(AMR_FRAME_BITS[ft] + 7) // 8 if ft < len(AMR_FRAME_BITS) else 0 for ft in fts]
        if toc and i + sum(sizes) == data.size:
            out, at = [], i
            for t, n in zip(toc, sizes, strict=True):
                out.append(bytes([t & 0x7C]) + payload[at : at + n])
                at += n
            return out
    bits = np.unpackbits(data)
    pos, entries = 4, []
    while pos + 6 <= bits.size:
        f, ft, q = bits[pos], int(np.packbits(np.r_[np.zeros(4, np.uint8), bits[pos + 1 : pos + 5]])[0]), bits[pos + 5]
        entries.append((ft, int(q)))
        pos += 6
        if not f:
            break
    if not entries or any(ft >= len(AMR_FRAME_BITS) and ft != AMR_NO_DATA for ft, _ in entries):
        return None
    out = []
    for ft, q in entries:
        n = AMR_FRAME_BITS[ft] if ft < len(AMR_FRAME_BITS) else 0
        if pos + n > bits.size:
            return None
        frame_bits = np.r_[bits[pos : pos + n], np.zeros(-n % 8, np.uint8)]
        out.append(bytes([(ft << 3) | (q << 2)]) + np.packbits(frame_bits).tobytes())
        pos += n
    return out


class PayloadDecoder:
    """A codec's decoder fed one RTP payload after the other.

    Parameters
    ----------
    key : str
        A key of :data:`CODECS` other than G.711.
    clock_rate : int
        The stream's RTP clock rate (Speex decodes at it).
    """

    def __init__(self, key: str, clock_rate: int):
        av = require_av()
        self.key = key
        self.info = CODECS[key]
        self.name = decoder_name(key)
        self.output_rate = self.info.output_rate or clock_rate
        self._av = av
        self._ctx = self._open()
        self._last_toc: int | None = None
        self.errors = 0

    def _open(self):
        ctx = self._av.CodecContext.create(self.name, "r")
        ctx.sample_rate = self.output_rate
        ctx.layout = "mono"
        if self.info.bits_per_sample:
            # FFmpeg's G.726 decoder refuses to open without its code size
            ctx.options = {"bits_per_coded_sample": str(self.info.bits_per_sample)}
        return ctx

    def _ilbc_mode(self, size: int) -> None:
        # RFC 3952 §5: 38-octet frames are the 20 ms mode (15.2 kbit/s), 50-octet the 30 ms mode (13.33)
        rate = 13333 if size % 50 == 0 and size % 38 != 0 else 15200
        if self._ctx.bit_rate != rate:
            self._ctx = self._av.CodecContext.create(self.name, "r")
            self._ctx.sample_rate, self._ctx.layout, self._ctx.bit_rate = 8000, "mono", rate

    def _run(self, data: bytes) -> np.ndarray | None:
        try:
            frames = self._ctx.decode(self._av.Packet(data))
        except (self._av.FFmpegError, ValueError):
            self.errors += 1
            return None
        parts = [_pcm(f) for f in frames]
        return np.concatenate(parts) if parts else np.zeros(0)

    def decode(self, payload: bytes) -> np.ndarray | None:
        """PCM (float64 in [-1, 1], at :attr:`output_rate`) of one payload; None if the decoder rejected it."""
        if not payload:
            return None
        if self.key == "ILBC":
            self._ilbc_mode(len(payload))
        if self.key == "AMR":
            frames = amr_storage_frames(payload)
            if frames is None:
                self.errors += 1
                return None
            parts = [p for p in (self._run(f) for f in frames) if p is not None]
            return np.concatenate(parts) if parts else None
        if self.key == "OPUS":
            self._last_toc = payload[0]
        return self._run(payload)

    def conceal(self, samples: int) -> np.ndarray | None:
        """The codec's own concealment of about ``samples`` lost samples, or None if it has none.

        Only Opus offers it through FFmpeg: a packet of just a TOC octet
        (code 0: one frame of zero octets, RFC 6716 §3.2.2) is a lost frame to
        the decoder, which extrapolates it (RFC 6716 §4.4).
        """
        if self.key != "OPUS" or self._last_toc is None or samples <= 0:
            return None
        toc = self._last_toc & 0xFC
        frame = int(OPUS_FRAME_US[toc >> 3]) * self.output_rate // 1_000_000
        parts, have = [], 0
        while have < samples:
            got = self._run(bytes([toc]))
            if got is None or got.size == 0:
                break
            parts.append(got)
            have += got.size
            if got.size < frame // 2:
                break
        return np.concatenate(parts)[:samples] if parts else None
