"""The RTP fixed header (RFC 3550 §5.1), read for many packets at once.

Header layout, as byte offsets into the packet::

    0      V(2) P(1) X(1) CC(4)
    1      M(1) PT(7)
    2..3   sequence number
    4..7   timestamp
    8..11  SSRC
    12..   CSRC list (CC x 4 bytes), then the extension if X is set:
           16-bit profile word, 16-bit length in 32-bit words, data.

Everything here works on arrays of header bytes gathered with
:meth:`~callscope.capture.datagrams.Datagrams.payload_prefix`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RTP_VERSION = 2  # RFC 3550 §5.1
RTP_HEADER_LEN = 12  # RFC 3550 §5.1, fixed part
GATHER_WIDTH = 16  # fixed header + the extension's profile/length word when CC = 0

_VERSION_SHIFT = 6
_PADDING_MASK = 0x20
_EXTENSION_MASK = 0x10
_CC_MASK = 0x0F
_MARKER_MASK = 0x80
_PT_MASK = 0x7F

#: Payload types 72-76 collide with RTCP SR..APP (200-204) once the marker bit
#: is set; RFC 5761 §4 reserves 64-95 so that RTP and RTCP can share a port.
RTCP_CONFLICT_PT = (72, 76)  # RFC 3550 §A.1 / RFC 5761 §4
RTCP_MUX_PT = (64, 95)  # RFC 5761 §4: PT values that must not be used for RTP

#: Static payload types: RFC 3551 §6, Tables 4 and 5 (name, clock rate in Hz).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    5: ("DVI4", 8000),
    6: ("DVI4", 16000),
    7: ("LPC", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),  # RFC 3551 §4.5.2: clock 8000 although sampled at 16 kHz
    10: ("L16", 44100),
    11: ("L16", 44100),
    12: ("QCELP", 8000),
    13: ("CN", 8000),
    14: ("MPA", 90000),
    15: ("G728", 8000),
    16: ("DVI4", 11025),
    17: ("DVI4", 22050),
    18: ("G729", 8000),
    25: ("CelB", 90000),
    26: ("JPEG", 90000),
    28: ("nv", 90000),
    31: ("H261", 90000),
    32: ("MPV", 90000),
    33: ("MP2T", 90000),
    34: ("H263", 90000),
}

#: Clock rates a sender may use (RFC 3551 §4.5 and common dynamic codecs);
#: an inferred rate snaps to the nearest of these.
COMMON_CLOCK_RATES = np.array([8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 90000])
OPUS_CLOCK_RATE = 48000  # RFC 7587 §4.1: always 48 kHz whatever the audio bandwidth


@dataclass(frozen=True)
class RtpHeaders:
    """RTP fixed-header fields of many packets, one array per field.

    ``valid`` says the packet can be RTP at all: version 2, the CSRC list and
    header extension fit in the captured bytes and the padding count
    (RFC 3550 §5.1, P bit) lies within the payload.
    """

    b0: np.ndarray  # uint8: V, P, X, CC
    b1: np.ndarray  # uint8: M, PT
    seq: np.ndarray  # uint16
    ts: np.ndarray  # uint32
    ssrc: np.ndarray  # uint32
    header_len: np.ndarray  # int32, fixed header + CSRCs + extension
    valid: np.ndarray  # bool

    @property
    def pt(self) -> np.ndarray:
        return (self.b1 & _PT_MASK).astype(np.uint8)

    @property
    def marker(self) -> np.ndarray:
        return (self.b1 & _MARKER_MASK) != 0

    @property
    def is_rtcp_conflict(self) -> np.ndarray:
        """Marker set and PT in 72-76: an RTCP SR..APP packet, not RTP (RFC 5761 §4)."""
        pt = self.pt
        return self.marker & (pt >= RTCP_CONFLICT_PT[0]) & (pt <= RTCP_CONFLICT_PT[1])


def parse_headers(
    head: np.ndarray, length: np.ndarray, ext_word: np.ndarray, last_byte: np.ndarray
) -> RtpHeaders:
    """Decode RTP fixed headers from gathered bytes.

    Parameters
    ----------
    head : uint8, shape (n, >= 12)
        The first bytes of each candidate RTP packet.
    length : int
        Bytes of the RTP packet present in the capture.
    ext_word : uint8, shape (n, 4)
        The 4 bytes at offset ``12 + 4 * CC`` (extension profile and length),
        only read when X is set.
    last_byte : uint8
        The packet's last byte: the padding count when P is set (RFC 3550 §5.1).

    Returns
    -------
    RtpHeaders
    """
    h = head.astype(np.uint32)
    b0 = head[:, 0]
    b1 = head[:, 1]
    seq = ((h[:, 2] << 8) | h[:, 3]).astype(np.uint16)
    ts = (h[:, 4] << 24) | (h[:, 5] << 16) | (h[:, 6] << 8) | h[:, 7]
    ssrc = (h[:, 8] << 24) | (h[:, 9] << 16) | (h[:, 10] << 8) | h[:, 11]
    cc = (b0 & _CC_MASK).astype(np.int32)
    has_ext = (b0 & _EXTENSION_MASK) != 0
    ext_words = (ext_word[:, 2].astype(np.int32) << 8) | ext_word[:, 3]
    header_len = RTP_HEADER_LEN + 4 * cc + np.where(has_ext, 4 + 4 * ext_words, 0)
    padded = (b0 & _PADDING_MASK) != 0
    pad = np.where(padded, last_byte.astype(np.int32), 0)
    length = np.asarray(length, dtype=np.int32)
    valid = (
        ((b0 >> _VERSION_SHIFT) == RTP_VERSION)
        & (length >= RTP_HEADER_LEN)
        & (header_len <= length)
        & (~padded | ((pad >= 1) & (header_len + pad <= length)))
    )
    return RtpHeaders(
        b0=b0,
        b1=b1,
        seq=seq,
        ts=ts.astype(np.uint32),
        ssrc=ssrc.astype(np.uint32),
        header_len=header_len.astype(np.int32),
        valid=valid,
    )


def snap_clock_rate(rate: float) -> int | None:
    """The standard clock rate nearest ``rate`` (within 10 %), else None."""
    if not np.isfinite(rate) or rate <= 0:
        return None
    i = int(np.argmin(np.abs(np.log(COMMON_CLOCK_RATES / rate))))
    best = int(COMMON_CLOCK_RATES[i])
    return best if abs(best - rate) <= 0.1 * best else None
