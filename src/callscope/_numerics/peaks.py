"""Peak finding by topographic prominence, in numpy.

- :func:`find_peaks` replaces ``scipy.signal.find_peaks(x, prominence=p,
  wlen=w)`` (SciPy 1.x ``_local_maxima_1d`` and ``_peak_prominences``) for
  1-D arrays: the same peak indices, prominences and left / right bases.
- :func:`local_maxima` replaces ``scipy.signal.find_peaks(x)`` with no
  condition (``_local_maxima_1d``): flat tops count once, at their middle.

It avoids importing ``scipy.signal``, which costs a second or more at
start-up: longer than analyzing a small capture. ``tests/test_numerics.py``
holds both equal to SciPy on random inputs with flat tops
(``test_find_peaks_*``, ``test_local_maxima_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callscope._numerics.filters import trailing_min

#: Cells of the temporary (peaks x window) arrays per batch of peaks.
_MAX_CELLS = 1 << 20


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of local maxima; a flat top counts once, at its middle (left of centre when even).

    As ``scipy.signal._peak_finding_utils._local_maxima_1d``: a sample (or a
    run of equal samples) higher than both neighbours; the first and last
    samples are never peaks.
    """
    x = np.asarray(x, np.float64)
    if x.size < 3:
        return np.zeros(0, np.int64)
    # runs of equal values
    change = np.flatnonzero(x[1:] != x[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [x.size]]) - 1  # inclusive
    inner = (starts > 0) & (ends < x.size - 1)
    starts, ends = starts[inner], ends[inner]
    peak = (x[starts - 1] < x[starts]) & (x[ends + 1] < x[ends])
    return ((starts[peak] + ends[peak]) // 2).astype(np.int64)


@dataclass(frozen=True)
class Peaks:
    """Peaks of a series with their topographic prominence and bases."""

    index: np.ndarray
    prominence: np.ndarray
    left_base: np.ndarray
    right_base: np.ndarray


def _bases(x: np.ndarray, peaks: np.ndarray, half: int, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest point (and where) reachable from each peak going one way without
    climbing above it, within ``half`` samples; ties go to the one nearest the peak."""
    steps = np.arange(half + 1)
    pos = peaks[:, None] + direction * steps[None, :]
    inside = (pos >= 0) & (pos < x.size)
    v = np.where(inside, x[np.clip(pos, 0, x.size - 1)], np.inf)
    higher = v > x[peaks][:, None]
    # stop at the first higher sample (or the window's end)
    reach = np.where(higher.any(axis=1), np.argmax(higher, axis=1), half + 1)
    v = np.where(steps[None, :] < reach[:, None], v, np.inf)
    low = v.min(axis=1)
    where = np.argmax(v == low[:, None], axis=1)  # first = nearest the peak
    return low, peaks + direction * where


def find_peaks(x: np.ndarray, prominence: float, wlen: int) -> Peaks:
    """Local maxima with a topographic prominence of at least ``prominence``.

    Prominence is measured within ``wlen`` samples around each peak (wlen // 2
    each side), as ``scipy.signal.peak_prominences``: the peak's height above
    the higher of the two lowest points reachable on either side without
    passing a higher sample.
    """
    x = np.asarray(x, np.float64)
    peaks = local_maxima(x)
    half = max(int(wlen), 0) // 2 if wlen >= 2 else x.size
    if peaks.size:
        # A peak's prominence is at most its height above the higher of the
        # lowest samples of its two half-windows: most peaks of a noisy series
        # fail that bound and need no walk to their bases.
        # One pass gives both sides: the window ahead of i is the one behind
        # i + width - 1 once the series is extended by +inf.
        width = min(half, x.size) + 1
        low = trailing_min(np.concatenate([x, np.full(width - 1, np.inf)]), width)
        low_left = low[peaks]
        low_right = low[peaks + width - 1]
        peaks = peaks[x[peaks] - np.maximum(low_left, low_right) >= prominence]
    batch = max(1, _MAX_CELLS // (half + 1))
    proms, lefts, rights = [], [], []
    for b in range(0, peaks.size, batch):
        p = peaks[b : b + batch]
        left_min, left = _bases(x, p, half, -1)
        right_min, right = _bases(x, p, half, 1)
        proms.append(x[p] - np.maximum(left_min, right_min))
        lefts.append(left)
        rights.append(right)
    if not peaks.size:
        z = np.zeros(0, np.int64)
        return Peaks(z, np.zeros(0), z, z)
    prom = np.concatenate(proms)
    keep = prom >= prominence
    return Peaks(peaks[keep], prom[keep], np.concatenate(lefts)[keep], np.concatenate(rights)[keep])
