"""First-order linear recurrences (exponential smoothing), exact, in numpy.

Replaces ``scipy.signal.lfilter([1], [1, -a], u)`` (and, for
:func:`exponential_average`, ``lfilter([g], [1, g - 1], x)``): the recurrence

    y[i] = a * y[i - 1] + u[i]

Importing ``scipy.signal`` costs a second or more, longer than analyzing a
small capture, so the recurrence is solved here in closed form, blockwise:

    y[i] = a^i * (y[-1] * a + sum_{k <= i} u[k] * a^-k)

within a block of ``B`` elements (``a^-B`` kept far from overflow), and the
block-end states are carried across blocks by the same recurrence with
``a^B`` (solved recursively). Rounding stays at a few ulps of ``max |u|``:
the large factors ``a^-k`` multiply the most recent terms, which the final
``a^i`` scales back down.

``tests/test_numerics.py`` (``test_recurrence_*``) holds it equal to
``lfilter`` on random inputs, to 1e-12 relative to ``max |u|``.

Users: the RFC 3550 interarrival jitter (:mod:`callscope.metrics.smoothing`),
the playout-delay estimators of :mod:`callscope.metrics.jitterbuffer`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Largest factor a^-k allowed inside one block: keeps partial sums far from
#: float64 overflow (about 1.8e308) while blocks stay long.
_MAX_GROWTH = 1e100

#: Longest series of one-element blocks solved step by step in Python.
_STEPWISE_MAX = 64


def linear_recurrence(u: np.ndarray, a: float, initial: float = 0.0) -> np.ndarray:
    """Solve ``y[i] = a * y[i - 1] + u[i]`` with ``y[-1] = initial``.

    Parameters
    ----------
    u : float64, 1-D
        Input of each step.
    a : float
        Decay factor, ``0 <= a < 1``.
    initial : float
        State before the first element.

    Returns
    -------
    float64 ndarray, same length as ``u``

    Examples
    --------
    >>> linear_recurrence(np.array([1.0, 1.0, 1.0]), 0.5).tolist()
    [1.0, 1.5, 1.75]
    """
    return scaled_recurrence(u, None, a, initial)


def scaled_recurrence(
    x: np.ndarray, scale: float | None, a: float, initial: float = 0.0
) -> np.ndarray:
    """:func:`linear_recurrence` of ``u = scale * x`` (``x`` itself when ``scale`` is None).

    The same numbers as ``linear_recurrence(scale * x, a, initial)``; the
    scaling happens while ``x`` is copied into the working buffer.

    Examples
    --------
    >>> scaled_recurrence(np.array([2.0, 2.0]), 0.5, 0.5).tolist()
    [1.0, 1.5]
    """
    x = np.asarray(x, np.float64)
    n = x.size
    if not 0.0 <= a < 1.0:
        raise ValueError(f"decay factor must be in [0, 1), got {a}")
    if n == 0:
        return np.zeros(0)
    if a == 0.0:
        return x.copy() if scale is None else x * scale
    rise, fall, decayed = _powers(a)
    if fall.size == 1 and n <= _STEPWISE_MAX:
        # Blocks of one element (the carried block states of a longer series,
        # decay a^B): the closed form is then the recurrence itself, step by
        # step, without the numpy calls of a whole level of blocks.
        y = np.empty(n)
        state = initial
        for i, u in enumerate((x if scale is None else x * scale).tolist()):
            state = u + state * a
            y[i] = state
        return y
    block = min(n, fall.size)
    rise, fall, decayed = rise[:block], fall[:block], decayed[:block]
    blocks = -(-n // block)
    # Everything below happens in place in one buffer of whole blocks.
    if blocks == 1:
        if scale is None:
            y = x * rise
        else:
            y = x * scale
            y *= rise
    else:
        y = np.zeros(blocks * block)
        if scale is None:
            y[:n] = x
        else:
            np.multiply(x, scale, out=y[:n])
    local = y.reshape(blocks, block)
    if blocks > 1:
        local *= rise
    # Block-local solution from a zero state: y_j = a^j sum_{k<=j} u_k a^-k.
    np.cumsum(local, axis=1, out=local)
    local *= fall
    # State entering each block: s_b = a^B s_{b-1} + local_{b-1}[-1].
    carry_in = np.empty(blocks)
    carry_in[0] = initial
    if blocks > 1:
        carry_in[1:] = scaled_recurrence(local[:-1, -1], None, a**block, initial)
    local += carry_in[:, None] * decayed[None, :]
    return y[:n]


@lru_cache(maxsize=16)
def _powers(a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a^-k``, ``a^k`` and ``a * a^k`` (computed as that product) for k = 0 .. B - 1,
    the longest block with ``a^-k <= _MAX_GROWTH``."""
    block = int(max(1, np.floor(np.log(_MAX_GROWTH) / -np.log(a))))
    fall = a ** np.arange(block, dtype=np.float64)
    rise = 1.0 / fall
    decayed = a * fall
    for table in (rise, fall, decayed):
        table.flags.writeable = False
    return rise, fall, decayed


def exponential_average(x: np.ndarray, gain: float, initial: float = 0.0) -> np.ndarray:
    """Running average ``y[i] = y[i - 1] + gain * (x[i] - y[i - 1])``, ``y[-1] = initial``.

    The RFC 3550 §6.4.1 jitter estimator is ``exponential_average(abs(D), 1 / 16)``.

    Parameters
    ----------
    x : float64, 1-D
        Samples.
    gain : float
        Weight of each new sample, ``0 < gain <= 1``.
    initial : float
        Average before the first sample.

    Returns
    -------
    float64 ndarray: the average after each sample.

    Examples
    --------
    >>> exponential_average(np.array([16.0, 0.0]), 1 / 16).tolist()
    [1.0, 0.9375]
    """
    if not 0.0 < gain <= 1.0:
        raise ValueError(f"gain must be in (0, 1], got {gain}")
    return scaled_recurrence(x, gain, 1.0 - gain, initial)
