"""Loss structure: run lengths, RFC 3611 bursts and gaps, Gilbert-Elliott.

All functions take the slot mask ``received`` (one bool per expected packet,
in sequence order, see :mod:`callscope.metrics.sequence`; or one per slot of
a :class:`~callscope.diagnose.trace.Trace`). This module is the one place
these quantities are defined: the metrics table and the diagnosis's
evidence both read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GMIN = 16  # RFC 3611 §4.7.2: minimum gap length (received packets) between bursts


@dataclass(frozen=True)
class Runs:
    """Runs of consecutive lost slots: first slot index and length (int64)."""

    start: np.ndarray
    length: np.ndarray

    @property
    def count(self) -> int:
        return int(self.start.size)


def loss_runs(received: np.ndarray) -> Runs:
    """The runs of consecutive ``False`` in ``received``, in slot order.

    Found among the lost slots alone (a run ends where the next lost slot is
    not adjacent), which are few in any stream worth listening to.
    """
    lost = np.flatnonzero(~np.asarray(received, bool))
    if lost.size == 0:
        return Runs(np.zeros(0, np.int64), np.zeros(0, np.int64))
    brk = np.flatnonzero(np.diff(lost) > 1)
    start = np.concatenate([lost[:1], lost[brk + 1]])
    end = np.concatenate([lost[brk], lost[-1:]]) + 1
    return Runs(start.astype(np.int64), (end - start).astype(np.int64))




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
    if runs.count == 0:
        return ()
    return tuple(int(c) for c in np.bincount(runs.length)[1:])


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


def spacing_cv(received: np.ndarray) -> float:
    """Coefficient of variation of the spacing between consecutive loss events.

    A loss event is a run of consecutive lost slots; spacing is counted in
    slots between event starts. Evenly spaced drops (a policer draining its
    bucket) give CV << 1; independent losses give CV near 1.
    """
    runs = loss_runs(received)
    if runs.count < 3:
        return float("nan")
    gaps = np.diff(runs.start).astype(np.float64)
    m = gaps.mean()
    return float(gaps.std() / m) if m > 0 else float("nan")


@dataclass(frozen=True)
class GilbertElliott:
    """Four-parameter Gilbert-Elliott channel fitted by maximum likelihood.

    ``p`` = P(good -> bad), ``r`` = P(bad -> good) per packet; a packet is
    lost with probability ``loss_good`` in the good state and ``loss_bad`` in
    the bad one. ``loglik`` is the log-likelihood of the loss mask under it.
    """

    p: float
    r: float
    loss_good: float
    loss_bad: float
    loglik: float


def _run_lengths(received: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding of the mask: each run's value (lost?) and length."""
    lost = ~np.asarray(received, bool)
    edge = np.flatnonzero(np.diff(lost.astype(np.int8))) + 1
    starts = np.concatenate([[0], edge])
    lengths = np.diff(np.concatenate([starts, [lost.size]]))
    return lost[starts], lengths


def _matrix_powers(m: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``m ** L`` for every L in ``lengths`` (2x2 ``m`` with real eigenvalues), shape (n, 2, 2)."""
    lam, vec = np.linalg.eig(m)
    lam, vec = lam.real, vec.real
    inv = np.linalg.inv(vec)
    powers = np.power(lam[None, :], lengths[:, None].astype(np.float64))
    return np.einsum("ij,nj,jk->nik", vec, powers, inv)


def _chain_loglik(mats: np.ndarray) -> float:
    """log of the sum of the entries of ``mats[0] @ mats[1] @ ...``, without underflow.

    A pairwise tree product; each partial product is rescaled by its largest
    entry and the logs of the scales are summed.
    """
    log_scale = 0.0
    while mats.shape[0] > 1:
        if mats.shape[0] % 2:
            mats = np.concatenate([mats, np.eye(2)[None]])
        prod = np.einsum("nij,njk->nik", mats[0::2], mats[1::2])
        scale = prod.max(axis=(1, 2))
        scale = np.where(scale > 0, scale, 1.0)
        log_scale += float(np.sum(np.log(scale)))
        mats = prod / scale[:, None, None]
    total = float(mats[0].sum())
    return log_scale + (np.log(total) if total > 0 else -np.inf)


def gilbert_elliott_loglik(received: np.ndarray, p: float, r: float, k: float, h: float) -> float:
    """Log-likelihood of a loss mask under a Gilbert-Elliott channel.

    The forward algorithm of the two-state hidden Markov model, evaluated run
    by run: a run of ``L`` equal observations multiplies the forward vector by
    ``(A diag(e))^L``, which an eigendecomposition gives for all runs at once.
    The chain starts in its stationary distribution.

    References
    ----------
    L. R. Rabiner, "A tutorial on hidden Markov models", Proc. IEEE 77 (1989),
    §III-A (forward procedure); ITU-T P.564 (Gilbert-Elliott model).
    """
    values, lengths = _run_lengths(received)
    a = np.array([[1.0 - p, p], [r, 1.0 - r]])
    e_lost = np.array([k, h])
    e_recv = 1.0 - e_lost
    pi = np.array([r, p]) / (p + r)
    mats = np.empty((lengths.size, 2, 2))
    for value, e in ((True, e_lost), (False, e_recv)):
        sel = values == value
        if sel.any():
            mats[sel] = _matrix_powers(a * e[None, :], lengths[sel])
    # The first observation has no transition before it: pi diag(e) M^(L-1).
    e0 = e_lost if values[0] else e_recv
    first = _matrix_powers(a * e0[None, :], lengths[:1] - 1)[0]
    mats[0] = (pi * e0)[:, None] * first
    mats[0] = np.vstack([mats[0].sum(axis=0), np.zeros(2)])
    return _chain_loglik(mats)


def bernoulli_loglik(received: np.ndarray) -> float:
    """Log-likelihood of a loss mask under independent loss at its own rate."""
    rec = np.asarray(received, bool)
    n, k = rec.size, int(np.count_nonzero(~rec))
    if k in (0, n):
        return 0.0
    q = k / n
    return float(k * np.log(q) + (n - k) * np.log1p(-q))


def fit_gilbert_elliott(received: np.ndarray) -> GilbertElliott:
    """Maximum-likelihood Gilbert-Elliott parameters of a loss mask.

    Starts from the two-state Gilbert fit (every loss in the bad state) and
    maximises the likelihood over (p, r, loss_good, loss_bad) with bounded
    L-BFGS-B, on a logit scale; the bad state is the lossier one.

    References
    ----------
    ITU-T P.564 (Gilbert-Elliott model); Rabiner (1989) §III-C (maximum likelihood).
    """
    rec = np.asarray(received, bool)
    gp, gq = _transition_rate(rec, ~rec), _transition_rate(~rec, rec)
    if rec.size < 50 or rec.all() or (~rec).all():
        return GilbertElliott(gp, gq if (~rec).any() else 1.0, 0.0, 1.0, 0.0)
    # Imported here: scipy.optimize costs ~0.3 s, and only a real fit needs it.
    from scipy.optimize import minimize

    eps = 1e-4

    def unpack(x: np.ndarray) -> tuple[float, float, float, float]:
        p, r, k, h = 1.0 / (1.0 + np.exp(-x))
        return float(p), float(r), float(k), float(h)

    def nll(x: np.ndarray) -> float:
        p, r, k, h = unpack(x)
        if h <= k:
            return 1e12
        v = -gilbert_elliott_loglik(rec, p, r, k, h)
        return v if np.isfinite(v) else 1e12

    start = np.array([gp, gq, 0.002, 0.9]).clip(eps, 1 - eps)
    x0 = np.log(start / (1.0 - start))
    res = minimize(nll, x0, method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
    p, r, k, h = unpack(res.x)
    return GilbertElliott(p, r, k, h, -float(res.fun))
