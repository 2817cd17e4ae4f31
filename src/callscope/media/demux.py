"""Which protocol a UDP payload is, from its first bytes (RFC 7983 §7).

RFC 7983 §7 multiplexes STUN, ZRTP, DTLS, TURN ChannelData and RTP/RTCP on
one port by the value of the first byte; RFC 5761 §4 then separates RTCP
from RTP by the second byte. Every test here is a vectorised comparison over
the gathered header bytes of all datagrams, plus a structural check (STUN
magic cookie and length, ChannelData length, DTLS version) so that random
bytes of an encrypted protocol are not mistaken for a control message.
"""

from __future__ import annotations

import numpy as np

from callscope.capture.decode import byte_fields

OTHER = 0
STUN = 1
ZRTP = 2
DTLS = 3
TURN_CHANNEL = 4
RTP = 5
RTCP = 6
SIP = 7

CLASS_NAMES = ("other", "stun", "zrtp", "dtls", "turn-channel", "rtp", "rtcp", "sip")

# RFC 7983 §7 first-byte ranges (inclusive)
STUN_FIRST = (0, 3)
ZRTP_FIRST = (16, 19)
DTLS_FIRST = (20, 63)
TURN_CHANNEL_FIRST = (64, 79)
RTP_FIRST = (128, 191)
RTCP_SECOND = (192, 223)  # RFC 5761 §4: RTCP packet types 192-223 in byte 1

STUN_MAGIC_COOKIE = 0x2112A442  # RFC 5389 §6
ZRTP_MAGIC_COOKIE = 0x5A525450  # RFC 6189 §5: "ZRTP" in bytes 4-7
STUN_HEADER_LEN = 20  # RFC 5389 §6
CHANNEL_DATA_HEADER_LEN = 4  # RFC 5766 §11.4
DTLS_VERSION_MAJOR = 0xFE  # RFC 6347 §4.1: DTLS 1.0 = {254, 255}, 1.2 = {254, 253}
DTLS_VERSION_MINORS = (0xFF, 0xFD, 0xFC)  # DTLS 1.0, 1.2, 1.3 (RFC 9147 §5.3)
DTLS_RECORD_HEADER_LEN = 13  # RFC 6347 §4.1: type, version, epoch, sequence, length
DTLS_CONTENT_TYPES = (20, 25)  # RFC 6347 §4.1 / RFC 9147: change_cipher_spec .. heartbeat/ack

#: Start lines of SIP requests and responses (RFC 3261 §7.1, §7.2, methods of
#: RFC 3261 §27.4 and its extensions), as the bytes a payload begins with.
SIP_TOKENS = (
    b"SIP/2.0 ",
    b"INVITE ",
    b"ACK ",
    b"BYE ",
    b"CANCEL ",
    b"OPTIONS ",
    b"REGISTER ",
    b"PRACK ",
    b"UPDATE ",
    b"INFO ",
    b"SUBSCRIBE ",
    b"NOTIFY ",
    b"REFER ",
    b"MESSAGE ",
    b"PUBLISH ",
)
SIP_TOKEN_WIDTH = max(len(t) for t in SIP_TOKENS)
_SIP_FIRST_BYTES = np.array(sorted({t[0] for t in SIP_TOKENS}), np.uint8)


def _between(x: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    return (x >= bounds[0]) & (x <= bounds[1])


def gather(data: np.ndarray, start: np.ndarray, avail: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes from ``data`` at each ``start``, zero beyond ``avail`` bytes.

    The vectorised read behind every header decode here: shape (n, width).
    """
    n = start.shape[0]
    if n == 0 or data.size == 0:
        return np.zeros((n, width), np.uint8)
    start = np.asarray(start, np.int64)
    avail = np.asarray(avail, np.int64)
    out = byte_fields(data, start, width)
    # fields that would run past the buffer's end were read from further back:
    # read those byte by byte (bytes past the end repeat the last, masked below)
    shifted = np.flatnonzero(start > data.size - width)
    if shifted.size:
        out[shifted] = data[np.clip(start[shifted, None] + np.arange(width)[None, :], 0, data.size - 1)]
    short = np.flatnonzero(avail < width)
    if short.size:
        out[short] = np.where(np.arange(width)[None, :] < avail[short, None], out[short], 0)
    return out


def _be16(head: np.ndarray, at: int) -> np.ndarray:
    """Big-endian 16-bit field at byte ``at`` of every row, as int64."""
    return np.ascontiguousarray(head[:, at : at + 2]).view(">u2")[:, 0].astype(np.int64)


def _be32(head: np.ndarray, at: int) -> np.ndarray:
    """Big-endian 32-bit field at byte ``at`` of every row, as int64."""
    return np.ascontiguousarray(head[:, at : at + 4]).view(">u4")[:, 0].astype(np.int64)


def classify(head: np.ndarray, length: np.ndarray) -> np.ndarray:
    """RFC 7983 class of each payload (``OTHER``, ``STUN``, ..., ``RTCP``, ``SIP``).

    Parameters
    ----------
    head : uint8, shape (n, >= 20)
        The first payload bytes.
    length : int
        Payload bytes available (captured).

    Returns
    -------
    uint8 array of class codes.
    """
    b0 = head[:, 0]
    b1 = head[:, 1]
    length = np.asarray(length, np.int64)
    out = np.full(b0.shape[0], OTHER, np.uint8)

    cookie = _be32(head, 4)
    stun_len = _be16(head, 2)
    is_stun = (
        _between(b0, STUN_FIRST)
        & (cookie == STUN_MAGIC_COOKIE)
        & (stun_len + STUN_HEADER_LEN <= length)
    )
    out[is_stun] = STUN
    out[_between(b0, ZRTP_FIRST) & (cookie == ZRTP_MAGIC_COOKIE) & (length >= 12)] = ZRTP
    record_len = _be16(head, 11)
    is_dtls = (
        _between(b0, DTLS_CONTENT_TYPES)
        & (b1 == DTLS_VERSION_MAJOR)
        & np.isin(head[:, 2], DTLS_VERSION_MINORS)
        & (record_len + DTLS_RECORD_HEADER_LEN <= length)
    )
    out[is_dtls] = DTLS
    chan_len = stun_len  # the same two bytes
    # RFC 5766 §11.5: over UDP the ChannelData message may omit its padding,
    # so the datagram carries Length bytes plus up to 3 bytes of padding.
    slack = length - CHANNEL_DATA_HEADER_LEN - chan_len
    is_chan = _between(b0, TURN_CHANNEL_FIRST) & (slack >= 0) & (slack < 4) & (chan_len > 0)
    out[is_chan] = TURN_CHANNEL
    rtpish = _between(b0, RTP_FIRST) & (length >= 4)
    out[rtpish & _between(b1, RTCP_SECOND)] = RTCP
    out[rtpish & ~_between(b1, RTCP_SECOND)] = RTP
    out[is_sip(head)] = SIP
    return out


def is_sip(head: np.ndarray) -> np.ndarray:
    """Payloads that begin with a SIP request or status line token (RFC 3261 §7)."""
    n = head.shape[0]
    hit = np.zeros(n, bool)
    if head.shape[1] < SIP_TOKEN_WIDTH:
        return hit
    # only rows starting with a token's first letter are compared in full
    rows = np.flatnonzero(np.isin(head[:, 0], _SIP_FIRST_BYTES))
    sub = head[rows]
    for token in SIP_TOKENS:
        t = np.frombuffer(token, np.uint8)
        hit[rows] |= np.all(sub[:, : t.size] == t[None, :], axis=1)
    return hit
