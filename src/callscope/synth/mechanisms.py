"""The impairment mechanisms, modelled rather than painted on.

Each function takes the packets offered to a network element (arrival times at
the element and sizes, in time order) and returns what the element does to
them. Memoryless mechanisms (Bernoulli loss, a Gilbert-Elliott chain, on/off
windows) are vectorised. A token bucket and a FIFO queue are recurrences in
which every packet's fate depends on the state its predecessor left; they run
as one scalar loop over plain floats (a few hundred nanoseconds per packet),
which is the honest way to model them.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np


def bernoulli_loss(rng: np.random.Generator, n: int, loss: float) -> np.ndarray:
    """Independent losses with probability ``loss`` (boolean mask of lost packets)."""
    return rng.random(n) < loss


def gilbert_elliott(
    rng: np.random.Generator,
    n: int,
    p: float,
    r: float,
    loss_good: float = 0.0,
    loss_bad: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A Gilbert-Elliott two-state Markov loss channel.

    The chain moves good -> bad with probability ``p`` and bad -> good with
    probability ``r`` per packet; a packet is lost with probability
    ``loss_good`` in the good state and ``loss_bad`` in the bad one. The
    stationary loss is ``(r * loss_good + p * loss_bad) / (p + r)`` and the
    mean bad-state sojourn ``1 / r`` packets.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Packets.
    p, r : float
        Transition probabilities per packet, in (0, 1].
    loss_good, loss_bad : float
        Loss probability in each state.

    Returns
    -------
    lost : bool, shape (n,)
    bad : bool, shape (n,)
        The state each packet met.

    Notes
    -----
    Sojourns in each state are geometric (the chain is memoryless), so they
    are drawn all at once and laid end to end rather than stepping the chain
    packet by packet. The first state is drawn from the stationary distribution.

    References
    ----------
    E. N. Gilbert, "Capacity of a burst-noise channel", Bell Syst. Tech. J. 39
    (1960); E. O. Elliott, Bell Syst. Tech. J. 42 (1963); RFC 3611 §4.7.2.
    """
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    start_bad = rng.random() < p / (p + r)
    # Enough alternating sojourns to cover n packets with overwhelming probability;
    # extend in the (rare) case they do not.
    pairs = int(n * p * r / (p + r)) + 16
    bad = np.zeros(0, bool)
    while bad.size < n:
        good_runs = rng.geometric(p, pairs)
        bad_runs = rng.geometric(r, pairs)
        runs = np.empty(2 * pairs, np.int64)
        states = np.empty(2 * pairs, bool)
        if start_bad:
            runs[0::2], runs[1::2] = bad_runs, good_runs
            states[0::2], states[1::2] = True, False
        else:
            runs[0::2], runs[1::2] = good_runs, bad_runs
            states[0::2], states[1::2] = False, True
        bad = np.concatenate([bad, np.repeat(states, runs)])
        start_bad = not bool(bad[-1])
    bad = bad[:n]
    u = rng.random(n)
    lost = np.where(bad, u < loss_bad, u < loss_good)
    return lost, bad


def gilbert_fit(lost: np.ndarray) -> tuple[float, float]:
    """The simple Gilbert model of a loss sequence: ``p`` = P(lost | previous received),
    ``r`` = P(received | previous lost), by counting transitions.

    References
    ----------
    RFC 3611 §4.7.2 (burst/gap model); ITU-T G.107 (the E-model's BurstR = 1 / (p + r)
    for a two-state Markov loss model).
    """
    prev, nxt = lost[:-1], lost[1:]
    received_before = np.count_nonzero(~prev)
    lost_before = np.count_nonzero(prev)
    p = np.count_nonzero(~prev & nxt) / received_before if received_before else 0.0
    r = np.count_nonzero(prev & ~nxt) / lost_before if lost_before else 1.0
    return float(p), float(r)


def token_bucket(
    time: np.ndarray,
    size: np.ndarray,
    rate: float,
    depth: float,
    start: float = -math.inf,
) -> np.ndarray:
    """A token-bucket policer: which packets conform (pass) and which are dropped.

    Tokens (bytes) accrue at ``rate`` up to ``depth``; the bucket is full when
    policing starts at ``start``. A packet of ``size`` bytes passes and takes
    ``size`` tokens if that many are there, otherwise it is dropped (no queue,
    no delay). Packets before ``start`` pass untouched.

    Over any interval of length T the bytes passed are at most
    ``rate * T + depth``.

    Parameters
    ----------
    time : float64, shape (n,)
        Arrival times at the policer, non-decreasing, seconds.
    size : int, shape (n,)
        Bytes each packet counts for.
    rate : float
        Token rate, bytes per second.
    depth : float
        Bucket depth (burst), bytes.
    start : float
        When policing begins.

    Returns
    -------
    bool, shape (n,)
        True where the packet passed.

    References
    ----------
    RFC 2697 §3 (single-rate token bucket, committed burst); Flach et al.,
    "An Internet-wide analysis of traffic policing", SIGCOMM 2016.
    """
    passed = np.ones(len(time), bool)
    tokens = float(depth)
    last = float(start)
    first = int(np.searchsorted(time, start, side="left"))
    t_list = time[first:].tolist()
    s_list = size[first:].tolist()
    for k, (t, s) in enumerate(zip(t_list, s_list, strict=True)):
        tokens = min(depth, tokens + (t - last) * rate)
        last = t
        if s <= tokens:
            tokens -= s
        else:
            passed[first + k] = False
    return passed


def fifo_queue(
    time: np.ndarray,
    size: np.ndarray,
    rate: float,
    buffer: float,
    start: float = -math.inf,
) -> np.ndarray:
    """A drop-tail FIFO queue served at ``rate``: when each packet leaves.

    The backlog (bytes) drains at ``rate``; a packet that would make it exceed
    ``buffer`` is dropped, otherwise it joins and leaves when the backlog in
    front of it and itself have been served (Lindley's recursion). The queueing
    delay is therefore at most ``buffer / rate``. Packets before ``start`` pass
    with no delay (the shaper is not yet in place).

    Parameters
    ----------
    time : float64, shape (n,)
        Arrival times at the queue, non-decreasing, seconds.
    size : int, shape (n,)
        Bytes of each packet.
    rate : float
        Service rate, bytes per second.
    buffer : float
        Buffer size, bytes.
    start : float
        When the queue is put in place.

    Returns
    -------
    float64, shape (n,)
        Departure times; NaN for packets dropped at the tail.

    References
    ----------
    D. V. Lindley, "The theory of queues with a single server", Proc. Camb.
    Phil. Soc. 48 (1952); RFC 7567 §2 (drop-tail queues).
    """
    depart = np.asarray(time, np.float64).copy()
    backlog = 0.0
    last = float(start)
    first = int(np.searchsorted(time, start, side="left"))
    t_list = time[first:].tolist()
    s_list = size[first:].tolist()
    for k, (t, s) in enumerate(zip(t_list, s_list, strict=True)):
        backlog = max(0.0, backlog - (t - last) * rate)
        last = t
        if backlog + s > buffer:
            depart[first + k] = math.nan
        else:
            backlog += s
            depart[first + k] = t + backlog / rate
    return depart


def aimd_bottleneck(
    time: np.ndarray,
    size: np.ndarray,
    capacity: float,
    buffer_packets: int,
    cross_start: float,
    increase: float,
    rtt: float,
    restart_every: float = math.inf,
    cross_packet: int = 1500,
) -> tuple[np.ndarray, int, int]:
    """A drop-tail bottleneck shared with a TCP-like bulk flow.

    From ``cross_start`` a cross-traffic flow sends ``cross_packet``-byte
    packets at a rate x. It begins in slow start (x doubles every ``rtt``,
    from a tenth of the capacity) until its first loss; then x grows by
    ``increase`` bytes/s every second (additive increase). One ``rtt`` after a
    loss, at most once per ``rtt``, x becomes half what it was at the loss
    (multiplicative decrease). Every
    ``restart_every`` seconds a new transfer replaces it, in slow start again.
    Voice and cross packets share one FIFO holding at most ``buffer_packets``
    packets (as router interface queues count), served at ``capacity``: the
    queue fills as x overtakes the capacity, delaying every packet, then
    overflows and drops from the tail whatever arrives, voice included — the
    sawtooth of congestion.

    Parameters
    ----------
    time : float64, shape (n,)
        Arrival times of the voice packets at the bottleneck (non-decreasing).
    size : int, shape (n,)
        Voice packet sizes, bytes.
    capacity : float
        Link rate, bytes per second.
    buffer_packets : int
        Queue limit, packets.
    cross_start : float
        When the bulk flow starts.
    increase : float
        Additive increase of the bulk flow's rate, bytes/s per second.
    rtt : float
        The bulk flow's round-trip time: how late it reacts to a loss.
    restart_every : float
        Seconds between new transfers (each starts in slow start).
    cross_packet : int
        Bulk flow packet size, bytes.

    Returns
    -------
    depart : float64, shape (n,)
        Departure times of the voice packets; NaN where dropped.
    cross_sent, cross_dropped : int
        Packets of the bulk flow offered and dropped.

    References
    ----------
    RFC 5681 §3.1 (slow start; congestion avoidance: additive increase, halving on loss);
    RFC 7567 §2 (drop-tail queues and the delay they build).
    """
    n = len(time)
    depart = np.full(n, math.nan)
    t_list = np.asarray(time, np.float64).tolist()
    s_list = np.asarray(size).tolist()
    backlog = 0.0
    last = -math.inf
    in_queue: deque[float] = deque()  # departure times of the packets queued
    x = 0.1 * capacity
    slow_start = True
    next_restart = cross_start + restart_every
    next_cross = cross_start
    halve_at = x_at_loss = math.inf
    last_halving = -math.inf
    cross_sent = cross_dropped = 0
    i = 0
    while i < n:
        is_cross = next_cross < t_list[i]
        t = next_cross if is_cross else t_list[i]
        s = cross_packet if is_cross else s_list[i]
        if t >= halve_at:
            x = 0.5 * x_at_loss
            slow_start = False
            last_halving = halve_at
            halve_at = math.inf
        if t >= next_restart:
            x, slow_start, halve_at = 0.1 * capacity, True, math.inf
            next_restart += restart_every
        backlog = max(0.0, backlog - (t - last) * capacity) if last > -math.inf else 0.0
        last = t
        while in_queue and in_queue[0] <= t:
            in_queue.popleft()
        dropped = len(in_queue) >= buffer_packets
        if not dropped:
            backlog += s
            in_queue.append(t + backlog / capacity)
        if is_cross:
            cross_sent += 1
            if dropped:
                cross_dropped += 1
                if halve_at == math.inf and t >= last_halving + rtt:
                    halve_at, x_at_loss = t + rtt, x
            gap = cross_packet / x
            x = x * 2.0 ** (gap / rtt) if slow_start else x + increase * gap
            next_cross = t + gap
        else:
            if not dropped:
                depart[i] = t + backlog / capacity
            i += 1
    return depart, cross_sent, cross_dropped


def in_windows(time: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which times fall in one of the half-open windows ``[starts[i], ends[i])``.

    The windows must be sorted and disjoint.
    """
    k = np.searchsorted(starts, time, side="right") - 1
    inside = k >= 0
    inside[inside] = time[inside] < ends[k[inside]]
    return inside
