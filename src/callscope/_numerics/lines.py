"""Straight lines: evenly spaced points and fitted slopes, in numpy.

- :func:`linspace` replaces ``numpy.linspace(start, stop, num)`` for
  ``stop > start`` (the same operations, without the argument handling);
- :func:`least_squares_slope` replaces the slope of
  ``scipy.stats.linregress(x, y)`` (or ``numpy.polyfit(x, y, 1)[0]``);
- :func:`theil_sen_slope` replaces the slope of
  ``scipy.stats.theilslopes(y, x)``: the median of the pairwise slopes.

``scipy.stats`` costs a second or more to import, longer than analyzing a
small capture. ``tests/test_numerics.py`` holds :func:`linspace` and
:func:`theil_sen_slope` bit-for-bit equal to numpy and SciPy, and
:func:`least_squares_slope` equal to ``linregress`` within rounding
(``test_linspace_*``, ``test_*_slope_*``).
"""

from __future__ import annotations

import numpy as np

from callscope._numerics.quantile import median


def linspace(start: float, stop: float, num: int) -> np.ndarray:
    """``numpy.linspace(start, stop, num)`` for ``stop > start``, without its
    argument handling: ``arange(num) * step + start``, the last point ``stop``."""
    step = (stop - start) / (num - 1)
    if step == 0:  # numpy divides first then
        return np.linspace(start, stop, num)
    y = np.arange(num, dtype=np.float64)
    y *= step
    y += start
    y[-1] = stop
    return y


def least_squares_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Slope of the ordinary least-squares line ``y = a + b x``: cov(x, y) / var(x)."""
    dx = x - x.mean()
    dy = y - y.mean()
    dy *= dx
    cov = np.sum(dy)
    dx *= dx
    return float(cov / np.sum(dx))


def theil_sen_slope(x: np.ndarray, y: np.ndarray) -> float | None:
    """Theil-Sen slope: the median of the slopes of all pairs with distinct x
    (Sen, JASA 1968; as ``scipy.stats.theilslopes``)."""
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    pairs = dx > 0
    return median(dy[pairs] / dx[pairs]) if pairs.any() else None
