"""Per-window time series of one stream: what plots and change-point detection read.

Windows are ``window_s`` long and start at the stream's first packet. A
packet belongs to the window of its arrival time; a lost packet to the window
of the time it would have arrived (interpolated from its neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Most windows one stream's series may have. A stream whose packets span more
#: (a clock jump in a corrupt or merged capture puts one packet years away) gets
#: wider windows instead of an array of billions; ``Timeline.window_s`` says
#: which width was used.
MAX_WINDOWS = 200_000
#: A stream's series has at most this many windows per packet it holds (but
#: never fewer than :data:`MIN_WINDOW_BUDGET`): a few packets scattered over
#: days (a clock jump, streams years apart) get wide windows, so the series --
#: and the JSON document carrying them -- grow with the packets present, not
#: with the time they span.
WINDOWS_PER_PACKET = 4
MIN_WINDOW_BUDGET = 1000


def window_width(span_s: float, window_s: float, packets: int | None = None) -> float:
    """``window_s``, widened so that ``span_s`` holds fewer windows than the budget.

    The budget is :data:`MAX_WINDOWS`; with ``packets`` given, also
    ``max(MIN_WINDOW_BUDGET, WINDOWS_PER_PACKET * packets)``.
    """
    budget = MAX_WINDOWS
    if packets is not None:
        budget = min(budget, max(MIN_WINDOW_BUDGET, WINDOWS_PER_PACKET * int(packets)))
    if not span_s / window_s < budget:
        return span_s / (budget - 1)
    return window_s


@dataclass(frozen=True)
class Timeline:
    """One value per window; NaN where a window has nothing to measure.

    Attributes
    ----------
    start_s : float64
        Window start, seconds since the capture's first frame.
    packets : int64
        Packets received (every copy).
    expected : int64
        Packets sent in the window as far as the sequence tells (received
        slots plus lost ones).
    lost : int64
        Packets never received.
    loss_fraction : float64
        ``lost / expected``.
    jitter_ms : float64
        Mean of the packets' running RFC 3550 jitter (Wireshark's).
    delay_ms : float64
        Mean relative one-way delay.
    bitrate_kbps : float64
        UDP payload bits per second / 1000.
    mos : float64
        E-model MOS for the window's loss (codec and delay as for the stream).
    """

    window_s: float
    start_s: np.ndarray
    packets: np.ndarray
    expected: np.ndarray
    lost: np.ndarray
    loss_fraction: np.ndarray
    jitter_ms: np.ndarray
    delay_ms: np.ndarray
    bitrate_kbps: np.ndarray
    mos: np.ndarray


def window_index(time_s: np.ndarray, t0: float, window_s: float, n_windows: int) -> np.ndarray:
    """Window of each time (clipped into ``0 .. n_windows - 1``)."""
    x = np.asarray(time_s, np.float64) - t0
    x /= window_s
    k = np.floor(x, out=x).astype(np.int64)
    np.maximum(k, 0, out=k)
    return np.minimum(k, max(n_windows - 1, 0), out=k)


def _window_mean(idx: np.ndarray, values: np.ndarray, n: int, count: np.ndarray) -> np.ndarray:
    """Mean of the finite ``values`` per window; ``count`` is the number of all values per window."""
    ok = np.isfinite(values)
    if ok.all():
        s = np.bincount(idx, weights=values, minlength=n)
        c = count
    else:
        s = np.bincount(idx[ok], weights=values[ok], minlength=n)
        c = np.bincount(idx[ok], minlength=n)
    return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def build_timeline(
    *,
    time_s: np.ndarray,
    size: np.ndarray,
    jitter_ms: np.ndarray,
    delay_ms: np.ndarray,
    lost_time_s: np.ndarray,
    window_s: float,
    mos_of_loss,
    slot_time_s: np.ndarray | None = None,
    slot_packets: np.ndarray | None = None,
) -> Timeline:
    """Bin a stream's packets and slots into windows.

    Parameters
    ----------
    time_s, size, jitter_ms, delay_ms : per received packet
    slot_time_s : float64, optional
        Arrival time of each received slot's first copy.
    slot_packets : bool, optional
        Instead of ``slot_time_s``: which packets are those first copies
        (``slot_time_s = time_s[slot_packets]``); their windows are then the
        packets' own, not computed again. Without either, every packet is
        its slot's first copy (no duplicates).
    lost_time_s : float64
        When each lost slot would have arrived.
    window_s : float
        Window length in seconds (> 0); widened when the stream spans more
        windows than its budget (:func:`window_width`), ``Timeline.window_s``
        then says the width used.
    mos_of_loss : callable
        Vectorised ``loss fraction -> MOS`` (the stream's E-model with only
        the loss varying).
    """
    if not (window_s > 0 and np.isfinite(window_s)):
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s}")
    t = np.asarray(time_s, np.float64)
    if t.size == 0:
        z = np.zeros(0)
        zi = np.zeros(0, np.int64)
        return Timeline(window_s, z, zi, zi, zi, z, z, z, z, z)
    t0 = float(t.min())
    t_end = max(float(t.max()), float(np.max(lost_time_s)) if np.size(lost_time_s) else t0)
    window_s = window_width(t_end - t0, window_s, packets=t.size)
    n = int(np.floor((t_end - t0) / window_s)) + 1
    w_pkt = window_index(t, t0, window_s, n)
    if slot_packets is not None:
        slot_packets = np.asarray(slot_packets, bool)
        w_slot = w_pkt if slot_packets.all() else w_pkt[slot_packets]
    elif slot_time_s is not None:
        w_slot = window_index(slot_time_s, t0, window_s, n)
    else:
        w_slot = w_pkt
    w_lost = window_index(lost_time_s, t0, window_s, n)
    packets = np.bincount(w_pkt, minlength=n).astype(np.int64)
    lost = np.bincount(w_lost, minlength=n).astype(np.int64)
    slot_count = packets if w_slot is w_pkt else np.bincount(w_slot, minlength=n).astype(np.int64)
    expected = slot_count + lost
    measured = expected > 0
    loss_fraction = np.where(measured, lost / np.maximum(expected, 1), np.nan)
    # (bincount sums its weights as float64, whatever their type)
    bitrate = np.bincount(w_pkt, weights=np.asarray(size), minlength=n) * 8 / window_s / 1000
    return Timeline(
        window_s=float(window_s),
        start_s=t0 + window_s * np.arange(n),
        packets=packets,
        expected=expected,
        lost=lost,
        loss_fraction=loss_fraction,
        jitter_ms=_window_mean(w_pkt, np.asarray(jitter_ms, np.float64), n, packets),
        delay_ms=_window_mean(w_pkt, np.asarray(delay_ms, np.float64), n, packets),
        bitrate_kbps=bitrate,
        mos=np.where(measured, mos_of_loss(np.where(measured, loss_fraction, 0.0)), np.nan),
    )
