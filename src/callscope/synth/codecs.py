"""The codecs a simulated call can use: payload type, clock rate, payload sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.errors import CallscopeError

DEFAULT_PTIME_MS = 20  # RFC 3551 §4.2: default packetization interval for audio
#: Bytes added by an opaque (encrypted, header-less) messenger protocol to each
#: voice frame: a short header/nonce plus an authentication tag.
OPAQUE_OVERHEAD_BYTES = 24


@dataclass(frozen=True)
class Codec:
    """One audio codec as it appears on the wire.

    Attributes
    ----------
    name : str
        callscope's name (``pcmu``, ``pcma``, ``g729``, ``opus``).
    encoding : str
        The SDP encoding name of ``a=rtpmap`` (RFC 4566 §6).
    payload_type : int
        RTP payload type (static per RFC 3551 §6 Table 4, or dynamic).
    clock_rate : int
        RTP timestamp clock rate in Hz.
    channels : int
        The encoding-parameters of ``a=rtpmap`` (Opus always signals 2, RFC 7587 §7).
    bytes_per_ms : float
        Payload bytes per millisecond of audio for constant-bit-rate codecs;
        zero for variable-bit-rate ones.
    vbr_mean_bytes : tuple of float
        For VBR codecs, the range the per-call mean payload per 20 ms is drawn from.
    frame_ms : tuple of int
        The packetization intervals allowed; empty means multiples of 10 ms
        (G.711 and G.729 both divide into 10 ms frames).
    """

    name: str
    encoding: str
    payload_type: int
    clock_rate: int
    channels: int = 1
    bytes_per_ms: float = 0.0
    vbr_mean_bytes: tuple[float, float] = (0.0, 0.0)
    frame_ms: tuple[int, ...] = ()

    def check_ptime(self, ptime_ms: float) -> None:
        """Raise unless packets of ``ptime_ms`` can carry whole frames of this codec."""
        ok = ptime_ms in self.frame_ms if self.frame_ms else ptime_ms > 0 and ptime_ms % 10 == 0
        if not ok or ptime_ms > 200:
            allowed = ", ".join(map(str, self.frame_ms)) if self.frame_ms else "a multiple of 10 up to 200"
            raise CallscopeError(f"{self.name} cannot packetize {ptime_ms} ms; ptime must be {allowed}")

    @property
    def rtpmap(self) -> str:
        """The value of the SDP ``a=rtpmap`` attribute (RFC 4566 §6)."""
        enc = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return enc + (f"/{self.channels}" if self.channels > 1 else "")

    @property
    def variable_rate(self) -> bool:
        return self.bytes_per_ms == 0.0

    def frame_sizes(
        self, rng: np.random.Generator, ptime_ms: np.ndarray, mean_bytes_20ms: float
    ) -> np.ndarray:
        """Payload sizes of frames of ``ptime_ms`` milliseconds each.

        CBR codecs: exactly ``bytes_per_ms * ptime``. VBR (Opus): normal around
        the call's mean scaled by ptime, 12 % spread, clipped to [0.5, 1.6] x mean.
        """
        ptime_ms = np.asarray(ptime_ms, np.float64)
        if not self.variable_rate:
            return np.rint(self.bytes_per_ms * ptime_ms).astype(np.int32)
        mean = mean_bytes_20ms * ptime_ms / DEFAULT_PTIME_MS
        size = rng.normal(mean, 0.12 * mean)
        return np.rint(np.clip(size, 0.5 * mean, 1.6 * mean)).astype(np.int32)


CODECS: dict[str, Codec] = {
    # RFC 3551 §4.5.14 / §6 Table 4: G.711 u-law, PT 0, 8 kHz, 8 bits per sample.
    "pcmu": Codec("pcmu", "PCMU", 0, 8000, bytes_per_ms=8.0),
    # RFC 3551 §4.5.14 / §6 Table 4: G.711 A-law, PT 8.
    "pcma": Codec("pcma", "PCMA", 8, 8000, bytes_per_ms=8.0),
    # RFC 3551 §4.5.6 / §6 Table 4: G.729, PT 18, 10-byte frames every 10 ms.
    "g729": Codec("g729", "G729", 18, 8000, bytes_per_ms=1.0),
    # RFC 7587 §4.1, §7: Opus, dynamic PT (111 as WebRTC offers it), 48 kHz clock,
    # ~24-40 kbit/s for wideband voice -> 60-100 bytes per 20 ms.
    # RFC 6716 §2.1.4: frames of 2.5-60 ms; softphones send 10, 20, 40 or 60 ms per packet.
    "opus": Codec("opus", "opus", 111, 48000, channels=2, vbr_mean_bytes=(60.0, 100.0),
                  frame_ms=(10, 20, 40, 60)),
}


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (case-insensitive)."""
    try:
        return CODECS[name.lower()]
    except KeyError:
        raise CallscopeError(
            f"unknown codec {name!r}; choose one of {', '.join(sorted(CODECS))}"
        ) from None
