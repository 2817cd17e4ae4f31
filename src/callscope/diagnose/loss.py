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
    """The runs of consecutive ``False`` in ``received``, in slot order."""
    lost = ~np.asarray(received, bool)
    edge = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    start = np.flatnonzero(edge == 1)
    end = np.flatnonzero(edge == -1)
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
