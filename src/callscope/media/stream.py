"""What the media stage hands to metrics: one voice stream and its packets.

A :class:`MediaStream` is one direction of media: for RTP, one SSRC on one
5-tuple (Wireshark's notion of a stream); for opaque encrypted media, one
5-tuple. Its packets are parallel numpy arrays in arrival (capture) order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PacketSeries:
    """Per-packet columns of one stream, in capture order.

    Attributes
    ----------
    frame : int64
        Frame numbers in the capture (1-based).
    time : float64
        Arrival time in seconds since the capture's first frame (Wireshark's
        ``frame.time_relative``).
    size : int32
        UDP payload bytes (on the wire, from the UDP header).
    seq : uint16 or None
        RTP sequence numbers; None for opaque media.
    ts : uint32 or None
        RTP timestamps; None for opaque media.
    pt : uint8 or None
        RTP payload types; None for opaque media.
    marker : bool or None
        RTP marker bits; None for opaque media.
    """

    frame: np.ndarray
    time: np.ndarray
    size: np.ndarray
    seq: np.ndarray | None = None
    ts: np.ndarray | None = None
    pt: np.ndarray | None = None
    marker: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True)
class MediaStream:
    """One direction of media and everything known about it.

    ``clock_source`` says where ``clock_rate`` came from: ``"sdp"``,
    ``"static"`` (RFC 3551 payload-type table), ``"opus"`` (always 48 kHz,
    RFC 7587 §4.1), ``"inferred"`` (timestamp increments against arrival
    time) or ``"unknown"``.
    """

    id: str
    kind: str  # "rtp" or "opaque"
    src: str
    src_port: int
    dst: str
    dst_port: int
    packets: PacketSeries
    ssrc: int | None = None
    payload_type: int | None = None
    codec: str | None = None
    clock_rate: int | None = None
    clock_source: str = "unknown"
    transport: str = "udp"  # "udp", "turn-channel", "turn-send", "turn-data"
    peer: tuple[str, int] | None = None  # the relayed peer for media carried in TURN
    encrypted: bool = False  # SRTP (payload opaque) or opaque media
    call_id: str | None = None  # SIP Call-ID when signalled
    notes: tuple[str, ...] = field(default_factory=tuple)
    ttl: tuple[int, int] | None = None  # lowest, highest IP TTL / hop limit of its packets (None: unknown)

    @property
    def label(self) -> str:
        who = f"{self.src}:{self.src_port} -> {self.dst}:{self.dst_port}"
        if self.ssrc is not None:
            who += f" ssrc=0x{self.ssrc:08X}"
        return who
