"""numpy stand-ins for SciPy and numpy routines on the analysis path (private).

``import scipy.signal`` (or ``scipy.ndimage``, ``scipy.stats``) costs a
second or more, longer than analyzing a small capture, and numpy's own
selection-based order statistics are slow on measured data. Each routine
here gives the reference's numbers (bit for bit where its module says so)
without that cost. Routine, and what it replaces:

- :mod:`.quantile`: ``percentiles`` / ``percentile_sorted`` for
  ``numpy.percentile(x, q)`` (``method="linear"``); ``median`` /
  ``median_sorted`` for ``numpy.median(x)``.
- :mod:`.recurrence`: ``linear_recurrence`` / ``scaled_recurrence`` for
  ``scipy.signal.lfilter([1], [1, -a], u)``; ``exponential_average`` for
  ``scipy.signal.lfilter([g], [1, g - 1], x)``.
- :mod:`.filters`: ``running_median`` for
  ``scipy.ndimage.median_filter(x, size, mode="nearest")``; ``trailing_min``
  for ``scipy.ndimage.minimum_filter1d`` over the window ending at each sample.
- :mod:`.peaks`: ``find_peaks`` for
  ``scipy.signal.find_peaks(x, prominence=p, wlen=w)``; ``local_maxima`` for
  ``scipy.signal.find_peaks(x)``.
- :mod:`.lines`: ``linspace`` for ``numpy.linspace``; ``theil_sen_slope``
  for ``scipy.stats.theilslopes``; ``least_squares_slope`` for
  ``scipy.stats.linregress``.

``tests/test_numerics.py`` holds each equal to its reference on random
inputs. Definitions of metrics (RFC 3550 jitter, RFC 3611 bursts, the
E-model) stay in :mod:`callscope.metrics`; only generic numeric routines
live here.
"""
