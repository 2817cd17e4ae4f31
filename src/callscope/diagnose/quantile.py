"""Percentiles and medians read from an array sorted once.

The detectors take several order statistics of the same series (a stream's
relative delay: its median, quartiles, 5th and 95th percentiles). One sort
serves them all; each value is then a lookup and one interpolation, computed
with the same floating-point operations as ``np.percentile`` (default
``method="linear"``) and ``np.median``, so the numbers are identical to
theirs, bit for bit.
"""

from __future__ import annotations

import numpy as np


def percentile_sorted(s: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` of the non-empty array ``x`` whose sorted copy is ``s``.

    Linear interpolation between the order statistics around the virtual
    index ``(n - 1) q / 100`` (Hyndman and Fan's definition 7, NumPy's
    default), evaluated as NumPy does: ``a + (b - a) g`` below ``g = 1/2`` and
    ``b - (b - a)(1 - g)`` from it on. NaN when ``x`` holds a NaN (sorted last).

    References
    ----------
    R. J. Hyndman and Y. Fan, "Sample quantiles in statistical packages",
    The American Statistician 50 (1996), definition 7.
    """
    n = s.size
    if np.isnan(s[-1]):
        return float(s[-1])
    virtual = (n - 1) * np.true_divide(q, 100)
    if virtual >= n - 1:
        # NumPy takes the last value for both neighbours, weighted by virtual + 1.
        i = j = n - 1
        gamma = virtual + 1.0
    else:
        below = np.floor(virtual)
        i = int(below)
        j = i + 1
        gamma = virtual - below
    a, b = s[i], s[j]
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * (1 - gamma))
    return float(a + diff * gamma)


def median_sorted(s: np.ndarray) -> float:
    """``np.median(x)`` of the non-empty array ``x`` whose sorted copy is ``s``:
    the middle value, or the mean of the two middle ones."""
    n = s.size
    if np.isnan(s[-1]):
        return float(s[-1])
    k = n // 2
    if n % 2:
        return float(s[k])
    return float((s[k - 1] + s[k]) / 2)
