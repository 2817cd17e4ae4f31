"""When a voice sender emits its packets, and how big they are.

A real sender's clock is not perfect: each packet leaves a little early or
late (normal, sigma of a few tenths of a millisecond), and now and then the
operating system deschedules the audio thread for tens of milliseconds, after
which the frames that piled up go out back to back. RTP timestamps stay on
the nominal media clock: that difference is what jitter measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.synth.codecs import Codec

#: Spacing of frames flushed back to back after a scheduling hiccup, seconds.
BURST_SPACING_S = 50e-6


@dataclass(frozen=True)
class MediaSchedule:
    """One direction's voice frames, in send order.

    Attributes
    ----------
    time : float64
        Send times, seconds since the capture start.
    payload : int32
        Codec payload bytes of each frame.
    ts_offset : int64
        RTP timestamp of each frame minus the first one's, in clock units.
    ptime_ms : float64
        Packetization interval of each frame.
    adapted : bool
        Frames sent after the codec adaptation (all False without one).
    """

    time: np.ndarray
    payload: np.ndarray
    ts_offset: np.ndarray
    ptime_ms: np.ndarray
    adapted: np.ndarray

    def __len__(self) -> int:
        return int(self.time.shape[0])


@dataclass(frozen=True)
class Sender:
    """How a voice sender packetizes its frames and how well it keeps time.

    Attributes
    ----------
    codec : Codec
    ptime_ms : float
        Packetization interval (RFC 3551 §4.2; the RTP timestamp advances by
        ``clock_rate * ptime`` per packet, RFC 3550 §5.1).
    mean_bytes_20ms : float
        Mean payload per 20 ms for variable-rate codecs.
    clock_jitter_s : float
        Standard deviation of the send-time error.
    hiccups_per_s : float
        Rate of scheduling stalls (Poisson); each holds the sender 5-40 ms.
    """

    codec: Codec
    ptime_ms: float
    mean_bytes_20ms: float
    clock_jitter_s: float
    hiccups_per_s: float


@dataclass(frozen=True)
class Adaptation:
    """A codec adaptation: from ``at_s`` on, frames of ``ptime_ms`` (unchanged
    when None) and payloads scaled by ``size_factor``."""

    at_s: float
    ptime_ms: float | None
    size_factor: float


def media_schedule(
    rng: np.random.Generator, sender: Sender, start: float, end: float, change: Adaptation | None = None
) -> MediaSchedule:
    """Frames from ``start`` to ``end`` (seconds) at the sender's ptime, optionally
    re-packetized by ``change``."""
    codec, ptime_ms = sender.codec, sender.ptime_ms
    change_at = None if change is None else change.at_s
    ptime_after_ms = None if change is None else change.ptime_ms
    size_factor_after = 1.0 if change is None else change.size_factor
    codec.check_ptime(ptime_ms)
    if ptime_after_ms is not None:
        codec.check_ptime(ptime_after_ms)
    p1 = ptime_ms / 1e3
    clock_per_s = codec.clock_rate
    if change_at is None or change_at >= end:
        n1 = max(0, int(np.ceil((end - start) / p1)))
        n2, p2 = 0, p1
    else:
        n1 = max(0, int(np.ceil((change_at - start) / p1)))
        p2 = (ptime_after_ms or ptime_ms) / 1e3
        n2 = max(0, int(np.ceil((end - (start + n1 * p1)) / p2)))
    k1 = np.arange(n1)
    k2 = np.arange(n2)
    nominal = np.concatenate([start + k1 * p1, start + n1 * p1 + k2 * p2])
    step1 = int(round(clock_per_s * p1))
    step2 = int(round(clock_per_s * p2))
    ts_offset = np.concatenate([k1 * step1, n1 * step1 + k2 * step2]).astype(np.int64)
    ptimes = np.concatenate([np.full(n1, p1 * 1e3), np.full(n2, p2 * 1e3)])
    payload = codec.frame_sizes(rng, ptimes, sender.mean_bytes_20ms)
    if n2:
        payload[n1:] = np.maximum(1, np.rint(payload[n1:] * size_factor_after)).astype(np.int32)
    time = _send_times(rng, sender, nominal, start, end)
    return MediaSchedule(time, payload, ts_offset, ptimes, np.arange(n1 + n2) >= n1)


def _send_times(
    rng: np.random.Generator, sender: Sender, nominal: np.ndarray, start: float, end: float
) -> np.ndarray:
    """When each frame actually leaves: the nominal time plus clock error, held
    back by scheduling stalls, never before ``start`` and never out of order."""
    time = nominal + rng.normal(0.0, sender.clock_jitter_s, nominal.size)
    for h in rng.uniform(start, end, rng.poisson(sender.hiccups_per_s * (end - start))):
        stall = rng.uniform(0.005, 0.040)
        held = (nominal >= h) & (nominal < h + stall)
        time[held] = h + stall + BURST_SPACING_S * np.arange(np.count_nonzero(held))
    return np.maximum.accumulate(np.maximum(time, start))
