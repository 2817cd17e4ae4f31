"""The RFC 3550 interarrival jitter as an exponential average.

RFC 3550 §6.4.1 (Appendix A.8) defines the interarrival jitter by the
recurrence ``J += (|D| - J) / 16``: a first-order linear recurrence, solved
exactly in numpy by :func:`callscope._numerics.recurrence.exponential_average`
(the routine that stands in for ``scipy.signal.lfilter``).
"""

from __future__ import annotations

import numpy as np

from callscope._numerics.recurrence import exponential_average

#: RFC 3550 §6.4.1 / Appendix A.8: gain of the interarrival jitter estimate.
RFC3550_JITTER_GAIN = 1.0 / 16.0


def rfc3550_jitter(delay: np.ndarray) -> np.ndarray:
    """Interarrival jitter J per received packet from relative delays (seconds).

    ``J(i) = J(i-1) + (|D(i-1, i)| - J(i-1)) / 16`` with ``D`` the difference of
    consecutive relative transit times, as one IIR filter; NaN delays (lost
    packets) are skipped.

    References
    ----------
    RFC 3550 §6.4.1 (interarrival jitter), Appendix A.8.

    Examples
    --------
    >>> rfc3550_jitter(np.array([0.0, 0.016, 0.016])).tolist()
    [0.0, 0.001, 0.0009375]
    """
    d = delay[np.isfinite(delay)]
    if d.size < 2:
        return np.zeros(d.size)
    return np.concatenate([[0.0], exponential_average(np.abs(np.diff(d)), RFC3550_JITTER_GAIN)])
