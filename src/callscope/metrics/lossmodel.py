"""Loss structure: run lengths, RFC 3611 bursts and gaps, Gilbert-Elliott.

All functions take the slot mask ``received`` (one bool per expected packet,
in sequence order, see :mod:`callscope.metrics.sequence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope.metrics.sequence import loss_runs

GMIN = 16  # RFC 3611 §4.7.2: minimum gap length (received packets) between bursts


@dataclass(frozen=True)
class LossStructure:
    """How the losses of one stream are arranged.

    Attributes
    ----------
    run_histogram : tuple of int
        ``run_histogram[k]`` = number of runs of exactly ``k + 1`` consecutive
        lost packets.
    burst_density, gap_density : float
        RFC 3611 §4.7.2: fraction of packets lost within bursts / within gaps.
    burst_duration_ms, gap_duration_ms : float
        RFC 3611 §4.7.2: mean duration of the burst / gap periods.
    bursts : int
        Number of burst periods.
    ge_p, ge_r : float
        Gilbert-Elliott transition probabilities per packet, good -> bad and
        bad -> good, with the RFC 3611 gaps as the good state and bursts as the
        bad state (the four-parameter model of RFC 3611 §4.7.2 / ITU-T P.564).
    ge_loss_good, ge_loss_bad : float
        Loss probability in the good / bad state (= gap / burst density).
    gilbert_p, gilbert_q : float
        Two-state Markov chain on the loss indicator itself:
        ``P(lost | previous received)`` and ``P(received | previous lost)``.
    burst_ratio : float
        ITU-T G.107 §3.9 / formula (7-29) BurstR = 1 / (p + q) from the chain
        above: 1 for random loss, > 1 for bursty loss (1 when no loss).
    burst_spans : int64 array, shape (bursts, 2)
        First and last slot index (inclusive) of each burst.
    """

    run_histogram: tuple[int, ...]
    burst_density: float
    gap_density: float
    burst_duration_ms: float
    gap_duration_ms: float
    bursts: int
    ge_p: float
    ge_r: float
    ge_loss_good: float
    ge_loss_bad: float
    gilbert_p: float
    gilbert_q: float
    burst_ratio: float
    burst_spans: np.ndarray


def run_length_histogram(received: np.ndarray) -> tuple[int, ...]:
    """Counts of loss runs by length: element ``k`` counts runs of ``k + 1`` losses."""
    runs = loss_runs(received)
    if runs.size == 0:
        return ()
    return tuple(int(c) for c in np.bincount(runs)[1:])


def burst_spans(received: np.ndarray, gmin: int = GMIN) -> np.ndarray:
    """Burst periods per RFC 3611 §4.7.2, as (first, last) slot pairs.

    A burst is the longest sequence that starts and ends with a lost packet
    and contains no run of ``gmin`` or more received packets. A lone loss with
    at least ``gmin`` received packets on both sides is not a burst but a gap
    loss (RFC 3611 Appendix A.2 counts it as such, transition c14).
    """
    return _burst_spans(np.flatnonzero(~np.asarray(received, bool)), gmin)[0]


def _burst_spans(lost: np.ndarray, gmin: int) -> tuple[np.ndarray, int]:
    """:func:`burst_spans` from the lost slots' indices; also how many of
    those fall inside the bursts."""
    if lost.size == 0:
        return np.zeros((0, 2), np.int64), 0
    between = np.diff(lost) - 1  # received packets between consecutive losses
    new_group = np.concatenate([[True], between >= gmin])
    starts = np.flatnonzero(new_group)
    ends = np.concatenate([starts[1:], [lost.size]]) - 1
    size = ends - starts + 1
    keep = size >= 2
    spans = np.stack([lost[starts[keep]], lost[ends[keep]]], axis=1).astype(np.int64)
    return spans, int(size[keep].sum())


def loss_structure(received: np.ndarray, slot_ms: float, gmin: int = GMIN) -> LossStructure:
    """Run lengths, burst/gap metrics and Gilbert(-Elliott) parameters.

    Parameters
    ----------
    received : bool array
        Slot mask in sequence order (True = received).
    slot_ms : float
        Nominal time between packets in ms (to express durations).
    gmin : int
        RFC 3611 §4.7.2 Gmin (16 recommended).

    References
    ----------
    RFC 3611 §4.7.2 (burst/gap density and duration); ITU-T G.107 (06/2015)
    §7.2 formula (7-29) and Appendix I (BurstR); ITU-T P.564 (Gilbert-Elliott).

    Examples
    --------
    >>> r = np.ones(40, bool); r[[2, 20, 21, 23]] = False
    >>> s = loss_structure(r, 20.0)
    >>> s.run_histogram, s.bursts, round(s.burst_density, 3)
    ((2, 1), 1, 0.75)
    """
    r = np.asarray(received, bool)
    n = r.size
    # Everything is counted from the lost slots' indices and the burst spans
    # (both short), not from masks over every slot.
    lost = np.flatnonzero(~r)
    spans, lost_in_bursts = _burst_spans(lost, gmin)
    nb = int(spans.shape[0])
    burst_slots = int((spans[:, 1] - spans[:, 0] + 1).sum())
    gap_slots = n - burst_slots
    burst_density = float(lost_in_bursts) / burst_slots if burst_slots else 0.0
    gap_density = float(lost.size - lost_in_bursts) / gap_slots if gap_slots else 0.0
    burst_duration = burst_slots / nb * slot_ms if nb else 0.0
    # Gap periods: the stretches between bursts, including before the first
    # and after the last, where those are not empty.
    bursts_at_start = int(nb > 0 and spans[0, 0] == 0)
    bursts_at_end = int(nb > 0 and spans[-1, 1] == n - 1)
    gap_periods = nb + 1 - bursts_at_start - bursts_at_end if n else 0
    gap_duration = gap_slots / gap_periods * slot_ms if gap_periods else 0.0

    # Transitions between consecutive slots: into a burst at each span start
    # after slot 0, out of one at each span end before the last slot; the same
    # for the runs of lost slots.
    run_first, run_last = _runs(lost)
    to_burst = nb - bursts_at_start
    from_burst = nb - bursts_at_end
    in_burst_before_last = burst_slots - bursts_at_end  # burst slots among 0 .. n - 2
    lost_before_last = lost.size - int(lost.size > 0 and lost[-1] == n - 1)
    ge_p = _rate(n, (n - 1) - in_burst_before_last, to_burst)
    ge_r = _rate(n, in_burst_before_last, from_burst)
    gp = _rate(n, (n - 1) - lost_before_last, int(np.count_nonzero(run_first > 0)))
    gq = _rate(n, lost_before_last, int(np.count_nonzero(run_last < n - 1)))
    run_lengths = run_last - run_first + 1
    return LossStructure(
        run_histogram=tuple(int(c) for c in np.bincount(run_lengths)[1:]) if lost.size else (),
        burst_density=burst_density,
        gap_density=gap_density,
        burst_duration_ms=float(burst_duration),
        gap_duration_ms=float(gap_duration),
        bursts=nb,
        ge_p=ge_p,
        ge_r=ge_r,
        ge_loss_good=gap_density,
        ge_loss_bad=burst_density,
        gilbert_p=gp,
        gilbert_q=gq,
        burst_ratio=_burst_ratio(gp, gq, bool(lost.size)),
        burst_spans=spans,
    )


def _runs(lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last slot of each run of consecutive lost slots, from their indices."""
    if lost.size == 0:
        return lost, lost
    brk = np.flatnonzero(lost[1:] - lost[:-1] != 1)
    first = np.concatenate([lost[:1], lost[brk + 1]])
    last = np.concatenate([lost[brk], lost[-1:]])
    return first, last


def _rate(n: int, total: int, hits: int) -> float:
    """:func:`_transition_rate` from its counts: ``hits`` of ``total`` slots
    (among the first ``n - 1``) in the source state go to the other one."""
    if n < 2 or total == 0:
        return 0.0
    return float(hits) / total


def burst_ratio(received: np.ndarray) -> float:
    """G.107 BurstR = 1 / (p + q) of the loss indicator's two-state Markov chain.

    ``p = P(lost | previous received)``, ``q = P(received | previous lost)``
    (ITU-T G.107 (06/2015) §3.9 and formula (7-29)); 1 when nothing is lost.

    Examples
    --------
    >>> round(burst_ratio(np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 1], bool)), 3)
    1.111
    """
    r = np.asarray(received, bool)
    return _burst_ratio(_transition_rate(r, ~r), _transition_rate(~r, r), bool((~r).any()))


def _burst_ratio(p: float, q: float, any_loss: bool) -> float:
    return 1.0 / (p + q) if any_loss and (p + q) > 0 else 1.0


def _transition_rate(src: np.ndarray, dst: np.ndarray) -> float:
    """Maximum-likelihood ``P(dst at i | src at i-1)`` of a two-state chain."""
    if src.size < 2:
        return 0.0
    from_src = src[:-1]
    total = int(np.count_nonzero(from_src))
    if total == 0:
        return 0.0
    return float(np.count_nonzero(from_src & dst[1:])) / total
