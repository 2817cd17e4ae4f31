"""Sliding-window filters: running median and trailing minimum, in numpy.

- :func:`running_median` replaces ``scipy.ndimage.median_filter(x, size,
  mode="nearest")`` for 1-D float arrays (odd ``size``): windows up to
  :data:`_NETWORK_MAX_SIZE` samples go through a pruned Batcher selection
  network (:func:`middle_pair_network`), wider ones through
  ``numpy.partition`` of every window.
- :func:`trailing_min` replaces ``scipy.ndimage.minimum_filter1d(x, width,
  mode="constant", cval=inf, origin=(width - 1) // 2)``: the minimum of the
  ``width`` samples ending at each one, by a sparse table of doublings.

Both avoid importing ``scipy.ndimage``/``scipy.signal`` (a second or more at
start-up, longer than analyzing a small capture) and are exact (they only
compare and move values). ``tests/test_numerics.py`` holds them equal to
those SciPy routines on random inputs (``test_running_median_*``,
``test_trailing_min_*``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Widest running-median window taken by a selection network; wider ones
#: partition every window (the network's compare-exchanges grow as size log² size).
_NETWORK_MAX_SIZE = 21


@cache
def middle_pair_network(wires: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchanges that bring the two middle order statistics of an even
    number of inputs to wires ``wires // 2 - 1`` and ``wires // 2``.

    Batcher's odd-even merge sort on the next power of two wires, the wires
    from ``wires`` on holding +inf (so every comparator touching one is a
    no-op and is left out), then pruned backwards to the comparators the two
    middle outputs depend on. Each entry is ``(a, b, min_needed, max_needed)``:
    wire ``a`` receives the minimum, ``b`` the maximum, and an output nothing
    later reads is not computed.

    References
    ----------
    K. E. Batcher, "Sorting networks and their applications", AFIPS Spring
    Joint Computer Conference 1968, pp. 307-314; D. E. Knuth, The Art of
    Computer Programming vol. 3, §5.3.4 (merge exchange).
    """
    power = 1
    while power < wires:
        power *= 2
    net = []
    t = 1
    while t < power:
        k = t
        while k >= 1:
            for j in range(k % t, power - k, 2 * k):
                for i in range(min(k, power - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * t) == b // (2 * t) and b < wires:
                        net.append((a, b))
            k //= 2
        t *= 2
    live = {wires // 2 - 1, wires // 2}
    kept = []
    for a, b in reversed(net):
        if a in live or b in live:
            kept.append((a, b, a in live, b in live))
            live |= {a, b}
    return tuple(reversed(kept))


def _running_median_paired(padded: np.ndarray, n: int, half: int) -> np.ndarray:
    """Median of every window ``padded[i : i + 2 half + 1]``, ``i < n``, two windows at a time.

    Windows ``i`` and ``i + 1`` share ``2 half`` samples; with ``lo`` and ``hi``
    the two middle ones of those, each window's median is its own extra
    sample clamped to ``[lo, hi]``. :func:`middle_pair_network` finds ``lo``
    and ``hi`` with one vectorised minimum or maximum per comparator over
    every other window, on shifted views of the even- and odd-indexed samples.
    """
    pairs = (n + 1) // 2
    if n % 2:
        padded = np.append(padded, padded[-1])  # a window past the end, dropped below
    even, odd = padded[0::2], padded[1::2]

    def every_other(q: int) -> np.ndarray:
        """``padded[q + 2 m]`` for the pairs m."""
        return (odd if q % 2 else even)[q // 2 : q // 2 + pairs]

    wire = [every_other(1 + j) for j in range(2 * half)]
    for a, b, need_min, need_max in middle_pair_network(2 * half):
        low = np.minimum(wire[a], wire[b]) if need_min else wire[a]
        if need_max:
            wire[b] = np.maximum(wire[a], wire[b])
        wire[a] = low
    lo, hi = wire[half - 1], wire[half]
    out = np.empty(2 * pairs)
    out[0::2] = np.minimum(np.maximum(every_other(0), lo), hi)
    out[1::2] = np.minimum(np.maximum(every_other(2 * half + 1), lo), hi)
    return out[:n]


def running_median(x: np.ndarray, size: int) -> np.ndarray:
    """Median of each window of ``size`` (odd) samples centred on each sample.

    The array is extended at both ends by repeating its edge values, as
    ``scipy.ndimage.median_filter(x, size, mode="nearest")`` does. Windows up
    to :data:`_NETWORK_MAX_SIZE` go through a selection network
    (:func:`_running_median_paired`; exact: compare-exchanges only move
    values), wider ones through a partition of every window.
    """
    x = np.asarray(x, np.float64)
    if size % 2 == 0 or size < 1:
        raise ValueError(f"size must be odd and positive, got {size}")
    if x.size == 0 or size == 1:
        return x.copy()
    half = size // 2
    padded = np.concatenate([np.full(half, x[0]), x, np.full(half, x[-1])])
    if size <= _NETWORK_MAX_SIZE and not np.isnan(x).any():
        return _running_median_paired(padded, x.size, half)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    # the middle of each window in order (np.median would average it with itself, 7x slower)
    return np.partition(windows, half, axis=1)[:, half]


def trailing_min(x: np.ndarray, width: int) -> np.ndarray:
    """Minimum of ``x[max(0, i - width + 1) .. i]`` for every i.

    By doubling: minima over windows of 1, 2, 4, ... samples, each the
    minimum of two of the previous size, then any window is two overlapping
    windows of the largest power of two not above ``width`` (a minimum may
    count a sample twice). ``log2(width)`` vectorised passes.

    References
    ----------
    M. A. Bender and M. Farach-Colton, "The LCA problem revisited", LATIN 2000
    (the sparse table for range minima).
    """
    n = x.size
    m = np.concatenate([np.full(width - 1, np.inf), x])  # window of i is m[i .. i + width - 1]
    span = 1
    while 2 * span <= width:
        m = np.minimum(m[:-span], m[span:])  # now m[j] = min of the window of 2 span from j
        span *= 2
    return np.minimum(m[:n], m[width - span : width - span + n])
