"""Wireshark's RTP stream analysis (``tshark -z rtp,streams``), vectorised.

A port of ``rtppacket_analyse()`` in Wireshark 4.0 ``ui/tap-rtp-analysis.c``
and of ``rtpstream_info_calculate()`` in ``ui/tap-rtp-common.c``, which
produce the Pkts, Lost, Min/Mean/Max Delta and Min/Mean/Max Jitter columns.
Wireshark runs a per-packet state machine; every state variable it keeps is
either a running maximum, a "last packet that satisfied X" or a linear
recurrence, so the same numbers come out of whole-array numpy operations.

The behaviour reproduced, packet by packet (packet 0 only initialises):

- ``current_time`` is ``frame.time_relative`` in milliseconds.
- *In time sequence*: the packet's RTP timestamp is at most 2^31 ahead of
  the **first** packet's, modulo 2^32. Other packets are flagged
  WRONG_TIMESTAMP and take no part in delta or jitter.
- *Delta*: ``current_time`` minus the arrival time of the last in-time
  packet (any payload type).
- *Clock rate*: static payload types use Wireshark's table (RFC 3551 rates,
  e.g. 8000 for PCMU/PCMA/GSM/G723/G729, 90000 for H.263); dynamic types use
  the SDP rate, and telephone-event (RFC 4733 §2.2.1) and dynamic types
  without SDP use 0, which disables jitter for those packets. Milliseconds are
  ``rtp_ticks / (clock_rate / 1000)`` with **integer** division in C, so
  44100 Hz counts as 44 ticks per millisecond.
- *Jitter* (RFC 3550 §6.4.1 / A.8, in ms): for in-time packets with a clock
  rate, ``D = |t - (t_last + (nominal - nominal_last))|`` and
  ``J = (15 J + D) / 16`` where ``t_last`` is the arrival of the last
  in-time packet and ``nominal_last`` the nominal time of the last in-time
  packet *with a clock rate*: an interleaved telephone-event packet moves
  ``t_last`` but not ``nominal_last``.
- *Regular* packets, the only ones in the min/mean/max columns: not the
  first, no marker bit, not comfort noise (PT 13 or 19), not following a
  comfort-noise packet, in time sequence. Jitter columns also need a clock
  rate for that packet.
- *Means*: Wireshark updates ``mean = (mean * (total_nr - 1) + x) / total_nr``
  where ``total_nr`` counts every earlier packet of the stream, regular or
  not; so the mean equals the plain mean of the N - 1 deltas when every
  packet is regular, and is slightly different otherwise. Reproduced exactly.
- *Expected* ``= stop_seq + 65536 * seq_cycles - start_seq + 1`` where
  ``start_seq`` is the first packet's number, ``stop_seq`` the **last**
  packet's (capture order) and ``seq_cycles`` counts wraps: it increments when
  an in-time packet's number drops below ``start_seq`` (or goes 65535 -> 0)
  while not already "under", and "under" clears when an in-time packet's
  number rises above ``start_seq`` again. *Lost* ``= expected - packets``,
  negative after duplicates, meaningless after a sequence restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from callscope._numerics.recurrence import exponential_average
from callscope.metrics.smoothing import RFC3550_JITTER_GAIN

#: Wireshark's ``clock_map[]`` (ui/tap-rtp-analysis.c): RTP clock rates of the
#: static payload types, from RFC 3551 §6 / the IANA RTP parameters registry.
STATIC_CLOCK_RATES: dict[int, int] = {
    0: 8000,  # PCMU
    1: 8000,  # 1016
    2: 8000,  # G721
    3: 8000,  # GSM
    4: 8000,  # G723
    5: 8000,  # DVI4 8000
    6: 16000,  # DVI4 16000
    7: 8000,  # LPC
    8: 8000,  # PCMA
    9: 8000,  # G722 (RFC 3551 §4.5.2: 8000 for historic reasons)
    10: 44100,  # L16 stereo
    11: 44100,  # L16 mono
    12: 8000,  # QCELP
    13: 8000,  # CN
    14: 90000,  # MPA
    15: 8000,  # G728
    16: 11025,  # DVI4 11025
    17: 22050,  # DVI4 22050
    18: 8000,  # G729
    19: 8000,  # CN (old)
    25: 90000,  # CelB
    26: 90000,  # JPEG
    28: 90000,  # nv
    31: 90000,  # H261
    32: 90000,  # MPV
    33: 90000,  # MP2T
    34: 90000,  # H263
}
PT_CN = 13  # RFC 3389 comfort noise
PT_CN_OLD = 19  # reserved, formerly CN (Wireshark's PT_CN_OLD)
FIRST_DYNAMIC_PT = 96  # RFC 3551 §6
_HALF_TS = 1 << 31  # "in time sequence": within 2^31 ticks ahead of the first packet

_STATIC_TABLE = np.zeros(256, np.int64)
for _pt, _rate in STATIC_CLOCK_RATES.items():
    _STATIC_TABLE[_pt] = _rate


@dataclass(frozen=True)
class WiresharkStats:
    """What ``tshark -z rtp,streams`` prints for one stream, plus per-packet state.

    Scalars follow the column names. ``min_delta_ms`` / ``min_jitter_ms`` are
    -1 and the means / maxima 0 when no packet qualified, as in Wireshark.
    Per packet (capture order): ``delta_ms`` (Wireshark's delta, NaN for the
    first and for out-of-time packets), ``jitter_ms`` (Wireshark's running
    jitter state after the packet), ``regular`` (counted in the columns),
    ``in_time`` (not WRONG_TIMESTAMP).
    """

    packets: int
    expected: int
    lost: int
    seq_cycles: int
    min_delta_ms: float
    mean_delta_ms: float
    max_delta_ms: float
    min_jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float
    max_delta_frame: int
    jitter_known: bool
    delta_ms: np.ndarray
    jitter_ms: np.ndarray
    regular: np.ndarray
    in_time: np.ndarray


def packet_clock_rates(
    pt: np.ndarray, stream_pt: int | None, stream_clock: int | None
) -> np.ndarray:
    """Clock rate Wireshark would use for each packet (0: none, no jitter).

    Static payload types use Wireshark's table, whatever the stream says.
    Packets of the stream's own dynamic payload type use ``stream_clock``
    (SDP, Opus's fixed 48 kHz or inference: the media stage says which),
    where Wireshark uses the SDP rate and, with no SDP, nothing (it then shows
    no jitter). Other dynamic types (telephone-event, RFC 4733 §2.2.1, whose
    timestamp does not advance) get 0, as in Wireshark.
    """
    pt = np.asarray(pt).astype(np.int64)
    own_clock = int(stream_clock) if stream_clock else 0
    own = stream_pt is not None and stream_pt >= FIRST_DYNAMIC_PT and bool(own_clock)
    if pt.size and (pt == pt[0]).all():  # one payload type, the usual case
        p = int(pt[0])
        rate = 0 if p >= FIRST_DYNAMIC_PT else int(_STATIC_TABLE[min(p, 255)])
        return np.full(pt.size, own_clock if own and p == stream_pt else rate, np.int64)
    rates = np.where(pt >= FIRST_DYNAMIC_PT, 0, _STATIC_TABLE[np.minimum(pt, 255)])
    if own:
        rates = np.where(pt == stream_pt, own_clock, rates)
    return rates


def wireshark_running_mean(values: np.ndarray, total_nr: np.ndarray) -> float:
    """Final value of Wireshark's ``m = (m * (n - 1) + x) / n`` over ``values``.

    ``total_nr`` holds ``n`` (the count of earlier packets) for each value.
    Solved in closed form: ``m = sum_k x_k / n_k * prod_{j > k} (n_j - 1) / n_j``,
    the products taken in log space (the factor of an ``n = 1`` term is
    irrelevant since the mean starts at 0).
    """
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return 0.0
    # an elementwise sum, not np.dot: BLAS threads stall on a busy machine
    return float(np.sum(_running_mean_weights(total_nr) * x))


def _running_mean_weights(total_nr: np.ndarray, increasing: bool = False) -> np.ndarray:
    """Weight of each value in :func:`wireshark_running_mean` (depends on ``total_nr`` only).

    ``increasing``: the counts are strictly increasing integers (packet
    indices), so ``1, 2, .., m`` can be recognised from the two ends.
    """
    n = np.asarray(total_nr, np.float64)
    if n.size == 0:
        return n
    k = np.asarray(total_nr)
    if k.dtype.kind in "iu" and k.min() >= 0 and k.max() < _LOG_DECAY_TABLE_MAX:
        size = 1 << max(10, int(k.max()).bit_length())
        if increasing and k[0] == 1 and k[-1] == k.size:
            # every packet after the first: a prefix of the table's running sums
            w = _log_decay_running_sums(size)[: k.size].copy()
        else:
            w = np.cumsum(_log_decay_table(size)[k])
    else:
        w = np.cumsum(_log_decay(n))
    np.subtract(w[-1], w, out=w)
    np.exp(w, out=w)
    w /= n
    return w


def _log_decay(n: np.ndarray) -> np.ndarray:
    """``log((n - 1) / n)`` of each count ``n``, 0 where ``n <= 1``."""
    with np.errstate(divide="ignore"):
        return np.where(n > 1, np.log((n - 1) / np.where(n > 1, n, 2)), 0.0)


#: Longest table of :func:`_log_decay` kept (1 MB); longer streams compute it.
_LOG_DECAY_TABLE_MAX = 1 << 17


@lru_cache(maxsize=8)
def _log_decay_table(size: int) -> np.ndarray:
    """:func:`_log_decay` of ``0 .. size - 1``: a stream's counts are looked up,
    not taken logarithms of again (the same elementwise values)."""
    with np.errstate(invalid="ignore"):  # log of -1/2 at n = 0, masked out
        table = _log_decay(np.arange(size, dtype=np.float64))
    table.flags.writeable = False
    return table


@lru_cache(maxsize=8)
def _log_decay_running_sums(size: int) -> np.ndarray:
    """Running sums of :func:`_log_decay` over ``1 .. size - 1``, in that order:
    the sums of every prefix, as ``cumsum`` of the prefix would add them."""
    sums = np.cumsum(_log_decay_table(size)[1:])
    sums.flags.writeable = False
    return sums


def _last_index_before(mask: np.ndarray) -> np.ndarray:
    """For each i, the largest j < i with ``mask[j]`` (0 if none; mask[0] assumed true)."""
    n = mask.size
    idx = np.where(mask, np.arange(n), 0)
    last_incl = np.maximum.accumulate(idx)
    out = np.zeros(n, np.int64)
    out[1:] = last_incl[:-1]
    return out


def analyze(
    time_s: np.ndarray,
    seq: np.ndarray,
    ts: np.ndarray,
    pt: np.ndarray,
    marker: np.ndarray,
    clock: np.ndarray,
    frame: np.ndarray | None = None,
) -> WiresharkStats:
    """Wireshark 4.0's ``rtp,streams`` figures for one stream (see module docstring).

    Parameters
    ----------
    time_s : float64
        Arrival times, seconds since the capture's first frame.
    seq, ts, pt, marker :
        RTP header columns in capture order.
    clock : int64
        Clock rate per packet (:func:`packet_clock_rates`), 0 for none.
    frame : int64, optional
        Frame numbers, to report where the maximum delta occurred.

    Returns
    -------
    WiresharkStats
    """
    n = int(np.asarray(seq).size)
    t = np.asarray(time_s, np.float64) * 1000.0
    seq = np.asarray(seq).astype(np.int64)
    ts = np.asarray(ts)
    if ts.dtype.kind not in "iu":
        ts = ts.astype(np.int64)
    pt = np.asarray(pt)
    marker = np.asarray(marker, bool)
    clock = np.asarray(clock).astype(np.int64)
    if n == 0:
        nan = np.zeros(0)
        empty = np.zeros(0, bool)
        return WiresharkStats(0, 0, 0, 0, -1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0, False,
                              nan, nan, empty, empty)  # fmt: skip

    # In time sequence: relative to the first packet's timestamp, modulo 2^32.
    # (differences taken in uint32 wrap modulo 2^32 by themselves)
    ts32 = ts.astype(np.uint32, copy=False)
    rel = (ts32 - ts32[0]).astype(np.int64)
    # Wireshark compares ``rel - 1`` instead when the timestamp is below the
    # first's: that admits rel == 2^31 too.
    every_in_time = bool(rel.max() < _HALF_TS)
    if every_in_time:
        in_time = np.ones(n, bool)
    else:
        in_time = rel < _HALF_TS
        edge = np.flatnonzero(rel == _HALF_TS)
        in_time[edge] = ts[edge] < ts[0]
        in_time[0] = True
        every_in_time = bool(in_time.all())

    # Delta against the last in-time packet's arrival (the previous packet
    # when every packet is in time, the usual case).
    t_ref = None
    if every_in_time:
        delta = np.empty(n)
        np.subtract(t[1:], t[:-1], out=delta[1:])
    else:
        ref = _last_index_before(in_time)
        t_ref = t[ref]
        delta = np.where(in_time, t - t_ref, np.nan)
    delta[0] = np.nan

    # Jitter over in-time packets that have a clock rate.
    one_clock = bool(clock[0] != 0 and (clock == clock[0]).all())
    has_clock = np.ones(n, bool) if one_clock else clock != 0
    if one_clock:  # no masking
        nominal = rel / float(max(int(clock[0]) // 1000, 1))  # C integer division
    else:
        divisor = np.maximum(clock // 1000, 1).astype(np.float64)  # C integer division
        nominal = np.where(has_clock, rel / divisor, 0.0)
    if every_in_time and (one_clock or has_clock[1:].all()):
        # Every packet after the first takes part: the previous packet's
        # arrival and nominal time are the references.
        d = t[:-1] + nominal[1:]
        d -= nominal[:-1]
        np.subtract(t[1:], d, out=d)
        np.abs(d, out=d)
        jitter = np.concatenate([[0.0], exponential_average(d, RFC3550_JITTER_GAIN)])
    else:
        if t_ref is None:
            t_ref = np.concatenate([t[:1], t[:-1]])
        jit_mask = in_time & has_clock
        jit_mask[0] = False
        nominal_member = jit_mask.copy()
        nominal_member[0] = True  # lastnominaltime starts at 0 = nominal of packet 0
        last_nom = nominal[_last_index_before(nominal_member)]
        idx = np.flatnonzero(jit_mask)
        d = np.abs(t[idx] - (t_ref[idx] + nominal[idx] - last_nom[idx]))
        j_at = exponential_average(d, RFC3550_JITTER_GAIN)
        jitter = np.zeros(n)
        if idx.size:
            hold = np.zeros(n, np.int64)
            hold[idx] = np.arange(1, idx.size + 1)
            hold = np.maximum.accumulate(hold)
            jitter = np.where(hold > 0, np.concatenate([[0.0], j_at])[hold], 0.0)
        jitter[0] = 0.0

    # Regular packets.
    regular = in_time & ~marker
    if pt[0] in (PT_CN, PT_CN_OLD) or not (pt == pt[0]).all():  # comfort noise possible
        cn = (pt == PT_CN) | (pt == PT_CN_OLD)
        regular &= ~cn
        regular[1:] &= ~cn[:-1]  # not following comfort noise
    regular[0] = False

    # Packets processed before each regular one are its index (total_nr).
    reg = np.flatnonzero(regular)
    weights = _running_mean_weights(reg, increasing=True)
    if reg.size:
        dreg = delta[reg]
        k = int(np.argmax(dreg))
        max_delta = max(0.0, float(dreg[k]))
        max_frame = int(frame[reg[k]]) if frame is not None and dreg[k] > 0 else 0
        min_delta = float(dreg.min())
        mean_delta = float(np.sum(weights * dreg))
    else:
        max_delta, max_frame, min_delta, mean_delta = 0.0, 0, -1.0, 0.0
    regj = reg if one_clock else reg[has_clock[reg]]
    if regj.size:
        jreg = jitter[regj]
        max_jitter = max(0.0, float(jreg.max()))
        min_jitter = float(jreg.min())
        if regj.size != reg.size:
            weights = _running_mean_weights(regj, increasing=True)
        mean_jitter = float(np.sum(weights * jreg))
    else:
        max_jitter, min_jitter, mean_jitter = 0.0, -1.0, 0.0

    # Sequence cycles: a two-state machine ("under") driven by in-time
    # packets; only the packets that move it (its events) matter.
    start = seq[0]
    seq_cycles = 0
    # "under" needs a number below the start, or 65535 -> 0 (only not below a start of 0)
    if start == 0 or seq.min() < start:
        go_under = seq < start
        go_under[1:] |= (seq[1:] == 0) & (seq[:-1] == 65535)
        go_under &= in_time
        go_under[0] = False
    else:
        go_under = None
    if go_under is not None and go_under.any():
        go_over = (seq > start) & in_time
        moves = np.flatnonzero(go_under | go_over)
        under = go_under[moves]  # else over
        was_under = np.concatenate([[False], under[:-1]])
        seq_cycles = int(np.count_nonzero(under & ~was_under))
    expected = int(seq[-1] + 65536 * seq_cycles - start + 1)

    return WiresharkStats(
        packets=n,
        expected=expected,
        lost=expected - n,
        seq_cycles=seq_cycles,
        min_delta_ms=min_delta,
        mean_delta_ms=mean_delta,
        max_delta_ms=max_delta,
        min_jitter_ms=min_jitter,
        mean_jitter_ms=mean_jitter,
        max_jitter_ms=max_jitter,
        max_delta_frame=max_frame,
        jitter_known=bool(regj.size),
        delta_ms=delta,
        jitter_ms=jitter,
        regular=regular,
        in_time=in_time,
    )
