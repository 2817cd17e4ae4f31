"""Playout (jitter) buffer simulation: which packets would arrive too late.

Works on the relative one-way delay of each received media packet (ms,
:mod:`callscope.metrics.relative_delay`), i.e. how much later than its RTP timestamp
says it should. A packet is discarded when its delay exceeds the playout
delay the buffer has chosen for it.

- Fixed buffer: playout delay = delay of the first packet of the current
  talkspurt + ``FIXED_BUFFER_MS``. A talkspurt starts at the first packet and
  at every packet with the marker bit (RFC 3551 §4.1), where receivers
  re-anchor their playout point (Ramjee et al. 1994, §2).
- Adaptive buffer: Ramjee, Kurose, Towsley & Schulzrinne, "Adaptive playout
  mechanisms for packetized audio applications in wide-area networks",
  INFOCOM 1994, Algorithm 1: ``d = a d + (1 - a) n``,
  ``v = a v + (1 - a) |d - n|``, playout delay ``d + 4 v`` with
  ``a = 0.998002``. We apply it per packet (each packet is judged against
  the estimate formed from the packets before it) rather than only at
  talkspurt starts, because many captured streams carry no marker bits; the
  estimate starts at the first packet's delay with ``v`` such that the
  initial buffer equals the fixed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope._numerics.recurrence import scaled_recurrence

FIXED_BUFFER_MS = 60.0  # a common default playout buffer for VoIP endpoints
RAMJEE_ALPHA = 0.998002  # Ramjee et al. 1994, Algorithm 1
RAMJEE_BETA = 4.0  # Ramjee et al. 1994, Algorithm 1: safety factor on the variation


@dataclass(frozen=True)
class JitterBufferResult:
    """Late discards of both buffers.

    ``late_fixed`` / ``late_adaptive`` are per packet (bool, in the order of
    the delays given); ``fixed_delay_ms`` / ``adaptive_delay_ms`` are the mean
    playout delays the buffers chose (relative delay scale, ms above the
    fastest packet).
    """

    late_fixed: np.ndarray
    late_adaptive: np.ndarray
    fixed_delay_ms: float
    adaptive_delay_ms: float

    @property
    def late_fixed_count(self) -> int:
        return int(np.count_nonzero(self.late_fixed))

    @property
    def late_adaptive_count(self) -> int:
        return int(np.count_nonzero(self.late_adaptive))


def simulate(
    delay_ms: np.ndarray,
    talkspurt_start: np.ndarray | None = None,
    fixed_ms: float = FIXED_BUFFER_MS,
) -> JitterBufferResult:
    """Simulate a fixed and an adaptive playout buffer over the packets' delays.

    Parameters
    ----------
    delay_ms : float64
        Relative one-way delay of each received media packet, arrival order
        (no NaN: leave out packets without a media clock and duplicates).
    talkspurt_start : bool, optional
        Marker bits of those packets (re-anchor the fixed buffer).
    fixed_ms : float
        Size of the fixed buffer.

    Examples
    --------
    >>> r = simulate(np.array([0.0, 10, 70, 5, 0]))
    >>> r.late_fixed.tolist()
    [False, False, True, False, False]
    """
    n = np.asarray(delay_ms, np.float64)
    if n.size == 0:
        z = np.zeros(0, bool)
        return JitterBufferResult(z, z, 0.0, 0.0)
    start = np.zeros(n.size, bool) if talkspurt_start is None else np.asarray(talkspurt_start, bool)
    # the first packet of each talkspurt anchors the fixed buffer
    spurts = np.flatnonzero(start[1:]) + 1
    if spurts.size:
        anchor = np.repeat(np.concatenate([[0], spurts]), np.diff(np.concatenate([[0], spurts, [n.size]])))
        fixed_playout = n[anchor] + fixed_ms
    else:
        fixed_playout = np.full(n.size, n[0] + fixed_ms)
    late_fixed = n > fixed_playout

    a = RAMJEE_ALPHA
    d0 = n[0]
    v0 = fixed_ms / RAMJEE_BETA
    d_hat = scaled_recurrence(n, 1 - a, a, d0)
    error = d_hat - n
    np.abs(error, out=error)
    v_hat = scaled_recurrence(error, 1 - a, a, v0)
    # each packet is judged by the estimates from the packets before it
    playout = np.empty(n.size)
    playout[0] = d0 + RAMJEE_BETA * v0
    np.multiply(v_hat[:-1], RAMJEE_BETA, out=playout[1:])
    playout[1:] += d_hat[:-1]
    late_adaptive = n > playout
    return JitterBufferResult(
        late_fixed=late_fixed,
        late_adaptive=late_adaptive,
        fixed_delay_ms=float(fixed_playout.mean()),
        adaptive_delay_ms=float(playout.mean()),
    )
