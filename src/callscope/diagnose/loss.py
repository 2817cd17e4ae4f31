"""Structure of the loss in a slot mask: runs, spacing, Gilbert-Elliott, bursts.

Everything here takes the received mask of a :class:`~callscope.diagnose.trace.Trace`
(one bool per packet sent) and is vectorised with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GMIN = 16  # RFC 3611 §4.7.2: a burst ends after Gmin consecutive received packets


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
class Gilbert:
    """Two-state Gilbert model fitted to a loss mask.

    ``p`` = P(lost | previous received) and ``r`` = P(received | previous
    lost), counted over consecutive slot pairs (every loss in the bad state,
    none in the good one). ``burst_ratio`` = 1 / (p + r): 1 for independent
    loss, above 1 when losses cluster (ITU-T G.113 Appendix I, BurstR).
    """

    p: float
    r: float
    transitions: int

    @property
    def burst_ratio(self) -> float:
        s = self.p + self.r
        return 1.0 / s if s > 0 else 1.0


def gilbert(received: np.ndarray) -> Gilbert:
    """Maximum-likelihood transition probabilities of the two-state Gilbert chain.

    References
    ----------
    ITU-T G.113 Appendix I (BurstR = 1/(p + r) for the 2-state model);
    RFC 3611 §4.7.2 (the same chain's burst and gap states).
    """
    rec = np.asarray(received, bool)
    if rec.size < 2:
        return Gilbert(0.0, 1.0, 0)
    prev, nxt = rec[:-1], rec[1:]
    good = np.count_nonzero(prev)
    bad = prev.size - good
    g2b = np.count_nonzero(prev & ~nxt)
    b2g = np.count_nonzero(~prev & nxt)
    p = g2b / good if good else 0.0
    r = b2g / bad if bad else 1.0
    return Gilbert(float(p), float(r), int(g2b + b2g))


@dataclass(frozen=True)
class BurstGap:
    """RFC 3611 §4.7.2 burst/gap split with Gmin: densities of loss in each state."""

    burst_density: float
    gap_density: float
    burst_fraction: float


def burst_gap(received: np.ndarray, gmin: int = GMIN) -> BurstGap:
    """Loss densities in bursts and gaps as RFC 3611 §4.7.2 defines them.

    A burst is a stretch that starts and ends with a loss and contains no run
    of ``gmin`` or more received packets; everything else is gap.

    References
    ----------
    RFC 3611 §4.7.2 (burst density, gap density, Gmin).
    """
    rec = np.asarray(received, bool)
    n = rec.size
    lost_idx = np.flatnonzero(~rec)
    if lost_idx.size == 0 or n == 0:
        return BurstGap(0.0, 0.0, 0.0)
    between = np.diff(lost_idx) - 1  # received packets between consecutive losses
    joined = between < gmin
    # A loss that is joined to a neighbour on either side belongs to a burst.
    in_burst = np.zeros(lost_idx.size, bool)
    in_burst[:-1] |= joined
    in_burst[1:] |= joined
    burst_slots = int(np.sum(between[joined]) + np.count_nonzero(in_burst))
    burst_losses = int(np.count_nonzero(in_burst))
    gap_slots = n - burst_slots
    gap_losses = lost_idx.size - burst_losses
    return BurstGap(
        burst_density=burst_losses / burst_slots if burst_slots else 0.0,
        gap_density=gap_losses / gap_slots if gap_slots else 0.0,
        burst_fraction=burst_slots / n,
    )


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
    g = gilbert(rec)
    if rec.size < 50 or rec.all() or (~rec).all():
        return GilbertElliott(g.p, g.r, 0.0, 1.0, 0.0)
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

    start = np.array([g.p, g.r, 0.002, 0.9]).clip(eps, 1 - eps)
    x0 = np.log(start / (1.0 - start))
    res = minimize(nll, x0, method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
    p, r, k, h = unpack(res.x)
    return GilbertElliott(p, r, k, h, -float(res.fun))
